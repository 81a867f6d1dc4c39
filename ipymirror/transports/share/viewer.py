"""The viewer's side of ``ipymirror share``: a message source for :meth:`Mirror.run`.

:class:`Sequencer` is the pure part (no sockets, no clocks); :class:`ViewerSource`
owns the two sockets (SUB for the live stream, DEALER for catch-up) and time.

Rules the sequencer keeps (the "Clone" pattern of the ZMQ guide):

* Records are delivered in sequence order, each exactly once: a live record is
  delivered only if its number is the next one; older ones are duplicates and
  are dropped.
* From a ``hello`` until a ``welcome`` arrives, live records are held back (at
  most ``max_held`` records and ``HELD_BYTES`` bytes; older ones are let go
  and come back as a gap).  Any
  welcome will do, whichever hello it answers: each is a consistent suffix of
  the stream.  The welcome's records come first, then the held ones.
* A gap — a live record beyond the next number, a tick announcing a number we
  do not have, or a new relay epoch — starts a catch-up: a new hello with the
  last number delivered.  What the relay no longer has is counted from the
  sequence numbers and announced ("N events missed"), never skipped silently.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import zmq
import zmq.asyncio

from ipymirror.core.events import KERNEL, Event, KernelBack, KernelGone
from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.recording.format import Header, RecordError, decode_header, decode_record
from ipymirror.transports.share.relay import EVENTS, HELLO, TICK, TICK_PERIOD, WELCOME
from ipymirror.transports.share.ticket import Ticket

__all__ = ["Sequencer", "ViewerSource"]

HELD_MAX = 10_000  # live records held back while catching up, at most
HELD_BYTES = 16 * 1024 * 1024  # ... and bytes of them
RETRY = 1.0  # seconds before an unanswered hello is sent again
SILENCE = 3.5 * TICK_PERIOD  # no tick for this long: the relay is gone
BATCH = 256  # socket messages read per wake-up, at most


def _seq(frame: bytes) -> int | None:
    try:
        value = int(frame)
    except ValueError:
        return None
    return value if value >= 0 else None


class Sequencer:
    """Sequence numbers in, records in order (each once) and notices out."""

    def __init__(self, max_held: int = HELD_MAX) -> None:
        self.epoch = b""  # the relay run our numbers belong to; b"" = none yet
        self.last = 0  # the newest sequence number delivered, in ``epoch``
        self.req = 0  # number of the latest hello
        self.syncing = True  # holding live records until a welcome
        self.need_hello = True  # a gap was seen: the caller should send a hello
        self.held: deque[tuple[bytes, int, bytes]] = deque(maxlen=max_held)
        self.held_bytes = 0
        self.missed = 0  # events announced as missed, in total
        self.notices: list[str] = []

    # -- catch-up ----------------------------------------------------------------
    def hello(self) -> bytes:
        """The payload of a new hello."""
        self.req += 1
        self.syncing, self.need_hello = True, False
        return json.dumps(
            {"v": 1, "req": self.req, "epoch": self.epoch.decode(), "after": self.last}
        ).encode()

    def welcome(self, meta: dict[str, Any], records: list[bytes]) -> list[bytes] | None:
        """Records to deliver for a welcome, or None if it is ignored.

        While syncing any welcome will do, whichever hello it answers: each is a
        consistent suffix of the stream, and what we already have is skipped.
        """
        epoch, first, last = meta.get("epoch"), meta.get("first"), meta.get("last")
        if not (isinstance(epoch, str) and isinstance(first, int) and isinstance(last, int)):
            return None
        if not self.syncing or first + len(records) - 1 != last:
            return None
        new = epoch.encode()
        if new != self.epoch:
            if self.epoch:
                self.notices.append("the relay restarted: what ran while it was down is not shown")
            self.last = 0 if self.epoch else first - 1  # a fresh viewer starts at the backlog
            self.epoch = new
        if first > self.last + 1:
            self._missed(first - (self.last + 1))
        out = [r for i, r in enumerate(records) if first + i > self.last]
        self.last = max(self.last, last)
        self.syncing = self.need_hello = False
        held, self.held = self.held, deque(maxlen=self.held.maxlen)
        self.held_bytes = 0
        for held_epoch, seq, record in held:
            if held_epoch == new:  # older epochs' records are of a relay that is gone
                out += self.live(held_epoch, seq, [record])
        return out

    def _missed(self, n: int) -> None:
        self.missed += n
        self.notices.append(f"{n} events missed (this viewer fell behind the relay's backlog)")

    # -- the live stream -------------------------------------------------------
    def live(self, epoch: bytes, first: int, records: list[bytes]) -> list[bytes]:
        """Records of an ``ev`` message that can be delivered now."""
        out: list[bytes] = []
        for i, record in enumerate(records):
            seq = first + i
            if not self.syncing and (epoch != self.epoch or seq > self.last + 1):
                self.syncing = self.need_hello = True  # a gap (or a new relay run)
            if self.syncing:
                self._hold(epoch, seq, record)
            elif seq == self.last + 1:
                out.append(record)
                self.last = seq
        return out

    def _hold(self, epoch: bytes, seq: int, record: bytes) -> None:
        """Keep a live record for after the welcome; the oldest go past the caps."""
        held = self.held
        if len(held) == held.maxlen:
            self.held_bytes -= len(held[0][2])
        held.append((epoch, seq, record))
        self.held_bytes += len(record)
        while self.held_bytes > HELD_BYTES and len(held) > 1:
            self.held_bytes -= len(held.popleft()[2])

    def tick(self, epoch: bytes, last: int) -> None:
        """A tick: the relay's newest number; anything newer than ours we lost."""
        if not self.syncing and (epoch != self.epoch or last > self.last):
            self.syncing = self.need_hello = True


