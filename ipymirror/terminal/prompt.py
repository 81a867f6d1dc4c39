"""Your prompt: highlighting, completion menu, history search, key bindings.

Everything IPython's terminal gives your own input, built on prompt_toolkit:

* highlighting with the kernel's lexer (:func:`~ipymirror.core.render.lexer_for`, the
  one peers' code is drawn with) in the same 16 colours, and matching brackets;
* completions from the kernel in a menu, each with its type when the kernel
  sends ``_jupyter_types_experimental``;
* persistent history, one file per kernel language (:func:`history_path`): Up/Down
  search by the prefix already typed, Ctrl-R searches backwards, and the rest of a
  line from history is suggested in grey (Right accepts it);
* emacs (default) or vi key bindings.

It knows no transport: the kernel is reached through the two callables it is given.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.enums import DEFAULT_BUFFER, EditingMode
from prompt_toolkit.filters import has_focus, is_done
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.layout.processors import (
    ConditionalProcessor,
    HighlightMatchingBracketProcessor,
)
from prompt_toolkit.lexers import Lexer, PygmentsLexer
from prompt_toolkit.styles import BaseStyle, Style, merge_styles

from ipymirror.core.render import lexer_for
from ipymirror.core.replies import CompleteReply

__all__ = [
    "KernelCompleter",
    "LineReader",
    "code_style",
    "editing_mode",
    "history_for",
    "history_path",
    "input_processors",
    "newline_indent",
    "prompt_lexer",
]

Complete = Callable[[str, int], Awaitable[CompleteReply]]


class KernelCompleter(Completer):
    """Tab completion from the kernel's ``complete_reply``, typed when it says so.

    There is deliberately no short timeout: a kernel's first completion loads its
    completion machinery (jedi: seconds on a loaded machine), and a Tab that gave
    up after two seconds is the "first Tab does nothing" bug.  prompt_toolkit
    drops the answer by itself if you typed on meanwhile.
    """

    def __init__(self, complete: Complete) -> None:
        self.complete = complete

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Any:
        return iter(())  # only the async path is used

    async def get_completions_async(
        self, document: Document, complete_event: CompleteEvent
    ) -> AsyncGenerator[Completion, None]:
        pos = document.cursor_position
        try:
            reply = await self.complete(document.text, pos)
        except TimeoutError:
            return
        for match in reply.matches:
            if match.start > pos:
                continue
            yield Completion(
                match.text,
                start_position=match.start - pos,
                display_meta=match.type or None,
            )


def prompt_lexer(language: str) -> Lexer | None:
    """A prompt_toolkit lexer for the kernel's language (None: plain text)."""
    lexer = lexer_for(language)
    return None if lexer is None else PygmentsLexer(type(lexer))


def _pt_color(spec: str) -> str:
    """A pygments terminal colour spec ('_cyan_', '**', 'brightblue') -> prompt_toolkit's."""
    parts = []
    if spec.startswith("**") or (spec.startswith("*") and spec.endswith("*")):
        parts.append("bold")
    if spec.startswith("_") and spec.endswith("_"):
        parts.append("underline")
    name = spec.strip("*_")
    if name:
        parts.append("ansi" + name)
    return " ".join(parts)


def code_style(light: bool = True) -> Style:
    """Styles for the lexer's tokens: the colours pygments' TerminalFormatter gives
    peers' code (``light`` picks its light-background column, as the renderer does)."""
    from prompt_toolkit.styles.pygments import pygments_token_to_classname
    from pygments.formatters.terminal import TERMINAL_COLORS  # type: ignore[attr-defined]

    rules = []
    for token, (on_light, on_dark) in TERMINAL_COLORS.items():
        style = _pt_color(on_light if light else on_dark)
        if style and token is not None:
            rules.append((pygments_token_to_classname(token), style))
    return Style(rules)


def prompt_style(base: BaseStyle, light: bool) -> BaseStyle:
    return merge_styles([code_style(light), base])


def input_processors(brackets: bool = True) -> list[Any]:
    """Highlight the bracket that matches the one at the cursor, as IPython does."""
    if not brackets:
        return []
    return [
        ConditionalProcessor(
            HighlightMatchingBracketProcessor(chars="[](){}"),
            has_focus(DEFAULT_BUFFER) & ~is_done,
        )
    ]


def editing_mode(name: str) -> EditingMode:
    return EditingMode.VI if name.lower() == "vi" else EditingMode.EMACS


def history_path(data_dir: str, language: str) -> str:
    """``<jupyter data dir>/ipymirror/history-<language>``: one history per language,
    so Up in an R kernel never offers Python.  Kept by ipymirror itself (works with
    every kernel, also one that does not answer ``history_request``)."""
    safe = re.sub(r"[^a-z0-9_+-]", "_", language.lower()) or "unknown"
    return os.path.join(data_dir, "ipymirror", f"history-{safe}")


def history_for(path: str | None) -> History:
    if path is None:
        return InMemoryHistory()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    except OSError:
        return InMemoryHistory()
    return FileHistory(path)


def auto_suggest(enabled: bool) -> AutoSuggestFromHistory | None:
    return AutoSuggestFromHistory() if enabled else None


def newline_indent(text_before_cursor: str, python: bool) -> str:
    """The indentation a new line gets: the current line's, one level more after ``:``."""
    line = text_before_cursor.rsplit("\n", 1)[-1]
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    if python and line.rstrip().endswith(":"):
        indent += "    "
    return indent


class LineReader:
    """``--simple-prompt``: lines from stdin with no escape sequences at all.

    A daemon thread reads stdin (a blocking read must never keep the process
    alive at exit) and hands lines to the event loop; EOF is ``None``.
    """

    def __init__(self, stream: Any = None, out: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stdin
        self.out = out if out is not None else sys.stdout
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        loop = asyncio.get_running_loop()

        def read() -> None:
            while True:
                try:
                    line = self.stream.readline()
                except (OSError, ValueError):
                    line = ""
                loop.call_soon_threadsafe(self._lines.put_nowait, line or None)
                if not line:
                    return

        self._thread = threading.Thread(target=read, name="ipymirror-stdin", daemon=True)
        self._thread.start()

    async def readline(self, prompt: str) -> str:
        """The next line (without its newline); EOFError at the end of input."""
        if self._thread is None:
            self._start()
        self.out.write(prompt)
        self.out.flush()
        line = await self._lines.get()
        if line is None:
            self._lines.put_nowait(None)  # stays at EOF
            raise EOFError
        return line.rstrip("\n").rstrip("\r")

    async def read_cell(
        self, prompt: str, is_complete: Callable[[str], Awaitable[tuple[str, str]]]
    ) -> str:
        """Lines until the kernel says the cell is complete (``...:`` for the next)."""
        lines = [await self.readline(prompt)]
        while lines[-1].strip():
            status, _ = await is_complete("\n".join(lines))
            if status != "incomplete":
                break
            try:
                lines.append(await self.readline("...: "))
            except EOFError:
                break
        return "\n".join(lines)
