"""ipymirror.terminal.writer: bounded, frame-batched writes above a prompt_toolkit app.

Structural tests only (counts of frames, calls and bytes), no timing.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import threading

import pytest
from prompt_toolkit.data_structures import Size

from ipymirror.errors import MirrorError
from ipymirror.terminal.writer import TerminalWriter


async def drained(screen: TerminalWriter, turns: int = 10_000) -> None:
    """Give the loop turns until the writer has written all it holds.

    Frames are loop callbacks, so each turn makes progress; the bound only
    turns a writer that stopped writing into a failure.
    """
    for _ in range(turns):
        if not screen.pending_bytes() and not screen._scheduled:  # (no frame due either)
            return
        await asyncio.sleep(0)
    raise AssertionError(f"the writer still holds {screen.pending_bytes()} bytes")


def test_no_loop_writes_immediately():
    buf = io.StringIO()
    screen = TerminalWriter(buf)
    screen.push(["a\n", "b\n"])
    assert buf.getvalue() == "a\nb\n"
    screen.push(["é ☃\n"])
    assert buf.getvalue() == "a\nb\né ☃\n"
    assert (screen.frames, screen.lines_written, screen.pending_bytes()) == (2, 3, 0)
    screen.push([])
    assert screen.frames == 2


class _PipeReader:
    """Drain the read end of a pipe on a thread (so writes never block)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.chunks: list[bytes] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while data := os.read(self.fd, 65536):
            self.chunks.append(data)

    def result(self) -> bytes:
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()
        return b"".join(self.chunks)


