"""Writing committed lines to the terminal above a live prompt_toolkit app.

Rules this writer keeps:

* Output is written in frames: everything pending (up to a time budget) goes
  out in one write, framed by one erase and one redraw of the app.  A burst of
  10,000 messages costs a few frames, not 10,000 prompt redraws.
* Between frames the event loop runs, so keystrokes are read and echoed even
  while a flood is being drawn (the prompt is redrawn after every frame).
* The queue between network and terminal is bounded (``max_pending`` bytes).
  If the terminal cannot keep up, the oldest unwritten lines are dropped and a
  notice line says how many — never silently.
* Writes go straight to the file descriptor in bytes: no per-line work.
"""

from __future__ import annotations

import asyncio
import os
import select
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["Screen"]

FRAME_BYTES = 256 * 1024  # at most this much per write() call
FRAME_BUDGET = 0.02  # seconds of writing before the loop gets a turn
MAX_PENDING = 16 * 1024 * 1024  # bytes waiting for the terminal, at most


class Screen:
    """Bounded, frame-batched output above whichever app is running.

    ``app`` is set by the frontend to the prompt_toolkit ``Application`` that
    currently owns the bottom of the terminal (or None: plain writes).
    ``notice`` turns ipymirror's own messages into a styled line.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        max_pending: int = MAX_PENDING,
        notice: Callable[[str], str] = lambda s: f"» {s}",
    ) -> None:
        self.stream = stream
        try:
            self.fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # StringIO in tests
            self.fd = None
        self.app: Any = None
        self.max_pending = max_pending
        self._notice = notice
        self._pending: deque[bytes] = deque()
        self._size = 0
        self._scheduled = False
        self.lines_written = 0
        self.lines_dropped = 0
        self._unannounced = 0  # dropped lines the screen has not been told about yet
        self.frames = 0

    # -- input side ----------------------------------------------------------
    def push(self, chunks: list[str]) -> None:
        """Queue committed chunks (each ending in a newline) and schedule a frame."""
        if not chunks:
            return
        data = "".join(chunks).encode("utf-8", "replace")
        self._pending.append(data)
        self._size += len(data)
        if self._size > self.max_pending:
            self._shed()
        self._schedule()

    def _shed(self) -> None:
        """Drop the oldest unwritten output down to half the cap.

        The gap is announced by the next frame, in the place of the dropped lines.
        """
        while self._pending and self._size > self.max_pending // 2:
            data = self._pending.popleft()
            self._size -= len(data)
            dropped = data.count(b"\n")
            self.lines_dropped += dropped
            self._unannounced += dropped

    def pending_bytes(self) -> int:
        return self._size

    # -- output side ---------------------------------------------------------
    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self._frame)
            except RuntimeError:  # no loop (tests, shutdown): write now
                self._frame()

    def _frame(self) -> None:
        self._scheduled = False
        if not self._pending and not self._unannounced:
            return
        app = self.app
        live = app is not None and app.is_running
        if live:
            app.renderer.erase(leave_alternate_screen=False)
        deadline = time.monotonic() + FRAME_BUDGET
        while self._pending or self._unannounced:
            data = self._take(FRAME_BYTES)
            self._write(data)
            if time.monotonic() > deadline:
                break
        self.frames += 1
        if live:
            app.invalidate()
        if self._pending:
            self._schedule()

    def _take(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while self._pending and size < limit:
            data = self._pending.popleft()
            parts.append(data)
            size += len(data)
        self._size -= size
        if self._unannounced:
            note = f"… {self._unannounced:,} lines not shown: the terminal could not keep up"
            parts.insert(0, self._notice(note).encode() + b"\n")
            self._unannounced = 0
        data = b"".join(parts)
        self.lines_written += data.count(b"\n")
        return data

    def _write(self, data: bytes) -> None:
        if self.fd is None:
            self.stream.write(data.decode("utf-8", "replace"))
            return
        self.stream.flush()  # whatever was printed through the text layer goes first
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                select.select([], [self.fd], [])
                continue
            except OSError:  # terminal gone: nothing more to show
                self._pending.clear()
                self._size = 0
                return
            view = view[n:]

    def refresh(self) -> None:
        """Ask the running app to redraw (the live region or status changed)."""
        if not self._scheduled and self.app is not None and self.app.is_running:
            self.app.invalidate()

    def flush_now(self) -> None:
        """Write everything pending synchronously (before exit)."""
        while self._pending or self._unannounced:
            self._write(self._take(FRAME_BYTES))
