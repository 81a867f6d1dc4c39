"""The real Relay and the real ViewerSource in one process, one event loop.

Synthetic IOPub messages, shaped like ipykernel's, go in through
``Relay.publish``; what comes out is whatever the viewer's ``batches()`` yield.
No kernel, no subprocess.

The pair talks over tcp on 127.0.0.1 (port 0), not ``inproc://``: libzmq
skips the security handshake on inproc, so CurveZMQ and the ZAP handler never
run there (zeromq/libzmq#915, and a probe against the libzmq in use: on
inproc a plain socket and one with the wrong key were both let in, and ZAP
was never asked).  A pair over inproc could not tell whether a viewer without
the ticket gets nothing, which is the point of the relay.

Waits are for events: the relay's ``on_change`` (a viewer subscribed, a
handshake refused), a batch or notice reaching the viewer, a socket monitor's
event.  The one claim that nothing came (the wrong-key viewer) is made once
both of its handshakes have failed and the connections are closed, and after
a good viewer got the cell that was published.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

import zmq
import zmq.asyncio
from recording_support import KERNEL_INFO, cell_messages, stdout
from zmq.utils.monitor import parse_monitor_message

from ipymirror.transports.share.relay import Relay
from ipymirror.transports.share.ticket import Ticket, new_host_keys
from ipymirror.transports.share.viewer import ViewerSource

WAIT = 30.0
LOCAL = "tcp://127.0.0.1:*"


def ids(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["header"]["msg_id"] for m in msgs]


class Viewer:
    """A real ViewerSource whose batches and notices a task collects."""

    def __init__(self, ticket: Ticket, changes: Any, **kw: Any) -> None:
        self.source = ViewerSource(ticket, **kw)
        self.changes = changes
        self.msgs: list[dict[str, Any]] = []
        self.notices: list[str] = []
        self.source.notice = self._notice
        self._task: asyncio.Task[None] | None = None

    def _notice(self, text: str) -> None:
        self.notices.append(text)
        self.changes()

    async def connect(self) -> None:
        await self.source.connect(WAIT)

    def start(self) -> None:
        """Read on (a viewer that has not started is one that fell behind)."""
        self._task = asyncio.ensure_future(self._consume())
        self._task.add_done_callback(self.changes)

    async def _consume(self) -> None:
        async for batch in self.source.batches():
            self.msgs += batch
            self.changes()

    def has(self, msg_id: str) -> bool:
        if self._task is not None and self._task.done():
            self._task.result()  # the viewer failed: say why rather than time out
        return msg_id in ids(self.msgs)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.source.close()


class Pair:
    """One relay, running as ``ipymirror share`` runs it, and its viewers."""

    def __init__(self, relay: Relay, ticket: Ticket, changes: Any) -> None:
        self.relay, self.ticket, self.changes = relay, ticket, changes
        self.viewers: list[Viewer] = []
        self.published: list[dict[str, Any]] = []
        self.n = [0]  # message counter shared by every cell: ids are unique

    def viewer(self, ticket: Ticket | None = None, **kw: Any) -> Viewer:
        v = Viewer(ticket or self.ticket, self.changes, **kw)
        self.viewers.append(v)
        return v

    def cell(self, code: str, *texts: str, count: int = 1) -> list[dict[str, Any]]:
        return cell_messages(code, [stdout(t) for t in texts], count, n=self.n)

    def publish(self, msgs: list[dict[str, Any]]) -> None:
        self.relay.publish(msgs)
        self.published += msgs

    async def subscribed(self, n: int) -> None:
        await self.changes.until(lambda: self.relay.viewers == n, f"{n} viewer subscriptions")

    async def delivered(self, v: Viewer, msg: dict[str, Any]) -> None:
        msg_id = msg["header"]["msg_id"]
        await self.changes.until(lambda: v.has(msg_id), f"{msg_id} to reach the viewer")


@contextlib.asynccontextmanager
async def relay_pair(changes: Any, **relay_kw: Any) -> AsyncIterator[Pair]:
    keys = new_host_keys()
    relay = Relay(keys, KERNEL_INFO, kernel_name="python3", **relay_kw)
    relay.on_change = changes
    pub, router = relay.bind(LOCAL, LOCAL)
    pair = Pair(relay, keys.ticket.with_addresses(pub, router), changes)

    async def no_kernel() -> AsyncIterator[list[dict[str, Any]]]:
        await asyncio.get_running_loop().create_future()  # the test publishes instead
        yield []

    running = asyncio.ensure_future(relay.run(no_kernel(), lambda: True))
    try:
        yield pair
    finally:
        for v in pair.viewers:
            await v.close()
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await relay.close()


# ------------------------------------------------------------------------ tests


def test_every_message_arrives_in_order_exactly_once(run, changes):
    async def scenario() -> None:
        async with relay_pair(changes) as pair:
            v = pair.viewer()
            await v.connect()
            v.start()
            await pair.subscribed(1)
            first = pair.cell("print(1)", "1\n", count=1)
            for msg in first:  # one message per publish...
                pair.publish([msg])
            pair.publish(pair.cell("print(2)", "2\n", count=2))  # ...and a whole cell at once
            third = pair.cell("for i in range(3): print(i)", "0\n", "1\n", "2\n", count=3)
            pair.publish(third[:3])
            pair.publish(third[3:])
            await pair.delivered(v, third[-1])
            assert ids(v.msgs) == ids(pair.published)
            assert v.source.header is not None and v.source.language == "ipython3"
            assert v.notices == []

    run(scenario())


def test_what_was_queued_before_the_welcome_is_not_shown_twice(run, changes):
    """Live records that are also in the welcome's backlog are delivered once."""

    async def scenario() -> None:
        async with relay_pair(changes) as pair:
            v = pair.viewer()  # its SUB connects now; its hello waits for connect()
            await pair.subscribed(1)
            early = pair.cell("x = 1", count=1)
            pair.publish(early)  # queued on the viewer's live socket, and in the backlog
            await v.connect()  # the welcome brings the same records
            v.start()
            late = pair.cell("print(x)", "1\n", count=2)
            pair.publish(late)
            await pair.delivered(v, late[-1])
            assert ids(v.msgs) == ids(early + late)
            assert v.notices == []

    run(scenario())


