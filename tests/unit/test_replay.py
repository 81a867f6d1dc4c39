"""Replay: timing transforms (pure), the player, and ``ipymirror replay`` end to end."""

from __future__ import annotations

import asyncio
import io
import re
import time

import pytest
from recording_support import (
    IOPubCounter,
    cell_messages,
    run_ipymirror,
    session_recording,
    stdout,
    write_recording,
)
from terminal import ipymirror_argv

from ipymirror.commands.replay import Player, cell_pauses, recorded_cells
from ipymirror.core.render import Renderer
from ipymirror.recording.files import read_recording
from ipymirror.recording.timing import (
    adjust_speed,
    cap_idle,
    schedule,
    start_at,
    to_absolute,
    to_relative,
)
from ipymirror.terminal.mirror import Mirror
from ipymirror.terminal.writer import TerminalWriter

# ------------------------------------------------------------------ timing

TIMES = [(0.5, "a"), (1.0, "b"), (6.0, "c"), (6.5, "d"), (16.5, "e")]


def test_relative_and_absolute_are_inverse():
    rel = list(to_relative(TIMES))
    assert rel == [(0.5, "a"), (0.5, "b"), (5.0, "c"), (0.5, "d"), (10.0, "e")]
    assert list(to_absolute(rel)) == TIMES


def test_relative_never_goes_back():
    assert list(to_relative([(2.0, "a"), (1.0, "b"), (3.0, "c")])) == [
        (2.0, "a"),
        (0.0, "b"),
        (1.0, "c"),
    ]


def test_cap_idle():
    rel = list(to_relative(TIMES))
    assert list(cap_idle(rel, 2.0)) == [(0.5, "a"), (0.5, "b"), (2.0, "c"), (0.5, "d"), (2.0, "e")]
    assert list(cap_idle(rel, None)) == rel


def test_adjust_speed():
    assert list(adjust_speed(TIMES, 2.0)) == [(t / 2, x) for t, x in TIMES]
    assert list(adjust_speed(TIMES, 0.5)) == [(t * 2, x) for t, x in TIMES]


def test_idle_limit_caps_recorded_time_then_speed_divides_like_asciinema():
    # asciinema 2.x: to_relative -> cap_relative_time(idle_time_limit) -> to_absolute -> speed
    def play(speed, limit):
        return [t for t, _ in adjust_speed(to_absolute(cap_idle(to_relative(TIMES), limit)), speed)]

    assert play(1, None) == [0.5, 1.0, 6.0, 6.5, 16.5]
    assert play(1, 2) == [0.5, 1.0, 3.0, 3.5, 5.5]
    assert play(2, 2) == [0.25, 0.5, 1.5, 1.75, 2.75]  # pauses of at most limit / speed
    assert play(2, None) == [0.25, 0.5, 3.0, 3.25, 8.25]
    assert play(0.5, 1) == [1.0, 2.0, 4.0, 5.0, 7.0]


def test_start_at_rebases_on_the_first_match():
    assert list(start_at(TIMES, lambda x: x == "c")) == [(0.0, "c"), (0.5, "d"), (10.5, "e")]
    assert list(start_at(TIMES, lambda x: False)) == []


def records(path):
    return list(read_recording(str(path))[1])


def test_schedule_composes_from_cell_idle_and_speed(tmp_path):
    path = session_recording(tmp_path / "s.ipym", gap=10.0)
    recs = records(path)
    plain = [t for t, _ in schedule(recs)]
    assert plain == pytest.approx([r.t for r in recs])
    fast = [t for t, _ in schedule(recs, speed=4, idle_limit=1.0)]
    assert fast[-1] == pytest.approx((0.001 * (len(recs) - 3) + 2 * 1.0) / 4)
    from2 = list(schedule(recs, from_cell=2))
    assert from2[0][0] == 0.0 and from2[0][1].msg_type == "execute_input"
    assert from2[0][1].msg["content"]["code"] == "print('hello', x)"
    assert list(schedule(recs, from_cell=9)) == []


def test_recorded_cells_and_their_pauses(tmp_path):
    recs = records(session_recording(tmp_path / "s.ipym", gap=10.0))
    cells = recorded_cells(recs)
    assert [c.code for c in cells] == ["x = 6 * 7", "print('hello', x)", "x"]
    assert [c.execution_count for c in cells] == [1, 2, 3]
    assert {c.peer.username for c in cells} == {"alice"}
    assert cells[0].end == pytest.approx(cells[0].start + 0.001)  # its idle
    assert cell_pauses(cells) == pytest.approx([0, 10.002, 10.002])
    assert cell_pauses(cells, speed=2, idle_limit=3) == pytest.approx([0, 1.5, 1.5])


# ------------------------------------------------------------------ player


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class WakeEvent(asyncio.Event):
    """The player's wake-up event, telling when the player blocks on it again.

    ``blocked`` is set each time the player starts waiting with no wake-up
    pending: it has fed everything due (and its screen frame ran: the frame is
    queued before the player's next turn) and decided what to wait for.
    That is the state a claim "nothing more was shown" needs.
    """

    def __init__(self) -> None:
        super().__init__()
        self.blocked = asyncio.Event()

    async def wait(self) -> bool:
        if not self.is_set():
            self.blocked.set()
        return await super().wait()


