"""Arriving at and leaving a shared kernel: banner, prompt kind, history; never
destroying the kernel by accident.

Rules: a kernel you joined is never shut down by your leaving (Ctrl-D, ``exit``,
``quit`` -- which are never sent to the kernel -- or the ``ask_exit`` payload of
any kernel).  A kernel you started is shut
down when you leave, except that, while others are present and confirm_exit is
on, you are asked first, with the names of who would lose it; the default
answer keeps it running and says how to rejoin.  ``exit(keep_kernel=True)``
keeps it running without asking.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ipymirror.core.render import Renderer
from ipymirror.core.replies import AskExit, kernel_banner
from ipymirror.terminal.prompt import history_path
from ipymirror.transports.base import KernelTransport

__all__ = ["banner_lines", "history_file", "leave", "leave_words", "simple_prompt_wanted"]

#: What you type to leave.  Handled here, never sent: ipykernel stops its own event
#: loop on ``exit()`` (and R's ``quit()``, bash's ``exit`` end those kernels), which
#: would end the kernel for everyone else on it.
LEAVE = {
    "exit": False,
    "exit()": False,
    "quit": False,
    "quit()": False,
    "%exit": False,
    "%quit": False,
    "exit(keep_kernel=True)": True,
    "quit(keep_kernel=True)": True,
    "exit -k": True,
    "quit -k": True,
}


def leave_words(code: str) -> AskExit | None:
    """``exit``, ``quit()``…: the request to leave they make (keepkernel for ``-k``)."""
    keep = LEAVE.get(" ".join(code.split()))
    return None if keep is None else AskExit(keep)


def banner_lines(link: KernelTransport, renderer: Renderer, *, whole: bool) -> list[str]:
    """The kernel's banner: its first line, or all of it with ``--banner``."""
    text = renderer.clean(kernel_banner(link.kernel_info)).strip("\n")
    if not text.strip():
        return []
    lines = text.split("\n") if whole else [text.split("\n", 1)[0].rstrip()]
    if not whole:
        width = renderer.width
        lines = [lines[0] if len(lines[0]) <= width else lines[0][: width - 1] + "…"]
    return [line + "\n" for line in lines]


async def leave(console: Any, link: KernelTransport, request: AskExit | None, options: Any) -> bool:
    """Decide, asking if need be, whether leaving shuts the kernel down; True: shut it."""
    mirror = console.mirror
    rejoin = f"ipymirror --existing {link.where}"
    if link.manager is None:
        mirror.notice(f"left; the kernel keeps running (rejoin: {rejoin})")
        return False
    others = mirror.presence.others()  # active people, not tools, not me
    keep = request is not None and request.keepkernel
    if not keep and others and getattr(options, "confirm_exit", True):
        names = ", ".join(mirror.renderer.clean(p.label) for p in others)
        try:
            answer = await console.ask(
                f"Shut down the kernel for everyone? {names} would lose it [y/N] "
            )
        except (EOFError, KeyboardInterrupt):
            answer = ""
        keep = answer.strip().lower() not in ("y", "yes")
    if keep:
        mirror.notice(f"the kernel keeps running for the others; rejoin with: {rejoin}")
        return False
    return True


def simple_prompt_wanted(options: Any) -> bool:
    """``--simple-prompt``, or automatically on a dumb terminal or with stdin not a tty."""
    chosen = getattr(options, "simple_prompt", None)
    if chosen is not None:
        return bool(chosen)
    return os.environ.get("TERM") == "dumb" or not sys.stdin.isatty()


def history_file(link: KernelTransport) -> str:
    from jupyter_core.paths import jupyter_data_dir

    return history_path(jupyter_data_dir(), link.language or link.kernel_name)