def test_a_late_joiner_gets_the_backlog_from_a_cell_start_then_live(run, changes):
    async def scenario() -> None:
        async with relay_pair(changes, cells=3) as pair:
            before = [pair.cell(f"print({i})", f"{i}\n", count=i + 1) for i in range(6)]
            for cell in before:
                pair.publish(cell)
            v = pair.viewer()
            await v.connect()
            v.start()
            await pair.subscribed(1)
            after = [pair.cell(f"print({i})", f"{i}\n", count=i + 1) for i in range(6, 8)]
            for cell in after:
                pair.publish(cell)
            await pair.delivered(v, after[-1][-1])
            # The last three cells before joining, from their execute_input (the busy
            # before it belongs to the previous cell's stretch), then everything live.
            expected = before[3][1:] + before[4] + before[5] + after[0] + after[1]
            assert ids(v.msgs) == ids(expected)
            assert v.msgs[0]["msg_type"] == "execute_input"
            texts = [m["content"]["text"] for m in v.msgs if m["msg_type"] == "stream"]
            assert texts == ["3\n", "4\n", "5\n", "6\n", "7\n"]
            assert v.notices == []

    run(scenario())


async def handshake_refused(monitor: zmq.asyncio.Socket) -> list[int]:
    """The events a socket's monitor reports up to its refused handshake (ZAP 400)."""
    seen: list[int] = []
    while zmq.EVENT_HANDSHAKE_FAILED_AUTH not in seen:
        seen.append(parse_monitor_message(await monitor.recv_multipart())["event"])
    return seen


def test_a_viewer_with_the_wrong_key_gets_nothing(run, changes):
    async def scenario() -> None:
        async with relay_pair(changes) as pair:
            _, stranger = zmq.curve_keypair()  # the relay's address and key, not the viewer's
            wrong = pair.viewer(
                Ticket(
                    pair.ticket.pub,
                    pair.ticket.router,
                    pair.ticket.server_public,
                    stranger.decode("ascii"),
                )
            )
            # Monitors before the first await: the relay's ZAP handler runs on this
            # loop, so no handshake can have been decided yet.
            sockets = (wrong.source.sub, wrong.source.dealer)
            monitors = [s.get_monitor_socket() for s in sockets]
            knocking = asyncio.ensure_future(wrong.connect())
            try:
                for events in await asyncio.wait_for(
                    asyncio.gather(*map(handshake_refused, monitors)), WAIT
                ):
                    assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in events
                await changes.until(lambda: pair.relay.refused == 2, "the relay to count both")
                good = pair.viewer()
                await good.connect()
                good.start()
                await pair.subscribed(1)
                cell = pair.cell("print('secret sauce')", "secret sauce\n")
                pair.publish(cell)
                await pair.delivered(good, cell[-1])  # published while the stranger listened
                assert pair.relay.viewers == 1  # only the good viewer ever subscribed
                assert not knocking.done()  # no welcome: the hello never got through
                for sock in sockets:
                    assert not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN
                assert wrong.source.header is None and wrong.source.seq.last == 0
            finally:
                knocking.cancel()
                await asyncio.gather(knocking, return_exceptions=True)
                for sock, monitor in zip(sockets, monitors, strict=True):
                    sock.disable_monitor()
                    monitor.close(linger=0)

    run(scenario())