def test_player_pauses_steps_and_skips_to_the_next_cell(tmp_path):
    recs = records(session_recording(tmp_path / "p.ipym", gap=5.0))
    asyncio.run(_player_scenario(recs))


async def _player_scenario(recs):
    out = io.StringIO()
    mirror = Mirror(Renderer(color=False), TerminalWriter(out), me="")
    clock = FakeClock()
    player = Player(mirror, schedule(recs), clock=clock)
    wake = player._wake = WakeEvent()  # before run(): the only event it waits on
    task = asyncio.ensure_future(player.run())

    async def advance(seconds: float) -> str:
        """Move the clock, wake the player, and return once it waits again (or ended)."""
        clock.now += seconds
        wake.blocked.clear()
        player.wake()
        blocked = asyncio.ensure_future(wake.blocked.wait())
        await asyncio.wait_for(
            asyncio.wait([blocked, task], return_when=asyncio.FIRST_COMPLETED), 5
        )
        blocked.cancel()
        assert mirror.writer.pending_bytes() == 0  # everything fed is on the screen
        return out.getvalue()

    shown = await advance(0.01)
    assert "x = 6 * 7" in shown and "hello" not in shown
    assert player.cells == 1
    shown = await advance(2.0)  # the gap is 5 s
    assert "hello" not in shown

    player.toggle_pause()
    shown = await advance(60.0)  # time passes while paused: nothing is due
    assert "hello" not in shown
    assert player.position == pytest.approx(2.01)

    player.step()  # one visible event: the next cell's input
    shown = await advance(0)
    assert "print('hello', x)" in shown and "hello 42" not in shown
    player.step()
    shown = await advance(0)
    assert "hello 42" in shown and "Out[3]" not in shown
    assert player.position == pytest.approx(5.005)  # the stream (cell 1 has 3 messages)

    player.toggle_pause()
    player.next_cell()  # no need to sit out the next 5 s gap
    shown = await advance(0)
    assert "│ x\n" in shown and player.cells == 3
    assert not task.done()
    await advance(0.01)
    await asyncio.wait_for(task, 5)
    assert out.getvalue().endswith("Out[3]: 42\n")
    assert player.fed == len(recs)


# ------------------------------------------------------------- the command

EXPECTED = """\
┌ alice·a11c  In [1]
│ x = 6 * 7
┌ alice·a11c  In [2]
│ print('hello', x)
│ hello 42
┌ alice·a11c  In [3]
│ x
│ Out[3]: 42
"""


@pytest.mark.e2e  # runs ipymirror as a process
def test_no_wait_dumps_everything_as_plain_text(tmp_path):
    path = session_recording(tmp_path / "s.ipym", gap=30.0)
    start = time.monotonic()
    proc = run_ipymirror("replay", str(path), "--no-wait")
    assert time.monotonic() - start < 20
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == EXPECTED
    assert proc.stderr == ""


@pytest.mark.e2e  # runs ipymirror as a process
def test_timed_replay_to_a_pipe_keeps_the_timing(tmp_path):
    # Gaps long enough that the second run's start-up on a loaded machine cannot
    # eat the difference: the capped run must beat the timed one by seconds.
    path = session_recording(tmp_path / "s.ipym", gap=3.0)
    start = time.monotonic()
    proc = run_ipymirror("replay", str(path), "--speed", "2")
    took = time.monotonic() - start
    assert proc.returncode == 0 and proc.stdout == EXPECTED
    assert took >= 3.0  # two recorded gaps of 3 s at speed 2
    start = time.monotonic()
    proc = run_ipymirror("replay", str(path), "--idle-limit", "0.01", "--speed", "10")
    assert proc.stdout == EXPECTED
    assert time.monotonic() - start < took


@pytest.mark.e2e  # runs ipymirror as a process
def test_from_cell(tmp_path):
    path = session_recording(tmp_path / "s.ipym")
    proc = run_ipymirror("replay", str(path), "--no-wait", "--from", "2")
    assert proc.returncode == 0
    assert proc.stdout == EXPECTED[EXPECTED.index("┌ alice·a11c  In [2]") :]
    proc = run_ipymirror("replay", str(path), "--no-wait", "--from", "7")
    assert proc.returncode == 2 and proc.stderr == f"ipymirror: error: no cell In [7] in {path}\n"


@pytest.mark.e2e  # runs ipymirror as a process
def test_large_no_wait_replay_loses_nothing(tmp_path):
    n = [0]
    msgs = cell_messages("flood()", [stdout(f"{i}\n") for i in range(30000)], 1, n=n)
    path = write_recording(tmp_path / "big.ipym.gz", [(i * 1e-5, m) for i, m in enumerate(msgs)])
    proc = run_ipymirror("replay", str(path), "--no-wait")
    assert proc.returncode == 0
    numbers = re.findall(r"^│ (\d+)$", proc.stdout, re.M)
    assert numbers == [str(i) for i in range(30000)]


