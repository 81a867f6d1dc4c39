"""``ipymirror watch``: the mirror with no prompt.  It never sends a request
that could run code: its only requests are ``kernel_info``.

On a terminal it keeps the live region and status line at the bottom (q,
Ctrl-C or Ctrl-D quits); piped, it writes plain committed lines only.
``replay`` uses the same view with its playback keys and state added.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from prompt_toolkit.key_binding import KeyBindings, KeyBindingsBase, merge_key_bindings

from ipymirror.core.status import status_line, text_width
from ipymirror.terminal.mirror import Mirror
from ipymirror.terminal.widgets import live_text, status_app

__all__ = ["WatchView"]


class WatchView:
    """``keys`` adds key bindings; ``describe`` puts a word of state before the status."""

    def __init__(
        self,
        mirror: Mirror,
        *,
        interactive: bool,
        keys: KeyBindings | None = None,
        describe: Callable[[], str] | None = None,
    ) -> None:
        self.mirror = mirror
        self.interactive = interactive
        self.keys = keys
        self.describe = describe
        self.app: Any = None

    def _status(self) -> str:
        """One row whatever the width: the room's part is cut to what is left."""
        columns = self.app.output.get_size().columns if self.app is not None else 0
        if columns:
            self.mirror.renderer.width = max(20, columns - 2)  # wrapped peer lines follow
        columns = columns or self.mirror.renderer.width + 2
        if self.describe:
            head = self.describe()
            room = status_line(
                self.mirror.presence,
                self.mirror.renderer,
                width=max(1, columns - text_width(head) - 3),
            )
            return f"{head} │ {room}"
        hint = "  (q quits)"
        room = status_line(
            self.mirror.presence, self.mirror.renderer, width=max(1, columns - len(hint))
        )
        return room + hint

    def _make_app(self) -> Any:
        kb = KeyBindings()

        @kb.add("<any>")
        def _ignore(event: Any) -> None:
            """Watching is read-only: keys do nothing."""

        @kb.add("q")
        @kb.add("c-c")
        @kb.add("c-d")
        def _quit(event: Any) -> None:
            event.app.exit()

        keys: KeyBindingsBase = merge_key_bindings([kb, self.keys]) if self.keys else kb
        return status_app(
            lambda: live_text(self.mirror, self.app.output.get_size().rows, 1 / 2),
            self._status,
            keys,
        )

    async def run(self, until: asyncio.Future[Any]) -> None:
        """Show the stream until the user quits or ``until`` completes (stream ended)."""
        if not self.interactive:
            await until
            return
        self.app = app = self._make_app()
        self.mirror.writer.app = app
        until.add_done_callback(lambda _: app.exit() if app.is_running else None)
        try:
            if not until.done():
                await app.run_async()
        finally:
            self.mirror.writer.app = None
