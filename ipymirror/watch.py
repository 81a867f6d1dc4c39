"""``ipymirror watch``: the mirror with no prompt.  It never sends a request
that could run code: its only requests are ``kernel_info``.

On a terminal it keeps the live region and status line at the bottom (q,
Ctrl-C or Ctrl-D quits); piped, it writes plain committed lines only.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl

from .mirror import Mirror
from .render import RESET
from .statusline import status_line

__all__ = ["Watch"]


class Watch:
    def __init__(self, mirror: Mirror, *, interactive: bool) -> None:
        self.mirror = mirror
        self.interactive = interactive

    def _live(self) -> ANSI:
        lines = self.mirror.transcript.live()
        rows = self._app.output.get_size().rows
        keep = max(3, rows // 2)
        if len(lines) > keep:
            lines = lines[-keep:]
        return ANSI("\n".join(lines) + RESET if lines else "")

    def _status(self) -> ANSI:
        return ANSI(status_line(self.mirror.room, self.mirror.renderer) + "  (q quits)")

    def _make_app(self) -> Application[None]:
        kb = KeyBindings()

        @kb.add("<any>")
        def _ignore(event: Any) -> None:
            """Watching is read-only: keys do nothing."""

        @kb.add("q")
        @kb.add("c-c")
        @kb.add("c-d")
        def _quit(event: Any) -> None:
            event.app.exit()

        body = HSplit(
            [
                Window(FormattedTextControl(self._live), dont_extend_height=True),
                Window(FormattedTextControl(self._status), height=1),
            ]
        )
        return Application(layout=Layout(body), key_bindings=kb, erase_when_done=True)

    async def run(self, until: asyncio.Future[Any]) -> None:
        """Show the stream until the user quits or ``until`` completes (stream ended)."""
        if not self.interactive:
            await until
            return
        self._app = app = self._make_app()
        self.mirror.screen.app = app
        until.add_done_callback(lambda _: app.exit() if app.is_running else None)
        try:
            if not until.done():
                await app.run_async()
        finally:
            self.mirror.screen.app = None
