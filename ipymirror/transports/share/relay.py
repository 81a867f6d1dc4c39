"""``ipymirror share``: a read-only relay between one kernel and many viewers.

The relay is the only process that holds the kernel's key.  It joins the
kernel as a passive tap (IOPub, plus the one ``kernel_info`` request every
client makes) and re-broadcasts what the kernel broadcasts, over CurveZMQ, to
viewers who hold a ticket (see :mod:`ipymirror.transports.share.ticket`) and nothing else.

Rules the relay keeps (the wire protocol is written out in docs/sharing.md):

* Nothing goes from a viewer to the kernel, by construction: no code path
  forwards anything a viewer sends.  The only thing read from viewers is a
  ``hello`` (catch-up request) on the ROUTER, validated strictly, rate limited
  per connection; everything else — and subscriptions beyond "everything", on
  the XPUB — is read and dropped.  Inbound messages are capped in size.
* Every IOPub message gets the next sequence number of this relay run (its
  *epoch*) and is encoded once, with the recording codec; the same bytes go to
  the live stream and to the backlog.
* Nothing waits on a viewer: the live stream is an XPUB whose per-viewer queue
  is bounded (past it, ZMQ drops that viewer's messages, in C; the viewer
  catches up later); catch-up replies are one message each on a ROUTER, also
  bounded.  The relay's own IOPub subscription is unbounded: it loses nothing.
* The queues are bounded in bytes, not only in messages: a live message holds
  at most ``LIVE_BYTES`` of records, and a record larger than that is not sent
  live at all (its number is skipped: viewers see the gap and fetch it from
  the backlog).  So a viewer that never reads pins at most ``queue`` x
  ``LIVE_BYTES`` (64 MB by default), and the relay's memory is its backlog
  plus that per stalled viewer, whatever the kernel prints.
* The backlog is a bounded suffix of the stream that starts at a cell start:
  the last ``cells`` cells, and at most ``max_records``/``max_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import deque
from collections.abc import AsyncIterable, Callable
from itertools import islice
from typing import Any

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from ipymirror.core.protocol import msg_type_of, peer_of
from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.recording.format import RecordError, decode_record, encode_record, header_record
from ipymirror.transports.share.ticket import HostKeys

__all__ = ["Backlog", "Relay", "parse_hello"]

# -- wire protocol (shared with ipymirror.transports.share.viewer) ------------------------------
EVENTS = b"ev"  # XPUB: [EVENTS, epoch, first seq, record, record, ...]
TICK = b"tick"  # XPUB: [TICK, epoch, last seq, kernel state]
HELLO = b"hello"  # DEALER -> ROUTER: [HELLO, json {"v": 1, "req", "epoch", "after"}]
WELCOME = b"welcome"  # ROUTER -> DEALER: [WELCOME, json meta, header, record, ...]
TICK_PERIOD = 1.0  # seconds between ticks
HELLO_MAX = 256  # bytes of a hello's JSON, at most
INBOUND_MAX = 1024  # bytes of any message a viewer may send; larger ones disconnect it
HELLO_INTERVAL = 0.1  # seconds between two hellos answered on one connection
MAX_SEQ = 2**62
ZAP_DOMAIN = "ipymirror-share"

BACKLOG_CELLS = 20
BACKLOG_RECORDS = 50_000
BACKLOG_BYTES = 64 * 1024 * 1024
VIEWER_QUEUE = 1000  # live messages (bursts) queued per viewer; past that it misses some
LIVE_BYTES = 64 * 1024  # bytes of records in one live message; larger records: catch-up only
WELCOME_QUEUE = 4  # catch-up replies queued per connection


def parse_hello(frames: list[bytes]) -> tuple[int, str, int] | None:
    """(req, epoch, after) of a well-formed hello (ROUTER frames, identity first), else None."""
    if len(frames) != 3 or frames[1] != HELLO or len(frames[2]) > HELLO_MAX:
        return None
    try:
        data = json.loads(frames[2])
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or set(data) != {"v", "req", "epoch", "after"}:
        return None
    req, epoch, after = data["req"], data["epoch"], data["after"]
    if data["v"] != 1 or not isinstance(epoch, str) or len(epoch) > 32:
        return None
    for n in (req, after):
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n < MAX_SEQ:
            return None
    return req, epoch, after


class Backlog:
    """The recent past, for late joiners and viewers that fell behind.

    Holds records ``first .. last`` (contiguous sequence numbers, last = the
    newest).  Appending a cell start beyond ``cells`` cells drops everything
    before the oldest cell kept; the record and byte caps drop from the front,
    mid-cell if a single cell is that large.
    """

    def __init__(
        self,
        cells: int = BACKLOG_CELLS,
        max_records: int = BACKLOG_RECORDS,
        max_bytes: int = BACKLOG_BYTES,
    ) -> None:
        self.cells, self.max_records, self.max_bytes = cells, max_records, max_bytes
        self.records: deque[bytes] = deque()
        self.starts: deque[int] = deque()  # seqs of cell starts still held
        self.first = 1
        self.last = 0
        self.size = 0

    def append(self, record: bytes, starts_cell: bool) -> int:
        self.last += 1
        self.records.append(record)
        self.size += len(record)
        if starts_cell:
            self.starts.append(self.last)
            if len(self.starts) > self.cells:
                self.starts.popleft()
                self._drop_to(self.starts[0] if self.starts else self.last + 1)
        while self.records and (len(self.records) > self.max_records or self.size > self.max_bytes):
            self._drop_to(self.first + 1)
        return self.last

    def _drop_to(self, seq: int) -> None:
        records = self.records
        while self.first < seq and records:
            self.size -= len(records.popleft())
            self.first += 1
        if not records:
            self.first = self.last + 1
        while self.starts and self.starts[0] < self.first:
            self.starts.popleft()

    def since(self, after: int) -> tuple[int, list[bytes]]:
        """(seq of the first record returned, the records after ``after`` still held)."""
        start = max(after + 1, self.first)
        return start, list(islice(self.records, start - self.first, None))


def _decoded(records: list[bytes]) -> list[dict[str, Any]]:
    msgs = []
    for record in records:
        try:
            msgs.append(decode_record(record).msg)
        except RecordError:  # e.g. content nested deeper than Python parses
            continue
    return msgs


def _bind(sock: zmq.Socket, addr: str) -> str:
    try:
        sock.bind(addr)
    except zmq.ZMQError as exc:
        raise MirrorError(f"cannot listen on {addr}: {exc.strerror}", ExitStatus.ADDRESS) from None
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


class _Allow:
    """CurveZMQ credentials: exactly the ticket's viewer key."""

    def __init__(self, key: str) -> None:
        self.key = key.encode("ascii")

    def callback(self, domain: str, key: bytes) -> bool:
        return key == self.key


