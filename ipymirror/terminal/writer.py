"""Writing committed lines to the terminal above a live prompt_toolkit app.

Rules this writer keeps:

* Output is written in frames.  Above a running app a frame is *one* write:
  erase the app, the batch of lines, the app drawn again — so the terminal
  never shows a moment without your prompt, and a burst of 10,000 messages
  costs a few frames, not 10,000 prompt redraws.
* Between frames the event loop runs, so keystrokes are read and echoed even
  while a flood is being drawn.  Frames adapt their size to the terminal's
  speed, aiming at ~10 ms each.
* Above an app, a frame costs a redraw of the prompt (a few ms, more under
  load), whatever it carries; so frames there are paced: the next one starts
  no sooner than ``FRAME_GAP``, or twice the last one's time, after it.  Lines
  arriving meanwhile join it.  Unpaced, a flood the mirror keeps up with came
  in batches of a few lines, each its own frame: the redraws took half the
  loop, the reading of IOPub fell behind, and the backlog grew inside ZMQ,
  out of reach of the bound below (a flood of 100,000 lines under CPU load).
* The queue between network and terminal is bounded (``max_pending`` bytes).
  If a *terminal* cannot keep up, the oldest unwritten lines are dropped and a
  notice line says how many — never silently.  A frame is not written to a
  terminal that takes nothing now (its buffer is full): the loop waits for it
  to be writable, reading IOPub meanwhile, so that the backlog is here, under
  this bound, and not unread in ZMQ.  A file or a pipe is not a
  terminal: past the bound the writer waits for it (blocking) and drops nothing.
* Writes go straight to the file descriptor in bytes: no per-line work.
* A picture is drawn by the ``painter`` in its worker; frames write
  everything before it, then wait (the loop still runs) until it is ready, so
  the text after a plot never overtakes it.  Without a painter, or on failure,
  it is its placeholder line.
* A write error (a full disk, a closed pipe) is final: nothing more is
  written, :attr:`TerminalWriter.error` holds the one line to say, ``on_error``
  is called, and every later :meth:`push` or :meth:`flush_now` raises it, so
  the command ends with that line and a non-zero status.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import select
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ipymirror.core.images import Picture
from ipymirror.errors import MirrorError
from ipymirror.terminal.images import ImagePainter, fallback

__all__ = ["TerminalWriter", "output_error"]

FRAME_MIN, FRAME_MAX = 32 * 1024, 256 * 1024  # bytes per frame, adapted between these
FRAME_TARGET = 0.01  # seconds a frame should take; the loop gets a turn after each
FRAME_GAP = 0.02  # seconds between the starts of two frames above an app, at least
FRAME_GAP_MAX = 0.25  # ... and at most (a frame slow to write does not stop the next)
MAX_PENDING = 16 * 1024 * 1024  # bytes waiting for the terminal, at most
DRAW_TIMEOUT = 10.0  # seconds a picture may hold up the output behind it
EXIT_WAIT = 2.0  # seconds flush_now waits for pictures still drawing; then placeholders


class TerminalWriter:
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
        terminal: bool | None = None,
        painter: ImagePainter | None = None,
    ) -> None:
        self.stream = stream
        try:
            self.fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # StringIO in tests
            self.fd = None
        #: May output be dropped when it cannot keep up?  Only on a terminal.
        self.terminal = _isatty(stream) if terminal is None else terminal
        self.error: MirrorError | None = None
        self.on_error: Callable[[MirrorError], None] | None = None
        self.app: Any = None
        self.max_pending = max_pending
        self._notice = notice
        self.painter = painter
        self.draw_timeout = DRAW_TIMEOUT
        self._pending: deque[bytes | _Drawing] = deque()
        self._size = 0
        self._scheduled = False
        self.frame_bytes = 64 * 1024
        self.lines_written = 0
        self.lines_dropped = 0
        self._unannounced = 0  # dropped lines the screen has not been told about yet
        self.frames = 0
        self._next_frame = 0.0  # monotonic time before which no frame is drawn above an app
        self.held = False  # a pager or an editor owns the screen: keep lines until release()

    # -- input side ----------------------------------------------------------
    def push(self, chunks: Sequence[str | Picture]) -> None:
        """Queue committed chunks (text ending in a newline, or pictures); schedule a frame."""
        if self.error is not None:
            raise self.error
        if not chunks:
            return
        text: list[str] = []
        for chunk in chunks:
            if isinstance(chunk, Picture):
                if text:
                    self._append("".join(text).encode("utf-8", "replace"))
                    text = []
                self._append_picture(chunk)
            else:
                text.append(chunk)
        if text:
            self._append("".join(text).encode("utf-8", "replace"))
        if self._size > self.max_pending:
            if self.terminal:
                self._shed()
            else:
                self._drain()
        self._schedule()

    def _append(self, data: bytes) -> None:
        self._pending.append(data)
        self._size += len(data)

    def _append_picture(self, pic: Picture) -> None:
        if self.painter is None:
            self._append(fallback(pic))
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (tests, shutdown): draw now
            self._append(self.painter.encode(pic))
            return
        drawing = _Drawing(self.painter.submit(pic), fallback(pic), pic.rows)

        def drawn(_: object) -> None:  # on a pool thread; the loop may be gone (exit)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._schedule)

        drawing.future.add_done_callback(drawn)
        self._pending.append(drawing)
        self._size += len(drawing.fallback)

    def _ready(self) -> bool:
        """Is there something a frame can write now (not just a picture still drawing)?

        A picture gets ``draw_timeout`` seconds at the head of the queue; then it is
        its placeholder and its worker is stopped, so no image (a hostile SVG) can hold
        up the text behind it for longer.
        """
        if not self._pending:
            return False
        head = self._pending[0]
        if not isinstance(head, _Drawing) or head.future.done():
            return True
        now = time.monotonic()
        if head.deadline is None:
            head.deadline = now + self.draw_timeout
            with contextlib.suppress(RuntimeError):  # no loop: flush_now waits instead
                asyncio.get_running_loop().call_later(self.draw_timeout, self._schedule)
            return False
        if now < head.deadline:
            return False
        head.future = _done(head.fallback)
        if self.painter is not None:
            self.painter.abandon()
        return True

    def _wait_head(self, deadline: float | None = None) -> None:
        """Block until the picture at the head of the queue is drawn, or ``deadline``
        (monotonic) passes: then it is its placeholder (exit must not wait long)."""
        head = self._pending[0] if self._pending else None
        if isinstance(head, _Drawing) and not head.future.done():
            timeout = 10.0 if deadline is None else max(0.0, deadline - time.monotonic())
            concurrent.futures.wait([head.future], timeout=timeout)
            if not head.future.done():
                head.future.cancel()
                head.future = _done(head.fallback)

    def _drain(self) -> None:
        """A file or pipe: wait for it (write now, blocking) down to half the cap."""
        while self._pending and self._size > self.max_pending // 2 and self.error is None:
            self._wait_head()
            self._write(self._take(FRAME_MAX))
        if self.error is not None:
            raise self.error

    def _shed(self) -> None:
        """Drop the oldest unwritten output down to half the cap.

        The gap is announced by the next frame, in the place of the dropped lines.
        """
        while self._pending and self._size > self.max_pending // 2:
            data = self._pending.popleft()
            if isinstance(data, _Drawing):
                data.future.cancel()
                self._size -= len(data.fallback)
                self.lines_dropped += data.rows
                self._unannounced += data.rows
                continue
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
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (tests, shutdown): write now
                self._frame()
                return
            wait = self._next_frame - time.monotonic()
            if wait > 0 and self.app is not None and self.app.is_running:
                loop.call_later(wait, self._frame)  # paced: see the rules above
            else:
                loop.call_soon(self._frame)

    def hold(self) -> None:
        """Stop writing (lines still queue, within the cap) while something else owns the screen."""
        self.held = True

    def release(self) -> None:
        self.held = False
        self._schedule()

    def _frame(self) -> None:
        self._scheduled = False
        if self.held or (not self._ready() and not self._unannounced):
            return  # held by a pager; or a picture still drawing schedules the next frame
        if self._terminal_full():
            return  # the frame is drawn once the terminal takes more (see the rules above)
        app = self.app
        start = time.monotonic()
        data = self._take(self.frame_bytes)
        if app is not None and app.is_running:
            self._write_above(app, data)
        else:
            self._write(data)
        self.frames += 1
        elapsed = time.monotonic() - start
        self._next_frame = start + min(FRAME_GAP_MAX, max(FRAME_GAP, 2 * elapsed))
        if elapsed < FRAME_TARGET / 2:
            self.frame_bytes = min(FRAME_MAX, self.frame_bytes * 2)
        elif elapsed > FRAME_TARGET * 2:
            self.frame_bytes = max(FRAME_MIN, self.frame_bytes // 2)
        if self._ready():
            self._schedule()

    def _terminal_full(self) -> bool:
        """Is this a terminal that takes nothing now?  Then wait until it does.

        A write to a full terminal blocks the whole loop (a loaded tmux once held
        one frame 2.3 s): IOPub goes unread meanwhile, and its backlog grows inside
        ZMQ, unbounded and uncounted.  Waiting here instead keeps the loop reading
        into ``_pending``, which is bounded and announces what it drops.
        """
        if not self.terminal or self.fd is None:
            return False  # a file or a pipe is waited for by the write itself
        try:
            if select.select([], [self.fd], [], 0)[1]:
                return False
            loop = asyncio.get_running_loop()
        except (OSError, ValueError, RuntimeError):  # no loop: write (and wait) now
            return False
        fd = self.fd
        self._scheduled = True  # pushes meanwhile only queue (and shed at the cap)

        def writable() -> None:
            loop.remove_writer(fd)
            self._scheduled = False
            self._schedule()

        loop.add_writer(fd, writable)
        return True

    @staticmethod
    def _write_above(app: Any, data: bytes) -> None:
        """Erase the app, write ``data``, draw the app again: one write() in all.

        prompt_toolkit flushes after each of those steps; holding its flush
        until the end is what keeps the prompt on screen at every instant.
        """
        output, renderer = app.output, app.renderer
        size = output.get_size()
        # Rows from the app's top to the screen's bottom, as last reported.  If
        # that is all the app needs, it sits on the bottom rows and still will
        # after more lines scroll in above it: no need to ask the terminal.
        below = renderer._min_available_height
        needed = app.layout.container.preferred_height(size.columns, size.rows).preferred
        output.flush = _hold
        try:
            renderer.erase(leave_alternate_screen=False)
            output.write_raw(data.decode("utf-8", "replace"))
            if 0 < below <= needed:
                renderer._min_available_height = below
            else:
                # Where the app now starts decides how far down it may extend (the
                # status line stays on the bottom row); the terminal's answer is an
                # ordinary input event the app handles by itself.
                renderer.request_absolute_cursor_position()
            app._redraw()  # private, but the only synchronous redraw prompt_toolkit has
        finally:
            del output.flush  # back to the class's flush
        output.flush()

    def _take(self, limit: int) -> bytes:
        """About ``limit`` bytes of whole lines; a big chunk is split at a newline."""
        parts: list[bytes] = []
        size = 0
        while self._pending and size < limit:
            head = self._pending[0]
            if isinstance(head, _Drawing):
                if not head.future.done():
                    break
                self._pending.popleft()
                self._size -= len(head.fallback)
                data = head.result()
                parts.append(data)  # whole: never split inside an escape sequence
                size += len(data)
                continue
            self._pending.popleft()
            data = head
            room = limit - size
            if len(data) > room:
                cut = data.rfind(b"\n", 0, room) + 1 or data.find(b"\n", room) + 1
                if 0 < cut < len(data):
                    self._pending.appendleft(data[cut:])
                    data = data[:cut]
            parts.append(data)
            size += len(data)
            self._size -= len(data)
        if self._unannounced:
            note = f"… {self._unannounced:,} lines not shown: the terminal could not keep up"
            parts.insert(0, self._notice(note).encode() + b"\n")
            self._unannounced = 0
        data = b"".join(parts)
        self.lines_written += data.count(b"\n")
        return data

    def _write(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
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
                view = view[n:]
        except OSError as exc:  # a full disk, a closed pipe, a terminal gone
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self._pending.clear()
        self._size = 0
        self._unannounced = 0
        self.error = output_error(self.stream, exc)
        if self.on_error is not None:
            self.on_error(self.error)

    def refresh(self) -> None:
        """Ask the running app to redraw (the live region or status changed)."""
        if not self._scheduled and self.app is not None and self.app.is_running:
            self.app.invalidate()

    def flush_now(self) -> None:
        """Write everything pending synchronously (before exit); raises a write error."""
        deadline = time.monotonic() + EXIT_WAIT
        while (self._pending or self._unannounced) and self.error is None:
            self._wait_head(deadline)
            self._write(self._take(FRAME_MAX))
        if self.error is not None:
            raise self.error


def output_error(stream: Any, exc: OSError) -> MirrorError:
    """The one line for a failed write to ``stream`` (a full disk, a closed pipe).

    The stream's descriptor is pointed at /dev/null, so later prints, and
    Python's flush at exit, do not fail a second time.
    """
    try:
        fd: int | None = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    where = "standard output" if fd == 1 else getattr(stream, "name", "the output")
    if fd is not None:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        except OSError:
            pass
    return MirrorError(f"cannot write to {where}: {exc.strerror or exc}")


class _Drawing:
    """A picture the painter is drawing: its future bytes, and what to write instead."""

    __slots__ = ("deadline", "fallback", "future", "rows")

    def __init__(
        self, future: concurrent.futures.Future[bytes], fallback: bytes, rows: int
    ) -> None:
        self.future = future
        self.fallback = fallback
        self.rows = rows
        self.deadline: float | None = None  # set when it reaches the head of the queue

    def result(self) -> bytes:
        try:
            return self.future.result(timeout=0)
        except BaseException:  # cancelled, or the worker failed: the placeholder
            return self.fallback


def _done(data: bytes) -> concurrent.futures.Future[bytes]:
    future: concurrent.futures.Future[bytes] = concurrent.futures.Future()
    future.set_result(data)
    return future


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, OSError, ValueError):
        return False


def _hold() -> None:
    """Stands in for an output's flush while a frame is being assembled."""
