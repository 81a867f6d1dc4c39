"""``ipymirror replay``: a recording played back through the mirror, with its timing.

The recorded messages go through the same :class:`~ipymirror.terminal.mirror.Mirror`,
transcript, screen and ``watch`` view as a live kernel's, so a replay looks
exactly like the session did.  Timing is a chain of small generators over
``(time, item)`` pairs, as in asciinema 2.x's ``events.py``:

    recorded times -> relative delays -> idle capped -> absolute -> speed

so ``--idle-limit`` caps the *recorded* pauses and ``--speed`` then divides
everything (idle limit 2 at speed 2 = pauses of at most 1 s).  The transforms
are pure; :class:`Player` owns the clock.

``--into-existing`` re-executes the recorded cells on a live kernel instead, in
order, each after the recorded pause (same transforms) and once the previous
one has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from argparse import Namespace
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prompt_toolkit.key_binding import KeyBindings

from ipymirror.core.cells import Cell, cells_of
from ipymirror.core.events import Status
from ipymirror.core.protocol import to_event
from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.recording.files import read_recording
from ipymirror.recording.format import Header, Record, iopub
from ipymirror.recording.timing import adjust_speed, cap_idle, schedule
from ipymirror.terminal.mirror import Mirror
from ipymirror.terminal.watch_view import WatchView

__all__ = [
    "Player",
    "recorded_cells",
    "run_replay",
]

BATCH = 512  # records fed per frame, at most
BACKLOG = 1024 * 1024  # bytes pending for a pipe before we wait for it to drain

# --------------------------------------------------------------------- player


def _visible(record: Record) -> bool:
    ev = to_event(record.msg)
    return ev is not None and not isinstance(ev, Status)


class Player:
    """Feeds scheduled records to a mirror when they are due.

    Rules: ``position`` is the playback clock, in schedule seconds; it follows
    the loop's clock while playing and stands still while paused.  Stepping
    (paused) feeds records up to the next visible one; "next cell" feeds up to
    the next ``execute_input``; both move ``position`` to what they fed.  With
    ``backpressure`` (a pipe), output waits for the terminal instead of being
    shed, so nothing is dropped.
    """

    def __init__(
        self,
        mirror: Mirror,
        timed: Iterable[tuple[float, Record]],
        *,
        backpressure: bool = False,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.mirror = mirror
        self._it = iter(timed)
        self._next: tuple[float, Record] | None = None
        self._ended = False
        self.backpressure = backpressure
        self.clock = clock or asyncio.get_running_loop().time
        self.paused = False
        self._pos = 0.0  # position at _real
        self._real = self.clock()
        self._steps = 0
        self._skip = False
        self._wake = asyncio.Event()
        self.cells = 0
        self.fed = 0

    @property
    def position(self) -> float:
        return self._pos if self.paused else self._pos + self.clock() - self._real

    def _peek(self) -> tuple[float, Record] | None:
        if self._next is None and not self._ended:
            self._next = next(self._it, None)
            self._ended = self._next is None
        return self._next

    def _seek(self, position: float) -> None:
        self._pos, self._real = position, self.clock()

    # -- controls -------------------------------------------------------------
    def wake(self) -> None:
        """Look again at what is due (a key was pressed, or the clock was moved)."""
        self._wake.set()

    def toggle_pause(self) -> None:
        self._seek(self.position)
        self.paused = not self.paused
        self.wake()

    def step(self) -> None:
        if self.paused:
            self._steps += 1
            self.wake()

    def next_cell(self) -> None:
        self._skip = True
        self.wake()

    def describe(self) -> str:
        state = "❚❚ paused" if self.paused else "▶ playing"
        return f"{state} │ {self.position:,.1f} s │ cell {self.cells}"

    # -- playing --------------------------------------------------------------
    def _feed(self, batch: list[Record]) -> None:
        self.cells += sum(1 for r in batch if r.msg_type == "execute_input")
        self.fed += len(batch)
        self.mirror.feed([r.msg for r in batch])
        screen = self.mirror.writer
        if self.backpressure and screen.pending_bytes() > BACKLOG:
            screen.flush_now()

    def _take_until(self, stop: Callable[[Record], bool]) -> list[Record]:
        """Records up to and including the first that ``stop`` accepts (or the end)."""
        batch: list[Record] = []
        while (nxt := self._peek()) is not None:
            self._next = None
            batch.append(nxt[1])
            self._pos = nxt[0]
            if stop(nxt[1]):
                break
        return batch

    async def _wait(self, timeout: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def run(self) -> None:
        while (nxt := self._peek()) is not None:
            if self._skip:
                self._skip = False
                self._feed(self._take_until(lambda r: r.msg_type == "execute_input"))
                self._seek(self._pos)
            elif self.paused:
                if self._steps:
                    self._steps -= 1
                    self._feed(self._take_until(_visible))
                else:
                    await self._wait(None)
                continue
            elif (delay := nxt[0] - self.position) > 0:
                await self._wait(delay)
                continue
            else:
                now = self.position
                batch: list[Record] = []
                while len(batch) < BATCH and (nxt := self._peek()) is not None and nxt[0] <= now:
                    self._next = None
                    batch.append(nxt[1])
                self._feed(batch)
            await asyncio.sleep(0)  # let the screen draw a frame and keys be read


def replay_view(mirror: Mirror, player: Player) -> WatchView:
    """The ``watch`` view with playback keys: space, ``.``, ``n`` (and ``q``)."""
    kb = KeyBindings()

    @kb.add(" ")
    def _pause(event: Any) -> None:
        player.toggle_pause()
        event.app.invalidate()

    @kb.add(".")
    def _step(event: Any) -> None:
        player.step()

    @kb.add("n")
    def _next(event: Any) -> None:
        player.next_cell()

    return WatchView(mirror, interactive=True, keys=kb, describe=player.describe)


# ----------------------------------------------------------- into a kernel


def recorded_cells(records: Iterable[Record]) -> list[Cell]:
    """The recorded executions, in order, with when each started and ended."""
    return cells_of((record.t, to_event(record.msg)) for record in iopub(records))


def cell_pauses(
    cells: list[Cell], *, speed: float = 1.0, idle_limit: float | None = None
) -> list[float]:
    """Seconds to wait before each cell: the recorded gap since the previous one ended."""
    gaps = (
        (0.0 if i == 0 else max(0.0, cell.start - cells[i - 1].end), cell)
        for i, cell in enumerate(cells)
    )
    return [delay for delay, _ in adjust_speed(cap_idle(gaps, idle_limit), speed)]


async def _replay_into(header: Header, records: Iterator[Record], args: Namespace) -> ExitStatus:
    import uuid

    from ipymirror.commands._lifecycle import on_signals
    from ipymirror.core.events import tool_session
    from ipymirror.transports.zmq import KernelLink, default_username, resolve_connection_file

    cells = recorded_cells(records)
    if args.from_cell is not None:
        start = next((i for i, c in enumerate(cells) if c.execution_count == args.from_cell), None)
        if start is None:
            raise MirrorError(f"no cell In [{args.from_cell}] in {args.input}", ExitStatus.USAGE)
        cells = cells[start:]
    pauses = cell_pauses(cells, speed=args.speed, idle_limit=args.idle_limit)
    if args.no_wait:
        pauses = [0.0] * len(cells)
    path = resolve_connection_file(args.into_existing or None)
    link = KernelLink.join(path, args.name or default_username(), ssh=args.ssh)
    link.session_id = tool_session("replay", uuid.uuid4().hex)  # a tool, not a person
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[Any] = loop.create_future()
    on_signals(loop, stop, sigint=True)
    out = sys.stdout
    try:
        await link.connect(args.timeout, stdin=False, control=False)
        what = f"{len(cells)} cells into the {link.description} of {path}"
        print(f"» replaying {what}", file=out)
        ran = 0
        for number, (pause, cell) in enumerate(zip(pauses, cells, strict=True), 1):
            done, _ = await asyncio.wait([stop], timeout=pause)
            if done:
                break
            if not args.name:
                link.username = cell.peer.username or default_username()
            msg_id = link.execute(cell.code, allow_stdin=False, stop_on_error=False)
            reply = link.expect(msg_id)
            while not reply.done() and not stop.done():
                await asyncio.wait([reply, stop], timeout=2.0, return_when=asyncio.FIRST_COMPLETED)
                if not reply.done() and not link.is_beating():
                    raise MirrorError(
                        f"the kernel stopped answering: {path}", ExitStatus.UNREACHABLE
                    )
            if not reply.done():
                break
            content = reply.result().get("content") or {}
            outcome = content.get("status", "?")
            if outcome == "error":
                outcome = f"error: {content.get('ename', '')}"
            print(f"» [{number}/{len(cells)}] In [{cell.execution_count}] {outcome}", file=out)
            out.flush()
            ran = number
        if ran < len(cells):
            print(f"» stopped after {ran} of {len(cells)} cells", file=out)
        return ExitStatus.OK
    finally:
        await link.close(shutdown=False)


# -------------------------------------------------------------------- command


async def run_replay(args: Namespace) -> ExitStatus:
    warnings: list[str] = []
    header, records = read_recording(args.input, warn=warnings.append)
    try:
        if args.into_existing is not None:
            return await _replay_into(header, records, args)
        return await _play(header, records, args)
    finally:
        records.close()
        for text in warnings:
            print(f"ipymirror: warning: {text}", file=sys.stderr)


async def _play(header: Header, records: Iterator[Record], args: Namespace) -> ExitStatus:
    from ipymirror.commands._lifecycle import on_signals

    stream = sys.stdout
    from ipymirror.commands._lifecycle import make_mirror

    mirror = make_mirror(args, stream, language=header.lexer)
    timed = schedule(
        records, speed=args.speed, idle_limit=args.idle_limit, from_cell=args.from_cell
    )
    interactive = not args.no_wait and stream.isatty() and sys.stdin.isatty()
    missing = MirrorError(f"no cell In [{args.from_cell}] in {args.input}", ExitStatus.USAGE)
    try:
        if args.no_wait:
            batch: list[dict[str, Any]] = []
            fed = 0
            for _, record in timed:
                batch.append(record.msg)
                fed += 1
                if len(batch) >= BATCH:
                    mirror.feed(batch)
                    mirror.writer.flush_now()
                    batch = []
            mirror.feed(batch)
            if args.from_cell is not None and not fed:
                raise missing
            return ExitStatus.OK
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[Any] = loop.create_future()
        on_signals(loop, ended, sigint=not interactive)
        player = Player(mirror, timed, backpressure=not interactive)
        task = asyncio.ensure_future(player.run())
        task.add_done_callback(lambda _: None if ended.done() else ended.set_result(None))
        if interactive:
            mirror.notice(f"replaying {args.input}: the {header.describe()}, {header.started}")
            mirror.notice("keys: space pause/play · . step (paused) · n next cell · q quit")
            await replay_view(mirror, player).run(ended)
        else:
            await ended
        if task.done():
            task.result()  # a corrupt line is raised here
            if args.from_cell is not None and not player.fed:
                raise missing
        task.cancel()
        return ExitStatus.OK
    finally:
        mirror.finish()
