"""What the prompt shows around your input: live lines, status line, ``In [n]:``.

Redrawn on every frame of a flood, so the ANSI is parsed only when something it
shows changed (the transcript, presence, the size).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prompt_toolkit.formatted_text import ANSI

from ipymirror.core.events import Peer
from ipymirror.core.status import status_line
from ipymirror.terminal.mirror import Mirror
from ipymirror.terminal.widgets import live_text

__all__ = ["PromptFace"]


class PromptFace:
    """The prompt's message, continuation and toolbar for ``app()``'s application."""

    def __init__(self, mirror: Mirror, me: Peer, app: Callable[[], Any]) -> None:
        self.mirror = mirror
        self.me = me
        self.app = app
        self._message_key: Any = None
        self._message_ansi = ANSI("")
        self._toolbar_key = -1
        self._toolbar_ansi = ANSI("")

    def live_text(self) -> str:
        return live_text(self.mirror, self.app().output.get_size().rows)

    def in_prompt(self) -> str:
        return self.mirror.renderer.paint("\x1b[32m", f"In [{self.mirror.presence.next_count()}]: ")

    def message(self) -> ANSI:
        app = self.app()
        size = app.output.get_size()
        self.mirror.renderer.width = max(20, size.columns - 2)  # rich layouts follow resizes
        # prompt_toolkit hides the bottom toolbar while it does not know the rows
        # below the cursor (a terminal that ignores cursor position reports): then
        # the status line goes above the prompt instead.
        below = not app.is_done and not app.renderer.height_is_known
        waiting = self.mirror.writer.pending_bytes() > 0  # then live lines are not shown
        key = (
            self.mirror.transcript.version,
            self.mirror.presence.version,
            size,
            app.is_done,
            below,
            waiting,
            painter.version if (painter := self.mirror.writer.painter) else 0,  # live plots
        )
        if key != self._message_key:  # redrawn every frame of a flood: parse ANSI only on change
            if app.is_done:
                text = self.in_prompt()
            else:
                status = self.status() + "\n" if below else ""
                text = self.live_text() + status + self.in_prompt()
            self._message_key, self._message_ansi = key, ANSI(text)
        return self._message_ansi

    def continuation(self, width: int, line_number: int, wrap_count: int) -> ANSI:
        return ANSI(self.mirror.renderer.paint("\x1b[32m", "...: ".rjust(width)))

    def status(self) -> str:
        return status_line(self.mirror.presence, self.mirror.renderer, self.me)

    def toolbar(self) -> ANSI:
        if self._toolbar_key != self.mirror.presence.version:
            self._toolbar_key, self._toolbar_ansi = (
                self.mirror.presence.version,
                ANSI(self.status()),
            )
        return self._toolbar_ansi
