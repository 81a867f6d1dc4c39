"""One status line for commands without a prompt (``record``, ``share``).

Rewritten in place on a terminal; piped, each change is a new line.  Redraws
are throttled: the things counted (messages, refused clients) can change
thousands of times a second.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["LiveLine"]

PERIOD = 0.25  # seconds between redraws, at most


class LiveLine:
    def __init__(self, stream: Any, text: Callable[[], str], period: float = PERIOD) -> None:
        self.stream = stream
        self.text = text
        self.period = period
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self._handle: asyncio.TimerHandle | None = None
        self._shown = ""

    def changed(self) -> None:
        """Something counted changed: redraw within ``period``."""
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(self.period, self.draw)

    def draw(self) -> None:
        self._handle = None
        text = self.text()
        if text != self._shown:
            self._shown = text
            self.stream.write(f"\r\x1b[K{text}" if self.tty else f"{text}\n")
            self.stream.flush()

    def clear(self) -> None:
        """Stop redrawing; on a terminal, erase the line."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._shown and self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self._shown = ""