def test_pushes_in_one_loop_iteration_become_few_frames():
    r, w = os.pipe()
    reader = _PipeReader(r)
    stream = open(w, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    screen = TerminalWriter(stream)
    assert screen.fd == w
    batches, per_batch = 20, 500

    async def main() -> None:
        n = 0
        for _ in range(batches):
            for _ in range(per_batch):  # one loop iteration: no await in here
                screen.push([f"line {n}\n"])
                n += 1
            assert screen.frames <= batches  # nothing written until the loop turns
            await asyncio.sleep(0)  # one loop turn per batch: what is under test
        await drained(screen)

    asyncio.run(main())
    stream.close()
    data = reader.result()
    os.close(r)
    pushes = batches * per_batch
    assert data == "".join(f"line {i}\n" for i in range(pushes)).encode()
    assert screen.lines_written == pushes
    assert screen.pending_bytes() == 0
    assert batches <= screen.frames <= 2 * batches  # one frame per loop turn (+ leftovers)
    assert screen.frames * 100 < pushes


def test_pending_queue_is_bounded_and_the_drop_is_announced_first():
    buf = io.StringIO()
    screen = TerminalWriter(buf, max_pending=1000, notice=lambda s: f"NOTICE {s}", terminal=True)
    chunks = [f"{i:03d}" + "x" * 96 + "\n" for i in range(100)]  # 100 bytes each
    assert all(len(c) == 100 for c in chunks)

    async def main() -> None:
        for chunk in chunks:  # the loop is stalled: no frame can run
            screen.push([chunk])
            assert screen.pending_bytes() <= 1000
        assert buf.getvalue() == ""
        await drained(screen)

    asyncio.run(main())
    lines = buf.getvalue().split("\n")[:-1]
    assert lines[0].startswith("NOTICE "), lines[:2]
    kept = lines[1:]
    assert all(not line.startswith("NOTICE") for line in kept), kept
    # What survives is the newest output, in order, ending with the last chunk.
    assert kept == [c[:-1] for c in chunks[-len(kept) :]]
    # The notice counts every line that was not shown, across all the sheddings.
    match = re.search(r"([\d,]+) lines not shown", lines[0])
    assert match, lines[0]
    dropped = int(match.group(1).replace(",", ""))
    assert dropped == len(chunks) - len(kept), (lines[0], len(kept))
    assert screen.lines_dropped == len(chunks) - len(kept)


def test_single_huge_push_is_bounded_too():
    buf = io.StringIO()
    screen = TerminalWriter(buf, max_pending=1000, notice=lambda s: f"NOTICE {s}", terminal=True)

    async def main() -> None:
        screen.push(["y" * 99 + "\n"] * 50)  # 5,000 bytes in one chunk
        assert screen.pending_bytes() <= 1000
        await drained(screen)

    asyncio.run(main())
    assert buf.getvalue().startswith("NOTICE … 50 lines not shown")


class _Log(io.StringIO):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def write(self, s: str) -> int:
        self.log.append("write")
        return super().write(s)


class _FakeApp:
    """A stopped app: Screen must not touch it."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.is_running = False


class _Stdout(io.StringIO):
    """A terminal stand-in for prompt_toolkit: records each flushed write."""

    encoding = "utf-8"

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)

    def isatty(self) -> bool:
        return True


def _app_and_screen(pipe):
    from prompt_toolkit.application import Application
    from prompt_toolkit.layout import Layout, Window
    from prompt_toolkit.layout.controls import FormattedTextControl
    from prompt_toolkit.output.vt100 import Vt100_Output

    stdout = _Stdout()
    output = Vt100_Output(stdout, lambda: Size(rows=10, columns=40), term="xterm")
    app = Application(
        layout=Layout(Window(FormattedTextControl("PROMPT>"), height=1)),
        output=output,
        input=pipe,
    )
    screen = TerminalWriter(io.StringIO())
    screen.app = app
    return app, screen, stdout


def test_each_frame_is_one_write_with_erase_lines_and_prompt():
    """The terminal never sees the prompt missing: erase + lines + redraw, one write."""
    from prompt_toolkit.input import create_pipe_input

    with create_pipe_input() as pipe:
        app, screen, stdout = _app_and_screen(pipe)
        asyncio.run(_drive(app, screen, stdout))
    frames = [w for w in stdout.writes if "line " in w or "zzz" in w]
    assert len(frames) == screen.frames
    assert screen.frames < 3 + 3 * 300_000 // 16_384 + 2  # batched, not per message
    for write in frames:
        assert "\x1b[J" in write  # the old prompt erased ...
        assert write.rindex("PROMPT>") > max(write.rfind("line "), write.rfind("z"))  # ... redrawn
    text = "".join(stdout.writes)
    expected = [f"line {f}.{i}" for f in range(3) for i in range(100)]
    assert re.findall(r"line \d+\.\d+", text) == expected  # all, in order, once


async def _drive(app, screen, stdout) -> None:
    task = asyncio.ensure_future(app.run_async())
    while not stdout.writes:  # the first render
        await asyncio.sleep(0)
    stdout.writes.clear()
    for frame in range(3):
        screen.push([f"line {frame}.{i}\n" for i in range(100)])
        await asyncio.sleep(0)
    screen.push(["z" * 300_000 + "\n"] * 3)  # more than one frame's worth
    while screen.pending_bytes():
        await asyncio.sleep(0)
    app.exit()
    await task


def test_no_erase_or_invalidate_when_the_app_is_not_running():
    log: list[str] = []
    screen = TerminalWriter(_Log(log))
    screen.app = _FakeApp(log)
    screen.push(["a\n"])
    screen.refresh()
    assert log == ["write"]


def test_flush_now_writes_everything_pending():
    buf = io.StringIO()
    screen = TerminalWriter(buf)

    async def main() -> None:
        screen.push(["a\n", "b\n"])
        screen.flush_now()
        assert buf.getvalue() == "a\nb\n"
        assert screen.pending_bytes() == 0

    asyncio.run(main())


def test_a_file_is_not_a_terminal_it_is_waited_for_not_dropped():
    buf = io.StringIO()  # not a tty
    screen = TerminalWriter(buf, max_pending=1000)
    assert not screen.terminal

    async def main() -> None:
        for i in range(100):  # 10 kB in one loop turn, ten times the bound
            screen.push([f"{i:03}" + "x" * 96 + "\n"])
            assert screen.pending_bytes() <= 1000

    asyncio.run(main())
    screen.flush_now()
    assert buf.getvalue() == "".join(f"{i:03}" + "x" * 96 + "\n" for i in range(100))
    assert screen.lines_dropped == 0


def test_a_write_error_is_final_and_raised():
    class Full(io.StringIO):
        def write(self, s: str) -> int:
            raise OSError(28, "No space left on device")

    screen = TerminalWriter(Full())
    failures = []
    screen.on_error = failures.append
    screen.push(["a\n"])  # no loop: written now, and it fails
    assert len(failures) == 1 and "No space left on device" in str(screen.error)
    with pytest.raises(MirrorError, match="cannot write to the output: No space left"):
        screen.push(["b\n"])
    with pytest.raises(MirrorError):
        screen.flush_now()
