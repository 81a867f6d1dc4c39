"""The Jupyter Server transport: a kernel reached through the server's websocket.

:class:`ServerLink` is a :class:`~ipymirror.transports.base.KernelTransport`, like
the ZMQ :class:`~ipymirror.transports.zmq.KernelLink`, so every command works
through it unchanged.  Rules it keeps:

* One websocket carries every channel; the requests (execute, complete,
  is_complete, inspect, history, input) go over it; interrupt, restart and
  shutdown are REST calls.  Our ``session_id`` is new per link and kept across
  reconnects (the server drops an older socket with the same id and replays
  what it buffered for it).
* The server's own chatter is not the session's: the ``kernel_info`` nudges it
  sends on every new connection (status messages whose parent is a
  ``kernel_info_request`` from the server's own username, learnt from the nudge
  on our own session) are dropped here.  Its ``restarting``/``dead`` status and
  its rate-limit stderr pass through as IOPub: :mod:`ipymirror.core.protocol`
  turns them into the same events as on ZMQ.
* Nothing is dropped on our side (the websocket is TCP); a frame that does not
  parse is counted in ``malformed``, reported once, and dropped.
* Connected means IOPub flows: the server subscribes to the kernel's IOPub only
  after the websocket's handshake, and does not check that it did when the
  kernel is busy, so a peer's cell run meanwhile would never reach us.  After
  opening, we probe until an IOPub message arrives (:meth:`_iopub_flows`).
* Liveness (``is_beating``): the websocket is open and the REST API does not say
  the kernel is missing or dead (asked every ``POLL`` seconds; a check that fails
  otherwise changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from jupyter_client.session import Session, new_id

from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.transports.base import KernelInfo
from ipymirror.transports.server.choose import resolve
from ipymirror.transports.server.framing import FrameError, decode, encode
from ipymirror.transports.server.rest import ServerAPI, ServerKernel
from ipymirror.transports.server.urls import ServerTarget, kernel_url
from ipymirror.transports.shedding import BACKLOG, Shedder

__all__ = ["ServerLink"]

BATCH = 512  # IOPub messages handed on per wake-up, at most
POLL = 2.0  # seconds between REST liveness checks
MAX_SENT_IDS = 4096
MAX_RUNNING = 64  # cells tracked as running (for the resync after a reconnect)
FLOWS_WITHIN = 10.0  # seconds we probe, at most, for IOPub to flow on a new websocket

Message = dict[str, Any]


class ServerLink(KernelInfo):
    """One client connection to a kernel behind a Jupyter Server."""

    def __init__(
        self, api: ServerAPI, target: ServerTarget, username: str, *, kernel_id: str = ""
    ) -> None:
        self.api = api
        self.target = target
        self.kernel_id = kernel_id or target.kernel_id
        self.where = target.display
        self.kernel_info: dict[str, Any] = {}
        self.kernel_session = ""  # header.session of the kernel_info_reply: which process
        self.state_at_connect = "unknown"
        self.bad_signatures = 0  # always 0: the server checks signatures, not us
        self.malformed = 0  # frames that are not kernel messages (dropped)
        self.parse_content = True  # a websocket frame is parsed whole: always parsed here
        self.manager: ServerKernel | None = None
        self.on_stdin: Callable[[Message], None] | None = None
        self.on_bad_message: Callable[[], None] | None = None
        self.on_malformed: Callable[[str], None] | None = None
        self.on_notice: Callable[[str], None] | None = None
        self.shedder: Shedder | None = None  # set by shed_when_behind: a display
        self._queued = self._taken = 0  # IOPub messages queued, and handed on, so far
        self._gap: int | None = None  # queued before the first line shed and not yet told
        # Session builds the headers.  Frames carry no signature (the server signs
        # what it relays); a key only keeps Session from warning that it has none.
        self.session = Session(key=new_id().encode(), username=username)
        self.session.session = new_id()
        self.protocol: str | None = None
        self._name = ""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = asyncio.Event()
        self._iopub_seen = asyncio.Event()  # an IOPub frame came on this websocket
        self._iopub: asyncio.Queue[Message] = asyncio.Queue()
        self._outbox: deque[tuple[str, Message]] = deque()
        self._wake = asyncio.Event()
        self._waiting: dict[str, asyncio.Future[Message]] = {}
        self._sent: deque[str] = deque(maxlen=MAX_SENT_IDS)
        self._server_user: str | None = None
        self._running: dict[str, Message] = {}  # cell msg_id -> its parent header
        self._last_input: Message | None = None
        self._alive = True
        self._closing = False
        self._keep_running = False
        self._tasks: list[asyncio.Task[Any]] = []
        self._resyncing: asyncio.Task[None] | None = None

    # -- construction ------------------------------------------------------
    @classmethod
    async def start(
        cls, api: ServerAPI, target: ServerTarget, kernel_name: str, username: str
    ) -> ServerLink:
        """Start a ``kernel_name`` kernel on the server; peers join its URL."""
        await api.check()
        model = await api.start_kernel(kernel_name)
        kernel_id = str(model.get("id", ""))
        if not kernel_id:
            raise MirrorError(f"{api.base} started no kernel (no id in its answer)")
        link = cls(api, target, username, kernel_id=kernel_id)
        link.manager = ServerKernel(api, kernel_id, str(model.get("name", kernel_name)))
        return link

    # -- the KernelTransport properties --------------------------------------
    @property
    def session_id(self) -> str:
        return str(self.session.session)

    @session_id.setter
    def session_id(self, session: str) -> None:
        """Our identity (set before :meth:`connect`; kept across reconnects)."""
        self.session.session = session

    @property
    def username(self) -> str:
        return str(self.session.username)

    @property
    def kernel_name(self) -> str:
        return self._name

    # -- lifecycle ---------------------------------------------------------
    async def connect(self, timeout: float, *, stdin: bool = True, control: bool = True) -> None:
        """Find the kernel, open the websocket, and wait for ``kernel_info_reply``."""
        why = ""
        if self.manager is None:
            await self.api.check()
            choice = await resolve(self.api, self.target)
            self.kernel_id, why = choice.kernel_id, choice.why
        model = await self.api.kernel(self.kernel_id)
        self._name = str(model.get("name", ""))
        state = model.get("execution_state")
        self.where = kernel_url(self.api.base, self.kernel_id) + (f" ({why})" if why else "")
        await self._open()
        self._tasks += [
            asyncio.ensure_future(self._read()),
            asyncio.ensure_future(self._write()),
            asyncio.ensure_future(self._watch()),
        ]
        # On control: answered even while a cell runs on shell.
        try:
            reply = await self.request(self.probe(), timeout)
        except TimeoutError:
            raise MirrorError(
                f"kernel did not answer within {timeout:g} s: {self.where}",
                ExitStatus.UNREACHABLE,
            ) from None
        await self._iopub_flows(min(timeout, FLOWS_WITHIN))
        self.kernel_info = reply.get("content") or {}
        session = reply["header"].get("session")
        self.kernel_session = (
            session if isinstance(session, str) and session != self.session_id else ""
        )
        # It answered (on control: even mid-cell); the server knows whether a cell runs.
        self.state_at_connect = "busy" if state == "busy" else "idle"

    async def _open(self) -> None:
        ws = await self.api.open_channels(self.kernel_id, self.session_id)
        self._ws = ws
        self._iopub_seen.clear()
        self.protocol = ws.protocol  # None: the server speaks the legacy framing
        self._connected.set()
        self._wake.set()

    async def close(self, shutdown: bool | None = None) -> None:
        """Close the websocket; shut the kernel down if we started it (or if asked)."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if shutdown is None:
            shutdown = self.manager is not None and not self._keep_running
        if shutdown and self.kernel_id:
            with contextlib.suppress(MirrorError):
                await self.api.shutdown(self.kernel_id)
        await self.api.close()

    def keep_running(self) -> None:
        """Leave a kernel we started running when we close (others still use it)."""
        self._keep_running = True

    def shed_when_behind(self) -> None:
        """Drop whole lines of stream output once BACKLOG messages wait, and say
        how many (see :mod:`ipymirror.transports.shedding`).

        The server's rate limit (``iopub_msg_rate_limit``, on by default) bounds
        most floods before they reach us; a server with it off does not.
        """
        self.shedder = Shedder()

    def is_beating(self) -> bool:
        ws = self._ws
        return ws is not None and not ws.closed and self._alive

    def _notice(self, text: str) -> None:
        if self.on_notice is not None:
            self.on_notice(text)

    # -- reading -----------------------------------------------------------
    async def _read(self) -> None:
        """Route every frame; when the connection drops, reconnect with the same session."""
        while True:
            ws = self._ws
            assert ws is not None
            async for frame in ws:
                if frame.type in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                    self._frame(frame.data)
                elif frame.type == aiohttp.WSMsgType.ERROR:
                    break
            if self._closing:
                return
            self._connected.clear()
            await self._reconnect()
            if not self._alive:
                return

    def _frame(self, data: str | bytes) -> None:
        try:
            channel, msg = decode(self.protocol, data)
        except FrameError as exc:
            self.malformed += 1
            if self.malformed == 1 and self.on_malformed is not None:
                self.on_malformed(str(exc))
            return
        if channel == "iopub":
            self._iopub_seen.set()
            if not self._server_nudge(msg):
                self._track(msg)
                self._queue(msg)
            return
        if msg.get("msg_type") == "input_request":
            self._last_input = msg
            if self.on_stdin is not None:
                self.on_stdin(msg)
            return
        parent = msg["parent_header"].get("msg_id")
        fut = self._waiting.get(parent) if isinstance(parent, str) else None
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _queue(self, msg: Message) -> None:
        """Keep ``msg`` for :meth:`iopub_batches`, unless a display this far behind sheds it."""
        shedder = self.shedder
        if shedder is not None:
            if self._iopub.qsize() >= BACKLOG and shedder.sheds_msg(msg):
                if self._gap is None:
                    self._gap = self._queued  # told once what came before it is shown
                return
            shedder.saw(msg)
        self._queued += 1
        self._iopub.put_nowait(msg)

    def _server_nudge(self, msg: Message) -> bool:
        """Is this the busy/idle of a ``kernel_info_request`` the server sent itself?"""
        if msg.get("msg_type") != "status":
            return False
        parent = msg["parent_header"]
        if parent.get("msg_type") != "kernel_info_request":
            return False
        if parent.get("msg_id") in self._sent:
            return False  # ours, whatever name the server's own nudges go by
        if parent.get("session") == self.session_id:
            self._server_user = str(parent.get("username"))  # on our session, not sent by us
            return True
        return self._server_user is not None and parent.get("username") == self._server_user

    def _track(self, msg: Message) -> None:
        """Remember which cells are running (busy seen, idle not yet): see :meth:`_resync`."""
        parent = msg["parent_header"]
        if msg.get("msg_type") != "status" or parent.get("msg_type") != "execute_request":
            return
        state, cell = msg["content"].get("execution_state"), parent.get("msg_id")
        if state == "busy" and isinstance(cell, str) and len(self._running) < MAX_RUNNING:
            self._running[cell] = parent
        elif state == "idle":
            self._running.pop(cell, None)

    async def _iopub_flows(self, within: float) -> bool:
        """Probe (on control: answered mid-cell too) until an IOPub message arrives;
        the probe's own busy/idle is one.  False if none came ``within`` seconds."""
        loop = asyncio.get_running_loop()
        deadline, wait = loop.time() + within, 0.25
        while not self._iopub_seen.is_set():
            left = deadline - loop.time()
            if left <= 0:
                return False
            self.probe()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._iopub_seen.wait(), min(wait, left))
            wait = min(wait * 2, 2.0)
        return True

    async def _resync(self, lost: float) -> None:
        """After a reconnect: say so once IOPub flows again (what a peer runs from then
        on is shown).  Then, once the kernel's shell answers, every cell that was running
        before the drop has ended, and an idle we missed is written in its place (marked
        ``metadata.ipymirror = "reconnect"``), so no one's cell stays "running" for ever."""
        loop = asyncio.get_running_loop()
        flowing = await self._iopub_flows(FLOWS_WITHIN)
        self._notice(
            f"reconnected after {loop.time() - lost:.1f} s; output broadcast meanwhile "
            "may be missing (the server replays it only when no other client was connected)"
            + ("" if flowing else "; no output of the kernel's has reached us since")
        )
        try:
            await self.request(self._send("kernel_info_request", {}), None)
        except asyncio.CancelledError:
            raise
        for cell, parent in list(self._running.items()):
            self._running.pop(cell, None)
            idle = self.session.msg("status", {"execution_state": "idle"}, parent=parent)
            # It tells no kernel's session (ours there would read as a new kernel's):
            # like IRkernel's, its header.session is its requester's.
            idle["header"]["session"] = parent.get("session", "")
            idle["metadata"] = {"ipymirror": "reconnect"}
            idle.pop("buffers", None)
            self._queue({**idle, "buffers": []})

    async def _reconnect(self) -> None:
        loop = asyncio.get_running_loop()
        lost = loop.time()
        self._notice("the connection to the server dropped; reconnecting (same session)")
        delay = 0.2
        while not self._closing:
            try:
                await self.api.kernel(self.kernel_id)
                await self._open()
            except MirrorError as exc:
                if exc.status == ExitStatus.NOT_FOUND:
                    self._alive = False
                    self._notice("the kernel is gone from the server (it was shut down)")
                    return
            else:
                if self._resyncing is not None:  # it dropped again meanwhile: this one tells
                    self._resyncing.cancel()
                self._resyncing = asyncio.ensure_future(self._resync(lost))
                self._tasks.append(self._resyncing)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _watch(self) -> None:
        """Ask the REST API every POLL seconds whether the kernel is still there."""
        while True:
            await asyncio.sleep(POLL)
            try:
                model = await self.api.kernel(self.kernel_id)
            except MirrorError as exc:
                # Only the server saying so proves the kernel gone: a slow answer (a server
                # busy with a flood) proves nothing, and a dead server closes the websocket.
                if exc.status == ExitStatus.NOT_FOUND:
                    self._alive = False
                continue
            self._alive = model.get("execution_state") != "dead"

    async def iopub_batches(self) -> AsyncIterator[list[Message]]:
        """Yield IOPub messages in arrival order, as many per batch as are waiting."""
        while True:
            batch = [await self._iopub.get()]
            while len(batch) < BATCH and not self._iopub.empty():
                batch.append(self._iopub.get_nowait())
            self._taken += len(batch)
            yield batch
            if self._gap is not None and self._taken >= self._gap:  # (only with a shedder)
                self._gap = None
                notice = self.shedder.notice() if self.shedder is not None else None
                if notice:
                    self._notice(notice)

    async def pending_iopub(self) -> list[Message]:
        batch: list[Message] = []
        while not self._iopub.empty():
            batch.append(self._iopub.get_nowait())
        self._taken += len(batch)
        return batch

    # -- writing -----------------------------------------------------------
    def _send(
        self,
        msg_type: str,
        content: dict[str, Any],
        channel: str = "shell",
        parent: Message | None = None,
    ) -> str:
        msg = self.session.msg(msg_type, content, parent=parent)
        msg_id = str(msg["header"]["msg_id"])
        self._sent.append(msg_id)
        self._outbox.append((channel, msg))
        self._wake.set()
        return msg_id

    async def _write(self) -> None:
        """Send queued messages in order; while disconnected they wait."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                await self._connected.wait()
                ws = self._ws
                assert ws is not None
                channel, msg = self._outbox[0]
                frame = encode(self.protocol, channel, msg)
                try:
                    if isinstance(frame, bytes):
                        await ws.send_bytes(frame)
                    else:
                        await ws.send_str(frame)
                except (ConnectionError, RuntimeError, aiohttp.ClientError):
                    self._connected.clear()  # the reader reconnects; then we go on
                    continue
                self._outbox.popleft()

    # -- requests ----------------------------------------------------------
    def expect(self, msg_id: str) -> asyncio.Future[Message]:
        fut = self._waiting.get(msg_id)
        if fut is None:
            fut = self._waiting[msg_id] = asyncio.get_running_loop().create_future()
        return fut

    async def request(self, msg_id: str, timeout: float | None = None) -> Message:
        try:
            return await asyncio.wait_for(self.expect(msg_id), timeout)
        finally:
            self._waiting.pop(msg_id, None)

    def execute(self, code: str, *, allow_stdin: bool = True, stop_on_error: bool = True) -> str:
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": allow_stdin,
            "stop_on_error": stop_on_error,
        }
        msg_id = self._send("execute_request", content)
        if len(self._running) < MAX_RUNNING:  # ours runs from now on, busy seen or not
            self._running[msg_id] = self._outbox[-1][1]["header"]
        return msg_id

    def probe(self) -> str:
        """``kernel_info_request`` on control (answered even while a cell runs)."""
        return self._send("kernel_info_request", {}, "control")

    def complete(self, code: str, cursor_pos: int) -> str:
        return self._send("complete_request", {"code": code, "cursor_pos": cursor_pos})

    def is_complete(self, code: str) -> str:
        return self._send("is_complete_request", {"code": code})

    def inspect(self, code: str, cursor_pos: int, detail_level: int = 0) -> str:
        content = {"code": code, "cursor_pos": cursor_pos, "detail_level": detail_level}
        return self._send("inspect_request", content)

    def history(self, **kwargs: Any) -> str:
        """``history_request`` with jupyter_client's defaults (raw, range, no output)."""
        content = {"raw": True, "output": False, "hist_access_type": "range", **kwargs}
        return self._send("history_request", content)

    def input(self, value: str) -> None:
        parent = self._last_input["header"] if self._last_input else None
        self._send("input_reply", {"value": value}, "stdin", parent=parent)

    async def interrupt(self) -> None:
        try:
            await self.api.interrupt(self.kernel_id)
        except MirrorError as exc:
            self._notice(f"interrupt failed: {exc}")

    async def restart(self) -> None:
        """Restart a kernel we started (REST; peers stay connected)."""
        if self.manager is not None:
            await self.api.restart(self.kernel_id)
