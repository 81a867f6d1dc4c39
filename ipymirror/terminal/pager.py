"""Long help pages (``len?``, ``obj??``, ``%magic``): a scrollable view, or ``$PAGER``.

The built-in pager is a full-screen prompt_toolkit app on the alternate screen,
so leaving it (``q``) gives back the console exactly as it was, like ``less``.
Text arrives sanitised (colours kept); it is split into lines once and only the
visible slice is drawn, so a 100,000-line page scrolls as fast as a short one.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
from collections.abc import Callable
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl

__all__ = ["Pager", "page_external"]


class Pager:
    """A read-only view of ``text``: arrows, j/k, PgUp/PgDn, space, b, g/G, q leaves."""

    def __init__(self, text: str, *, start: int = 0, **app_kwargs: Any) -> None:
        self.lines = text.rstrip("\n").split("\n")
        self.top = max(0, min(start, len(self.lines) - 1))
        self.app: Application[None] = Application(
            layout=Layout(
                HSplit(
                    [
                        Window(FormattedTextControl(self._visible), wrap_lines=False),
                        Window(FormattedTextControl(self._footer), height=1, style="reverse"),
                    ]
                )
            ),
            key_bindings=self._bindings(),
            full_screen=True,
            **app_kwargs,
        )

    def _rows(self) -> int:
        return max(1, self.app.output.get_size().rows - 1)

    def _visible(self) -> ANSI:
        self.top = max(0, min(self.top, len(self.lines) - self._rows()))
        return ANSI("\n".join(self.lines[self.top : self.top + self._rows()]))

    def _footer(self) -> str:
        last = min(len(self.lines), self.top + self._rows())
        return (
            f" lines {self.top + 1}-{last} of {len(self.lines)}"
            "   q leaves · ↑↓ j k · PgUp PgDn space b · g G"
        )

    def scroll(self, lines: int) -> None:
        self.top = max(0, min(self.top + lines, len(self.lines) - self._rows()))
        self.app.invalidate()

    def _bindings(self) -> KeyBindings:
        kb = KeyBindings()

        def one() -> int:
            return 1

        def back() -> int:
            return -1

        def page() -> int:
            return self._rows()

        def page_back() -> int:
            return -self._rows()

        steps: dict[str, Callable[[], int]] = {
            "down": one, "j": one, "enter": one, "up": back, "k": back,
            "pagedown": page, "space": page, "c-f": page,
            "pageup": page_back, "b": page_back, "c-b": page_back,
        }  # fmt: skip
        for key, amount in steps.items():

            @kb.add(key)
            def _move(event: Any, amount: Callable[[], int] = amount) -> None:
                self.scroll(amount())

        @kb.add("g")
        @kb.add("home")
        def _top(event: Any) -> None:
            self.scroll(-len(self.lines))

        @kb.add("G")
        @kb.add("end")
        def _bottom(event: Any) -> None:
            self.scroll(len(self.lines))

        @kb.add("q")
        @kb.add("Q")
        @kb.add("escape", eager=True)
        @kb.add("c-c")
        @kb.add("c-d")
        def _quit(event: Any) -> None:
            event.app.exit()

        return kb

    async def run(self) -> None:
        await self.app.run_async()


async def page_external(command: str, text: str) -> bool:
    """Show ``text`` with ``command`` (``less -R``…); False if it could not be run."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return False
    if not argv:
        return False
    env = {**os.environ, "LESS": os.environ.get("LESS", "-R")}

    def run() -> bool:
        try:
            subprocess.run(argv, input=text.encode("utf-8", "replace"), env=env, check=False)
        except OSError:
            return False
        return True

    return await asyncio.get_running_loop().run_in_executor(None, run)