def test_keys_on_a_terminal(tmp_path, terminal):
    path = session_recording(tmp_path / "s.ipym", gap=300.0)  # would take 10 minutes
    term = terminal(ipymirror_argv("replay", str(path)), cols=120)
    term.wait_for("x = 6 * 7")
    term.wait_for("▶ playing")
    term.send(" ")
    term.wait_for("❚❚ paused")
    term.send(".")
    term.wait_for("print('hello', x)")
    assert "hello 42" not in term.text()
    term.send(".")
    term.wait_for("hello 42")
    term.send("n")  # the next cell at once, no need to sit out the 300 s gap
    term.wait_for("│ x\n")
    assert "Out[3]" not in term.text()  # still paused
    term.send(" ")
    assert term.wait_exit() == 0  # played to the end, so it ends by itself
    text = term.text()
    assert text.index("x = 6 * 7") < text.index("hello 42") < text.index("Out[3]: 42")
    assert "❚❚ paused" not in text and "▶ playing" not in text  # the status line is gone


def test_next_cell_while_playing_and_quit(tmp_path, terminal):
    path = session_recording(tmp_path / "s.ipym", gap=300.0)
    term = terminal(ipymirror_argv("replay", str(path)), cols=120)
    term.wait_for("x = 6 * 7")
    term.wait_for("▶ playing")
    term.send("n")
    term.wait_for("hello 42")  # playing on from the next cell
    term.send("q")
    assert term.wait_exit() == 0
    assert "Out[3]" not in term.text()


def test_terminal_replay_ends_by_itself(tmp_path, terminal):
    path = session_recording(tmp_path / "s.ipym", gap=0.01)
    term = terminal(ipymirror_argv("replay", str(path)), cols=120)
    assert term.wait_exit() == 0
    assert "Out[3]: 42" in term.text()


# ------------------------------------------------------- into a live kernel


def test_into_existing_reexecutes_the_cells_in_order(kernel, peer, tmp_path):
    path = session_recording(tmp_path / "s.ipym", gap=0.2)
    watcher = peer(kernel, "watcher")
    counter = IOPubCounter(kernel)
    try:
        counter.sync(watcher.client)
        start = time.monotonic()
        proc = run_ipymirror(
            "replay", str(path), "--into-existing", kernel.connection_file, "--speed", "2"
        )
        took = time.monotonic() - start
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0].startswith("» replaying 3 cells into the python kernel")
        assert lines[1:] == [f"» [{i}/3] In [{i}] ok" for i in (1, 2, 3)]
        assert took >= 0.2  # two recorded gaps of 0.2 s at speed 2
        counter.wait(lambda seen: sum(t == "execute_input" for _, t, _, _ in seen) == 3)
        # Every frontend saw them run, in order, as alice's (the recorded peer).
        assert counter.inputs == [
            ("alice", "x = 6 * 7"),
            ("alice", "print('hello', x)"),
            ("alice", "x"),
        ]
    finally:
        counter.close()
    assert watcher.stream_text(watcher.run("print(x)")) == "42\n"  # the kernel ran them


def test_into_existing_with_a_name_and_from(kernel, peer, tmp_path):
    path = session_recording(tmp_path / "s.ipym", gap=0.0)
    watcher = peer(kernel, "watcher")
    counter = IOPubCounter(kernel)
    try:
        counter.sync(watcher.client)
        proc = run_ipymirror(
            "replay",
            str(path),
            "--into-existing",
            kernel.connection_file,
            "--from",
            "2",
            "--name",
            "demo",
        )
        assert proc.returncode == 0, proc.stderr
        counter.wait(lambda seen: sum(t == "execute_input" for _, t, _, _ in seen) == 2)
        assert counter.inputs == [("demo", "print('hello', x)"), ("demo", "x")]
    finally:
        counter.close()
    assert "NameError" in proc.stdout  # x was defined by cell 1, which was not replayed


@pytest.mark.e2e  # runs ipymirror as a process
def test_records_of_other_channels_are_skipped(tmp_path):
    from recording_support import KERNEL_INFO

    from ipymirror.recording.files import RecordingWriter
    from ipymirror.recording.format import header_record

    msgs = cell_messages("print('seen')", [stdout("seen\n")], 1)
    foreign = cell_messages("print('unseen')", [stdout("unseen\n")], 2)
    path = tmp_path / "channels.ipym"
    with RecordingWriter(str(path)) as w:
        w.write_line(header_record(KERNEL_INFO))
        for msg in msgs:
            w.write(msg, 0.0)
        for msg in foreign:
            w.write(msg, 0.0, channel="future-channel")
    proc = run_ipymirror("replay", str(path), "--no-wait")
    assert proc.returncode == 0 and "seen" in proc.stdout and "unseen" not in proc.stdout
    proc = run_ipymirror("export", str(path), "--to", "markdown", "-o", "-")
    assert proc.returncode == 0 and "seen" in proc.stdout and "unseen" not in proc.stdout