class ViewerSource:
    """Message batches from a relay, for :meth:`Mirror.run`; reconnects by itself.

    ``connect()`` waits for the first welcome (whose header says the kernel's
    language).  ``notice`` and ``on_kernel`` (events: the relay's word on the
    kernel's heartbeat) are how it tells the person watching (a frontend sets
    them to its mirror's).
    """

    def __init__(
        self,
        ticket: Ticket,
        *,
        rcvhwm: int = 1000,
        rcvbuf: int = -1,
        max_held: int = HELD_MAX,
        ctx: zmq.asyncio.Context | None = None,
    ) -> None:
        self.ticket = ticket
        self.seq = Sequencer(max_held)
        self.header: Header | None = None
        self.notice: Callable[[str], None] = lambda text: None
        self.on_kernel: Callable[[list[Event]], object] = lambda events: None
        self.kernel_dead = False
        self.bad = 0  # frames from the relay that did not parse
        self.unreadable = 0  # records the relay passed on that are not records
        self._own_ctx = ctx is None  # many viewers in one process share one (benchmarks)
        self.ctx = ctx or zmq.asyncio.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.dealer = self.ctx.socket(zmq.DEALER)
        for sock in (self.sub, self.dealer):
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.IPV6, 1)
            sock.setsockopt(zmq.CURVE_SERVERKEY, ticket.server_public.encode("ascii"))
            sock.setsockopt(zmq.CURVE_PUBLICKEY, ticket.viewer_public.encode("ascii"))
            sock.setsockopt(zmq.CURVE_SECRETKEY, ticket.viewer_secret.encode("ascii"))
        self.sub.setsockopt(zmq.RCVHWM, rcvhwm)
        self.sub.setsockopt(zmq.RCVBUF, rcvbuf)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.dealer.setsockopt(zmq.SNDHWM, 4)
        self.sub.connect(ticket.pub)
        self.dealer.connect(ticket.router)
        self._asked = 0.0
        self._heard = time.monotonic()
        self._lost = False
        self._first: list[bytes] = []

    @property
    def language(self) -> str:
        return self.header.lexer if self.header else ""

    def describe(self) -> str:
        return self.header.describe() if self.header else "kernel"

    async def connect(self, timeout: float) -> None:
        """Wait for the relay's first welcome; a one-line error if it never comes."""
        deadline = time.monotonic() + timeout
        self._ask()
        while self.seq.syncing:
            left = deadline - time.monotonic()
            if left <= 0 or not await self.dealer.poll(left * 1000):
                raise MirrorError(
                    f"the relay at {self.ticket.router} did not answer within {timeout:g} s "
                    "(is it running? is the ticket current?)",
                    ExitStatus.UNREACHABLE,
                )
            self._first += self._on_dealer(await self.dealer.recv_multipart())

    def close(self) -> None:
        self.sub.close(linger=0)
        self.dealer.close(linger=0)
        if self._own_ctx:
            self.ctx.term()

    def _ask(self) -> None:
        self._asked = time.monotonic()
        # An asyncio socket puts zmq.Again (a full queue to an absent relay) on the future.
        sent = self.dealer.send_multipart([HELLO, self.seq.hello()], flags=zmq.NOBLOCK)
        asyncio.ensure_future(sent).add_done_callback(_queue_full_is_later)

    def _on_dealer(self, frames: list[bytes]) -> list[bytes]:
        try:
            if len(frames) < 3 or frames[0] != WELCOME:
                raise ValueError
            meta = json.loads(frames[1])
            header = decode_header(frames[2])
        except (ValueError, RecordError):
            self.bad += 1
            return []
        out = self.seq.welcome(meta if isinstance(meta, dict) else {}, frames[3:])
        if out is not None:
            self.header = header
        return out or []

    def _on_sub(self, frames: list[bytes]) -> list[bytes]:
        self._heard = time.monotonic()
        if len(frames) >= 3 and (first := _seq(frames[2])) is not None:
            if frames[0] == EVENTS:
                return self.seq.live(frames[1], first, frames[3:])
            if frames[0] == TICK and len(frames) == 4:
                self.seq.tick(frames[1], first)
                self._kernel(frames[3] == b"dead")
                return []
        self.bad += 1
        return []

    def _kernel(self, dead: bool) -> None:
        if dead != self.kernel_dead:
            self.kernel_dead = dead
            self.on_kernel([KernelGone(KERNEL, "") if dead else KernelBack(KERNEL, "")])

    def _decode(self, records: list[bytes]) -> list[dict[str, Any]]:
        msgs = []
        for record in records:
            try:
                msgs.append(decode_record(record).msg)
            except RecordError as exc:  # e.g. JSON nested deeper than Python parses
                self.unreadable += 1
                if self.unreadable == 1:
                    self.notice(f"a message could not be read ({exc}); not shown, nor any more")
        return msgs

    async def batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Messages in order, as many per batch as are waiting.

        One receive per socket stays armed across wake-ups; once one completes,
        what else is queued on that socket is read at once, without a future
        per message (a shadow socket: hundreds of viewers share a benchmark
        process, and per-message overhead is their latency).
        """
        sockets: dict[Any, tuple[zmq.Socket[Any], Callable[[list[bytes]], list[bytes]]]] = {
            self.dealer: (zmq.Socket.shadow(self.dealer.underlying), self._on_dealer),
            self.sub: (zmq.Socket.shadow(self.sub.underlying), self._on_sub),
        }
        armed = {asyncio.ensure_future(sock.recv_multipart()): sock for sock in sockets}
        out, self._first = self._first, []
        try:
            while True:
                self._tell()
                if out:
                    yield self._decode(out)
                out = []
                now = time.monotonic()
                wait = None if self._lost else SILENCE - (now - self._heard)
                if self.seq.syncing:
                    retry = RETRY - (now - self._asked)
                    wait = retry if wait is None else min(wait, retry)
                done, _ = await asyncio.wait(
                    armed,
                    timeout=None if wait is None else max(0.0, wait),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for fut in done:
                    sock = armed.pop(fut)
                    sync, handle = sockets[sock]
                    out += handle(fut.result())
                    for _ in range(BATCH):
                        try:
                            out += handle(sync.recv_multipart(zmq.NOBLOCK))
                        except zmq.Again:
                            break
                    armed[asyncio.ensure_future(sock.recv_multipart())] = sock
                self._timers(time.monotonic())
        finally:
            for fut in armed:
                fut.cancel()

    def _timers(self, now: float) -> None:
        """Lost relay, found again, hellos to (re)send."""
        silent = now - self._heard >= SILENCE
        if silent != self._lost:
            self._lost = silent
            self.notice("lost the relay; reconnecting…" if silent else "reconnected to the relay")
            if silent:  # whatever comes next, we ask first
                self.seq.syncing = self.seq.need_hello = True
        if self.seq.need_hello or (self.seq.syncing and now - self._asked >= RETRY):
            self._ask()

    def _tell(self) -> None:
        for text in self.seq.notices:
            self.notice(text)
        self.seq.notices.clear()


def _queue_full_is_later(sent: asyncio.Future[Any]) -> None:
    """The queue to an absent relay is full (zmq.Again): the next hello asks again."""
    if not sent.cancelled():
        exc = sent.exception()
        if exc is not None and not isinstance(exc, zmq.Again):
            raise exc
