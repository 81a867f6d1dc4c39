"""``ipymirror record``: a passive collaborator that appends every broadcast to a file.

The :class:`Recorder` is a sink of the one :class:`~ipymirror.core.pipeline.Pipeline`:
the pipeline hands it every raw IOPub message before anything else sees it,
whether the pipeline feeds a console (``ipymirror --record``) or nothing at all
(``ipymirror record``, which renders no transcript).  Rules:

* Every message is written as it arrives, in arrival order, one line each
  (see :mod:`ipymirror.recording.format`); nothing waits in a buffer.
* ``record`` says "recording" only once the kernel's IOPub stream has been seen
  to reach it, so nothing broadcast after that line can be missing.
* A write error (full disk) stops the recording, and says so once; it never
  stops the console that records.
* A message that cannot be recorded as it is (malformed, or nested deeper than
  JSON can be written) is recorded raw (see the format), with one warning;
  the end line counts them.
* ``record`` never executes: its only requests are ``kernel_info``.  It ends on
  Ctrl-C, SIGTERM/SIGHUP, or when the kernel is gone for good (a shutdown the
  heartbeat confirms, or a silence longer than a restart takes); not on a
  restart: the stream continues and the restart is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from argparse import Namespace
from collections.abc import AsyncIterable, Callable
from typing import Any, TextIO

from ipymirror.commands._lifecycle import (
    background,
    connected,
    heartbeat,
    on_signals,
    until_stopped,
)
from ipymirror.core.events import Event, KernelGone
from ipymirror.core.images import human_size
from ipymirror.core.pipeline import Pipeline
from ipymirror.core.presence import Presence
from ipymirror.core.protocol import msg_type_of
from ipymirror.core.render import Renderer
from ipymirror.core.transcript import Transcript
from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.recording.files import RecordingWriter
from ipymirror.recording.format import header_record
from ipymirror.terminal.liveline import LiveLine
from ipymirror.transports.base import KernelTransport

__all__ = ["Recorder", "check_target", "run_record"]


Message = dict[str, Any]


def check_target(path: str) -> None:
    """Refuse to write into an existing recording (or anything else non-empty)."""
    if os.path.isdir(path):
        raise MirrorError(f"{path} is a directory", ExitStatus.RECORDING)
    if os.path.exists(path) and os.path.getsize(path) > 0:
        raise MirrorError(
            f"{path} already exists; record to a new file (or remove it first)",
            ExitStatus.RECORDING,
        )


class Recorder:
    """Appends every message it is given to a recording; counts what it saw."""

    def __init__(
        self,
        writer: RecordingWriter,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_error: Callable[[str], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.writer = writer
        self.clock = clock
        self.start = clock()
        self.on_error = on_error
        self.on_warning = on_warning
        self.on_change: Callable[[], None] | None = None
        self.messages = 0
        self.cells = 0
        self.error: str | None = None
        self.raw_warned = False

    @classmethod
    def create(
        cls,
        path: str,
        kernel_info: dict[str, Any],
        kernel_name: str = "",
        *,
        on_error: Callable[[str], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> Recorder:
        """A new recording at ``path``, its header written; t=0 is now."""
        check_target(path)
        try:
            writer = RecordingWriter(path)
            writer.write_line(header_record(kernel_info, kernel_name))
        except OSError as exc:
            raise MirrorError(
                f"cannot write recording {path}: {exc.strerror or exc}", ExitStatus.RECORDING
            ) from None
        return cls(writer, on_error=on_error, on_warning=on_warning)

    @classmethod
    def for_link(
        cls,
        path: str,
        link: KernelTransport,
        *,
        on_error: Callable[[str], None] | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> Recorder:
        return cls.create(
            path, link.kernel_info, link.kernel_name, on_error=on_error, on_warning=on_warning
        )

    @property
    def raw(self) -> int:
        return self.writer.raw

    @property
    def path(self) -> str:
        return self.writer.path

    @property
    def bytes(self) -> int:
        return self.writer.bytes

    def write(self, msg: Message) -> None:
        """The sink: append ``msg``, stamped with the time since the start."""
        if self.error is not None:
            return
        try:
            self.writer.write(msg, self.clock() - self.start)
        except OSError as exc:
            self.error = f"cannot write recording {self.path}: {exc.strerror or exc}"
            if self.on_error is not None:
                self.on_error(f"recording stopped: {self.error}")
            return
        self.messages += 1
        if self.writer.raw == 1 and self.raw_warned is False:
            self.raw_warned = True
            if self.on_warning is not None:
                self.on_warning(
                    f"message {self.messages:,} ({msg_type_of(msg) or 'no type'}) could not be "
                    "recorded as it is (malformed, or nested too deeply): recorded raw"
                )
        if msg_type_of(msg) == "execute_input":
            self.cells += 1
        if self.on_change is not None:
            self.on_change()

    def status(self, room: Presence) -> str:
        peers = len(room.others())
        return (
            f"● rec {self.messages:,} messages │ {self.cells:,} cells │ {peers} "
            f"peer{'s' if peers != 1 else ''} │ {human_size(self.bytes)} │ kernel {room.state}"
        )

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.writer.close()


class NoTranscript(Transcript):
    """A transcript that shows nothing: recording stays cheap."""

    def feed(self, ev: Event) -> None:
        pass

    def notice(self, text: str) -> None:
        pass


async def feed_all(pipeline: Pipeline, batches: AsyncIterable[list[Message]]) -> None:
    async for batch in batches:
        pipeline.feed(batch, time.monotonic())


async def run_record(args: Namespace) -> ExitStatus:
    out: str = args.out
    check_target(out)
    stream = sys.stdout
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[str] = loop.create_future()
    on_signals(loop, ended, sigint=True)  # from the start: a stop just after "recording" counts

    def end(why: str) -> None:
        if not ended.done():
            ended.set_result(why)

    async with connected(args, passive=True, role="record") as link:
        recorder = Recorder.for_link(out, link, on_error=end)
        try:
            await _record(link, recorder, stream, out, end, ended)
        finally:
            recorder.close()
    why = ended.result() if ended.done() and ended.result() else "stopped"
    raw = f" ({recorder.raw:,} of them raw)" if recorder.raw else ""
    print(
        f"{why}: recorded {recorder.messages:,} messages{raw}, {recorder.cells:,} cells, "
        f"{human_size(recorder.bytes)} to {out}",
        file=stream,
        flush=True,
    )
    return ExitStatus.OK


async def _record(
    link: KernelTransport,
    recorder: Recorder,
    stream: TextIO,
    out: str,
    end: Callable[[str], None],
    ended: asyncio.Future[str],
) -> None:
    """Feed the recorder until a stop, the kernel's shutdown or a write error."""
    renderer = Renderer(color=False)
    mirror = Pipeline(renderer, link.session_id, NoTranscript(renderer))
    mirror.sinks.append(recorder.write)  # connect() saw IOPub deliver: nothing is missed

    def on_event(ev: Event) -> None:
        # Not on a shutdown_reply alone (a peer can make the kernel say anything):
        # when the heartbeat confirms it, or stays silent past a restart's time.
        if isinstance(ev, KernelGone) and ev.for_good:
            end("the kernel shut down" if ev.peer.session else "the kernel is gone")

    mirror.listeners.append(on_event)
    print(  # first: if the output fails, nothing was started (IOPub waits in its queue)
        f"recording the {link.description} of {link.where} to {out} (Ctrl-C stops)",
        file=stream,
        flush=True,
    )
    pump = asyncio.ensure_future(feed_all(mirror, link.iopub_batches()))
    status = LiveLine(stream, lambda: recorder.status(mirror.presence))

    def warn(text: str) -> None:
        if status.tty:
            status.clear()
        print(f"ipymirror: warning: {text}", file=sys.stderr, flush=True)
        if status.tty:
            status.draw()

    recorder.on_warning = warn
    if status.tty:
        recorder.on_change = status.changed
        status.draw()
    try:
        async with background(heartbeat(link, mirror, asyncio.Event())):
            await until_stopped(pump, ended=ended)
    finally:
        if status.tty:
            status.clear()
    mirror.feed(await link.pending_iopub())
    if recorder.error is not None:
        raise MirrorError(recorder.error, ExitStatus.RECORDING)