class Relay:
    """The sockets, the sequence, the backlog and the viewer count of one relay run."""

    def __init__(
        self,
        keys: HostKeys,
        kernel_info: dict[str, Any],
        *,
        cells: int = BACKLOG_CELLS,
        queue: int = VIEWER_QUEUE,
        own_session: str = "",
        kernel_name: str = "",
        tick: float = TICK_PERIOD,
    ) -> None:
        self.keys = keys
        self.own_session = own_session  # the relay's own kernel_info traffic is not relayed
        self.header = header_record(kernel_info, kernel_name)
        self.backlog = Backlog(cells)
        self.epoch = os.urandom(8).hex().encode("ascii")
        self.queue = queue
        self.tick_period = tick
        self.kernel_state = b"ok"
        self.t0 = time.monotonic()
        self.viewers = 0  # live-stream subscriptions (only authenticated peers can subscribe)
        self.refused = 0  # handshakes that failed (wrong or no keys)
        self.on_change: Callable[[], None] = lambda: None
        self.observers: list[Callable[[list[dict[str, Any]]], None]] = []  # see each batch kept
        self.ignored = 0  # messages from viewers that were not a hello or a subscription
        self._hellos: dict[bytes, float] = {}  # connection -> when it was last welcomed
        self._deferred: dict[bytes, tuple[int, str, int]] = {}  # hellos that came too soon
        self.ctx = zmq.asyncio.Context()
        self._auth: Any = None
        self.pub: zmq.asyncio.Socket = None  # type: ignore[assignment]  # bound in bind()
        self.router: zmq.asyncio.Socket = None  # type: ignore[assignment]
        self._monitors: list[zmq.asyncio.Socket] = []

    # -- setup -----------------------------------------------------------------
    def _socket(self, kind: int) -> zmq.asyncio.Socket:
        sock = self.ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, INBOUND_MAX)
        sock.setsockopt(zmq.ZAP_DOMAIN, ZAP_DOMAIN.encode())
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.keys.server_secret.encode("ascii"))
        return sock

    def bind(self, pub_addr: str, router_addr: str) -> tuple[str, str]:
        """Start the authenticator, then bind both sockets; the endpoints bound."""
        from zmq.auth.asyncio import AsyncioAuthenticator

        self._auth = AsyncioAuthenticator(self.ctx)
        self._auth.start()  # before any bind: a CURVE server with no ZAP handler accepts anyone
        self._auth.configure_curve_callback(ZAP_DOMAIN, _Allow(self.keys.viewer_public))
        self.pub = self._socket(zmq.XPUB)
        self.pub.setsockopt(zmq.XPUB_MANUAL, 1)  # viewers cannot add subscriptions of their own
        self.pub.setsockopt(zmq.SNDHWM, self.queue)
        self.router = self._socket(zmq.ROUTER)
        self.router.setsockopt(zmq.SNDHWM, WELCOME_QUEUE)
        self.router.setsockopt(zmq.RCVHWM, 16)
        for sock in (self.pub, self.router):  # only for IPv6 addresses: with it, IPv4 ones
            sock.setsockopt(zmq.IPV6, int("[" in pub_addr))  # would read ::ffff:127.0.0.1
        failed = (
            zmq.EVENT_HANDSHAKE_FAILED_AUTH
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
        )
        self._monitors = [s.get_monitor_socket(failed) for s in (self.pub, self.router)]
        return _bind(self.pub, pub_addr), _bind(self.router, router_addr)

    async def close(self) -> None:
        for sock in (self.pub, self.router):
            if sock is not None:
                with contextlib.suppress(zmq.ZMQError):
                    sock.disable_monitor()
        for sock in (*self._monitors, self.pub, self.router):
            if sock is not None:
                sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self.ctx.term()

    # -- the stream ------------------------------------------------------------
    def publish(self, msgs: list[dict[str, Any]]) -> None:
        """Number, encode (once), keep and broadcast a batch of IOPub messages,
        in live messages of at most LIVE_BYTES (see the module's rules)."""
        backlog, t = self.backlog, time.monotonic() - self.t0
        own = self.own_session
        group: list[bytes] = []
        first = size = 0
        kept = []
        for msg in msgs:
            if own and peer_of(msg)[0].session == own:
                continue
            record = encode_record(msg, t)
            seq = backlog.append(record, msg_type_of(msg) == "execute_input")
            kept.append(record)
            if group and (size + len(record) > LIVE_BYTES or len(record) > LIVE_BYTES):
                self._send_live(first, group)
                group, size = [], 0
            if len(record) > LIVE_BYTES:
                continue  # catch-up only
            if not group:
                first = seq
            group.append(record)
            size += len(record)
        if group:
            self._send_live(first, group)
        if kept and self.observers:  # e.g. the web page (share --web)
            seen = _decoded(kept)  # as viewers see them: content is not parsed on the way in
            for observer in self.observers:
                observer(seen)

    def _send_live(self, first: int, records: list[bytes]) -> None:
        frames = [EVENTS, self.epoch, str(first).encode(), *records]
        self.pub.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)

    async def pump(self, batches: AsyncIterable[list[dict[str, Any]]]) -> None:
        """Publish batch after batch, letting the relay's other tasks run between two.

        Awaiting a socket that already holds a message does not yield to the
        event loop, so without the explicit yield a flood kept every other task
        waiting until the kernel went quiet: no hello answered (a viewer that
        fell behind could not catch up), no tick sent (one that heard nothing
        took the relay for lost), no subscription served.
        """
        async for batch in batches:
            self.publish(batch)
            await asyncio.sleep(0)

    def _welcome(self, identity: bytes, req: int, epoch: str, after: int) -> None:
        backlog = self.backlog
        if epoch != self.epoch.decode():
            after = 0  # a new viewer, or one from before a restart: everything we have
        first, records = backlog.since(after)
        meta = {
            "v": 1,
            "req": req,
            "epoch": self.epoch.decode(),
            "first": first,
            "last": backlog.last,
        }
        frames = [identity, WELCOME, json.dumps(meta).encode(), self.header, *records]
        with contextlib.suppress(zmq.ZMQError):  # unroutable: it went away
            self.router.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)

    async def serve_hellos(self) -> None:
        while True:
            frames = await self.router.recv_multipart()
            hello = parse_hello(frames)
            if hello is None:
                self.ignored += 1
                self.on_change()
            else:
                self._answer(frames[0], hello)

    def _answer(self, identity: bytes, hello: tuple[int, str, int]) -> None:
        """Welcome now, or — too soon after the last one — once the interval is over."""
        now = time.monotonic()
        wait = self._hellos.get(identity, -HELLO_INTERVAL) + HELLO_INTERVAL - now
        if wait <= 0:
            self._hellos[identity] = now
            self._welcome(identity, *hello)
        elif self._deferred.setdefault(identity, hello) is hello:  # the first one deferred
            asyncio.get_running_loop().call_later(wait, self._answer_deferred, identity)
        else:
            self._deferred[identity] = hello  # only the latest counts

    def _answer_deferred(self, identity: bytes) -> None:
        hello = self._deferred.pop(identity, None)
        if hello is not None:
            self._answer(identity, hello)

    async def serve_subscriptions(self) -> None:
        """Read what viewers send on the XPUB: subscribe each to everything, drop the rest.

        (ZMQ reports a viewer's subscription when it joins and, in manual mode,
        withdraws it when it leaves: that is the viewer count.)
        """
        while True:
            frames = await self.pub.recv_multipart()
            msg = frames[0]
            if len(frames) != 1 or msg[:1] not in (b"\x00", b"\x01"):
                self.ignored += 1  # data from an XSUB peer: nothing to act on
                self.on_change()
                continue
            if msg[:1] == b"\x01":
                self.pub.setsockopt(zmq.SUBSCRIBE, b"")  # applies to the sender of that message
            if msg in (b"\x01", b"\x00"):
                self.viewers = max(0, self.viewers + (1 if msg == b"\x01" else -1))
                self.on_change()

    async def count_refusals(self, monitor: zmq.asyncio.Socket) -> None:
        """Count handshakes that failed: wrong keys, no keys, not ZMTP."""
        while True:
            parse_monitor_message(await monitor.recv_multipart())
            self.refused += 1
            self.on_change()

    async def tick(self, beating: Callable[[], bool]) -> None:
        while True:
            await asyncio.sleep(self.tick_period)
            state = b"ok" if beating() else b"dead"
            if state != self.kernel_state:
                self.kernel_state = state
                self.on_change()
            self.pub.send_multipart(
                [TICK, self.epoch, str(self.backlog.last).encode(), state], flags=zmq.NOBLOCK
            )
            cutoff = time.monotonic() - HELLO_INTERVAL
            self._hellos = {k: v for k, v in self._hellos.items() if v > cutoff}

    async def run(
        self, batches: AsyncIterable[list[dict[str, Any]]], beating: Callable[[], bool]
    ) -> None:
        tasks = [
            asyncio.ensure_future(coro)
            for coro in (
                self.pump(batches),
                self.serve_hellos(),
                self.serve_subscriptions(),
                *map(self.count_refusals, self._monitors),
                self.tick(beating),
            )
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