def flood_then_after(pair: Pair, lines: int = 3000) -> list[dict[str, Any]]:
    """A cell of ``lines`` 2 kB stdout messages, one publish each, then a small cell.

    The loop does not turn while this runs, so a viewer on it reads nothing
    meanwhile: 6 MB is more than the relay's queue (a few messages), the kernel's
    loopback buffers (tcp_wmem caps a send buffer at 4 MB) and the viewer's
    (``rcvhwm=1``, ``rcvbuf=4096``) hold together, so the relay must drop some.
    """
    flood = pair.cell("flood()", *(f"{i:06d}{'x' * 2000}\n" for i in range(lines)))
    for msg in flood:
        pair.publish([msg])
    after = pair.cell("print('after')", "after\n", count=2)
    pair.publish(after)
    return after


def test_a_slow_viewer_catches_up_from_the_backlog_without_gaps_or_dupes(run, changes):
    """Its queue overflowed, but the backlog still holds all it lost: filled exactly."""

    async def scenario() -> None:
        async with relay_pair(changes, queue=2, tick=0.1) as pair:
            slow = pair.viewer(rcvhwm=1, rcvbuf=4096)
            await slow.connect()
            await pair.subscribed(1)  # subscribed, but reads nothing yet
            after = flood_then_after(pair)
            slow.start()
            await pair.delivered(slow, after[-1])
            assert ids(slow.msgs) == ids(pair.published)
            assert slow.notices == []
            assert slow.source.seq.req > 1, "the viewer never had to catch up"

    run(scenario())


def test_a_slow_viewer_misses_what_the_backlog_lost_and_is_told_how_much(run, changes):
    """A viewer that stops reading falls behind its bounded queue; reading again,
    it gets what it had, then the backlog (one cell), and a notice counting the rest."""

    async def scenario() -> None:
        async with relay_pair(changes, queue=2, cells=1, tick=0.1) as pair:
            slow = pair.viewer(rcvhwm=1, rcvbuf=4096)
            await slow.connect()
            await pair.subscribed(1)  # subscribed, but reads nothing yet
            after = flood_then_after(pair)  # pushes the flood out of the one-cell backlog
            slow.start()
            await pair.delivered(slow, after[-1])  # (a notice is told before its batch)
            got, truth = ids(slow.msgs), ids(pair.published)
            start = truth.index(after[1]["header"]["msg_id"])  # the backlog: from its input
            kept = len(got) - (len(truth) - start)
            assert 0 <= kept < start, "the viewer did not fall behind"
            assert got == truth[:kept] + truth[start:]  # in order, once, nothing made up
            missed = start - kept
            assert slow.notices == [
                f"{missed} events missed (this viewer fell behind the relay's backlog)"
            ]
            assert slow.source.seq.missed == missed

    run(scenario())


def test_a_flood_does_not_stop_the_relay_answering_a_viewer(run, changes):
    """Batch after batch always ready (a kernel flooding): a viewer asking to join
    is welcomed while the flood goes on, not once it is over.

    Awaiting a socket that holds a message does not yield to the event loop: a
    relay that did not yield between batches answered no hello, sent no tick,
    until its kernel went quiet.
    """
    most = 50_000  # batches: the flood ends early once the viewer is in

    async def scenario() -> None:
        keys = new_host_keys()
        relay = Relay(keys, KERNEL_INFO, kernel_name="python3")
        pub, router = relay.bind(LOCAL, LOCAL)
        source = ViewerSource(keys.ticket.with_addresses(pub, router))
        joining = asyncio.ensure_future(source.connect(WAIT))  # its hello is on its way
        n = [0]
        flooded = [0]

        async def flood() -> AsyncIterator[list[dict[str, Any]]]:
            while flooded[0] < most and not joining.done():
                flooded[0] += 1
                yield cell_messages("1", [stdout("1\n")], 1, n=n)

        try:
            await relay.run(flood(), lambda: True)  # returns when the flood ends
            await joining
            assert flooded[0] < most, "the viewer was welcomed only after the flood"
            assert 0 < source.seq.last <= relay.backlog.last  # mid-flood: part of it
        finally:
            joining.cancel()
            source.close()
            await relay.close()

    run(scenario())


def test_hellos_to_an_absent_relay_fill_the_queue_and_raise_nothing(run):
    """The hello queue to a relay that is not there fills (4 messages); further hellos
    are for later, and no 'exception never retrieved' is left behind."""
    keys = new_host_keys()
    probe = zmq.Context.instance().socket(zmq.ROUTER)
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close()  # an address where no relay listens
    address = f"tcp://127.0.0.1:{port}"

    async def scenario() -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: errors.append(ctx))
        source = ViewerSource(keys.ticket.with_addresses(address, address))
        try:
            for _ in range(12):  # three times the queue
                source._ask()
            await asyncio.sleep(0)  # one turn: the sends' done-callbacks run
        finally:
            source.close()
        gc.collect()  # a future whose exception nobody read complains when collected
        return errors

    assert run(scenario()) == []
