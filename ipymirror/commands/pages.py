"""What your own replies ask of the terminal: help pages and ``%edit``.

A ``page`` payload (``len?``, ``obj??``, ``%magic``) is shown inline when it fits
the screen and in a pager when it does not (the built-in one, or ``--pager``'s
command); its ANSI colours are kept, sanitised like all kernel text.  Peer
output is held meanwhile and written when the pager closes.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
from typing import Any

from ipymirror.core.replies import EditMagic
from ipymirror.terminal.pager import Pager, page_external

__all__ = ["edit_file", "show_page"]

MARGIN = 4  # rows kept free for the prompt and status when a page is shown inline


def _rows(console: Any) -> int:
    try:
        return int(console.session.app.output.get_size().rows)
    except Exception:  # no terminal to ask
        return 24


async def show_page(console: Any, text: str, start: int = 0) -> None:
    """Help text: inline when it fits the screen, else in the pager."""
    writer = console.mirror.writer
    clean = console.mirror.renderer.clean(text).rstrip("\n")
    lines = clean.split("\n")
    if console.simple or len(lines) <= _rows(console) - MARGIN:
        writer.push([line + "\n" for line in lines])
        writer.flush_now()
        return
    writer.hold()
    try:
        command = getattr(console.options, "pager", "") or ""
        with console.terminal_mode("cooked"):  # a program of its own: as from a shell
            external = bool(command) and await page_external(command, clean + "\n")
        if not external:
            await Pager(clean, start=start, **console.pt_io()).run()
    finally:
        writer.release()


async def edit_file(console: Any, edit: EditMagic) -> str | None:
    """``%edit``: $VISUAL/$EDITOR on the file at its line; the edited text for your
    next prompt (Enter runs it), or None with a line saying why not."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    where = edit.filename + (f" at line {edit.line_number}" if edit.line_number else "")
    if not editor or console.simple:
        console.mirror.notice(f"%edit needs $EDITOR here (not supported without): edit {where}")
        return None
    line = [f"+{edit.line_number}"] if edit.line_number else []
    argv = [*shlex.split(editor), *line, edit.filename]
    console.mirror.writer.hold()
    try:
        with console.terminal_mode("cooked"):  # a program of its own: as from a shell
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: subprocess.run(argv, check=False)
            )
    except OSError as exc:
        console.mirror.notice(f"could not run {editor}: {exc}")
        return None
    finally:
        console.mirror.writer.release()
    try:
        with open(edit.filename, encoding="utf-8") as f:
            return f.read().rstrip("\n")
    except (OSError, UnicodeDecodeError) as exc:
        console.mirror.notice(f"cannot read {edit.filename}: {exc}")
        return None
