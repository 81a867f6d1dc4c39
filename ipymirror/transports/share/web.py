"""``share --web``: one read-only page and one websocket, next to the relay.

The page starts from the relay's backlog (:meth:`WebShare.seed`), then the
relay hands every batch it publishes to :meth:`WebShare.feed`; one
:class:`~ipymirror.core.page.LivePage` turns it into HTML update operations,
encoded once per frame and written to every viewer.

Rules it keeps:

* Read-only by construction: the only message a page may send is a catch-up
  request ``{"v": 1, "type": "catchup", "secret": S}`` (size-capped, checked
  field by field, at most one per ``CATCHUP_INTERVAL`` per connection); it is
  answered with the whole page.  Nothing read from a websocket goes anywhere
  else, and the page holds no kernel key.  A first message that is not such a
  request with the right secret (compared in constant time), or none within
  ``AUTH_TIMEOUT``, gets nothing but a close with code 4403.
* Nothing waits on a viewer: each flush is encoded and framed once, and the
  same bytes are written to every viewer's transport, whose write buffer is
  that viewer's queue, capped at ``queue_bytes`` (its socket's own send buffer
  is fixed at ``SEND_BUFFER``); past it the viewer is cut off (the connection
  dropped) and its page reconnects and catches up.  The others never notice.
* A catch-up's answer starts with ``["epoch", id]`` (this run of the relay),
  so a page that reconnects to a restarted relay keeps what it showed.
* Every asset comes from the package; the page is served with a CSP that
  allows nothing from elsewhere (``default-src 'self'; img-src 'self' data:``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from ipymirror.core.html import CSP, css
from ipymirror.core.page import LivePage, Op
from ipymirror.core.protocol import to_event
from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.recording.format import RecordError, decode_record

__all__ = ["WebShare", "parse_catchup", "parse_web_address", "web_secret", "web_url"]

PAGE_CSP = CSP + "; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
INBOUND_MAX = 512  # bytes of any websocket message from a page
AUTH_TIMEOUT = 5.0  # seconds for a new connection to send its catch-up request
CATCHUP_INTERVAL = 1.0  # seconds between two catch-ups answered on one connection
MAX_IGNORED = 50  # catch-ups too soon before the connection is closed
MAX_UNAUTHENTICATED = 1024  # connections waiting to send their request, at most
FRAME = 0.01  # seconds: operations are batched at most this often
QUEUE_BYTES = 4 * 1024 * 1024  # bytes queued per viewer before it is cut off
SEND_BUFFER = 64 * 1024  # the socket's send buffer per viewer (Linux doubles it; no autotuning)
FORBIDDEN = 4403
_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):(\d{1,5})")
_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def parse_web_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) of ``--web``; port 0 picks a free one."""
    m = _ADDRESS.fullmatch(text)
    if m is None or int(m.group(2)) > 65535:
        raise MirrorError(f"bad --web address {text!r} (expected HOST:PORT)", ExitStatus.ADDRESS)
    return m.group(1).strip("[]"), int(m.group(2))


def web_secret(viewer_secret: str) -> str:
    """The page's viewer secret, derived from the ticket's (same ticket file, same URL)."""
    digest = hmac.new(viewer_secret.encode("ascii"), b"ipymirror-web", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def web_url(host: str, port: int, secret: str, advertise: str | None = None) -> str:
    """The URL to hand out: the secret in the fragment, never sent to a server."""
    if advertise is None and host in ("0.0.0.0", "::", ""):
        advertise = socket.getfqdn()
    name = advertise or host
    if ":" in name:
        name = f"[{name}]"
    return f"http://{name}:{port}/#{secret}"


def parse_catchup(data: Any) -> str | None:
    """The secret of a well-formed catch-up request (a websocket text), else None."""
    if not isinstance(data, str) or len(data) > INBOUND_MAX:
        return None
    try:
        msg = json.loads(data)
    except ValueError:
        return None
    if not isinstance(msg, dict) or set(msg) != {"v", "type", "secret"}:
        return None
    secret = msg["secret"]
    if msg["v"] != 1 or msg["type"] != "catchup" or not isinstance(secret, str):
        return None
    return secret if len(secret) <= 128 else None


def text_frame(payload: bytes) -> bytes:
    """An RFC 6455 server text frame (FIN, opcode 1, unmasked, no extension).

    Written by hand on purpose: a frame is built once per flush and the same
    bytes go to every viewer's transport, where aiohttp's writer would frame
    the message again for each of 500 viewers, each in a task of its own.
    """
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 1 << 16:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + payload


class _Viewer:
    """One page; its transport's write buffer is its queue, capped at ``limit`` bytes."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, limit: int) -> None:
        self.ws, self.limit = ws, limit
        self.transport = request.transport
        self.dead = self.was_cut = False

    def push(self, frame: bytes) -> bool:
        """Write a frame; False (and cut off) if the viewer is too far behind."""
        tr = self.transport
        if self.dead or tr is None or tr.is_closing():
            self.dead = True
            return False
        if tr.get_write_buffer_size() > self.limit:  # (one frame, a snapshot, may be larger)
            self.cut()
            return False
        tr.write(frame)
        return True

    def cut(self) -> None:
        """Drop a viewer that does not read (its page reconnects and catches up)."""
        self.dead = self.was_cut = True
        if self.transport is not None:
            self.transport.abort()


class WebShare:
    """The page, its assets, the websocket and the fan-out to every viewer."""

    def __init__(
        self, secret: str, *, language: str = "", cells: int = 20, queue_bytes: int = QUEUE_BYTES
    ) -> None:
        self.secret = secret.encode("ascii")
        self.page = LivePage(language, cells)
        self.epoch = os.urandom(8).hex()  # this run: a page that sees another one keeps its past
        self.queue_bytes = queue_bytes
        self.viewers: set[_Viewer] = set()
        self.joining: list[_Viewer] = []
        self.refused = 0  # connections closed for a wrong or missing secret
        self.cut_off = 0  # viewers dropped for not reading
        self.ignored = 0  # catch-ups that came too soon
        self._unauthenticated = 0
        self._sockets: set[web.WebSocketResponse] = set()
        self.on_change: Callable[[], None] = lambda: None  # viewers or refusals changed
        self._flush_at: asyncio.TimerHandle | None = None
        self._last_flush = 0.0
        self._runner: web.AppRunner | None = None
        self._static = resources.files("ipymirror.transports.share") / "static"

    # -- the stream ------------------------------------------------------------
    def feed(self, msgs: list[dict[str, Any]]) -> None:
        """A batch the relay published: into the page; a flush within one frame."""
        page = self.page
        for msg in msgs:
            ev = to_event(msg)
            if ev is not None:
                page.feed(ev)
        self._schedule()

    def seed(self, records: Iterable[bytes]) -> None:
        """Start from the relay's backlog (encoded records): a page opened now sees it."""
        msgs = []
        for line in records:
            with contextlib.suppress(RecordError):
                msgs.append(dict(decode_record(line).msg))
        self.feed(msgs)

    def set_kernel_state(self, ok: bool) -> None:
        extra = "" if ok else "kernel not answering"
        if extra != self.page.extra:
            self.page.extra = extra
            self._schedule()

    def _schedule(self) -> None:
        if self._flush_at is None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self._last_flush + FRAME - time.monotonic())
            self._flush_at = loop.call_later(delay, self.flush)

    def flush(self) -> None:
        """Send the operations since the last flush to all; then welcome the joiners."""
        self._flush_at = None
        self._last_flush = time.monotonic()
        ops = self.page.flush()
        if ops:
            frame = text_frame(_encode(ops))
            for viewer in list(self.viewers):
                if not viewer.push(frame):
                    self._drop(viewer)
        if self.joining:
            snapshot = text_frame(_encode([["epoch", self.epoch], *self.page.snapshot()]))
            joining, self.joining = self.joining, []
            for viewer in joining:
                if viewer.push(snapshot):  # (what it had queued is applied, then reset)
                    self.viewers.add(viewer)
            self.on_change()

    def _drop(self, viewer: _Viewer) -> None:
        if viewer in self.viewers:
            self.viewers.discard(viewer)
            self.cut_off += viewer.was_cut  # (not one that just went away)
            self.on_change()

    # -- HTTP ------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=INBOUND_MAX)
        app.router.add_get("/", self._asset("index.html", "text/html"))
        app.router.add_get("/page.js", self._asset("page.js", "text/javascript"))
        app.router.add_get("/page.css", self._css)
        app.router.add_get("/ws", self._websocket)
        return app

    def _asset(self, name: str, kind: str) -> Any:
        body = (self._static / name).read_bytes()

        async def handler(request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=kind, charset="utf-8", headers=_HEADERS)

        return handler

    async def _css(self, request: web.Request) -> web.Response:
        return web.Response(text=css(), content_type="text/css", headers=_HEADERS)

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port``; the port bound."""
        css(), self.page.html.code("x")  # import pygments & co now, not on the first cell
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise MirrorError(
                f"cannot listen on {host}:{port}: {exc.strerror}", ExitStatus.ADDRESS
            ) from None
        return int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
        for viewer in list(self.viewers):
            viewer.dead = True
        closing = [ws.close(code=1001, message=b"the relay stops") for ws in self._sockets]
        if closing:
            await asyncio.wait([asyncio.ensure_future(c) for c in closing], timeout=1.0)
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the websocket -------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self._unauthenticated >= MAX_UNAUTHENTICATED:
            return web.Response(status=503, text="busy", headers=_HEADERS)
        ws = web.WebSocketResponse(max_msg_size=INBOUND_MAX, compress=False, autoping=True)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            return await self._serve(ws, request)
        finally:
            self._sockets.discard(ws)

    async def _serve(self, ws: web.WebSocketResponse, request: web.Request) -> web.StreamResponse:
        self._unauthenticated += 1
        try:
            first = await asyncio.wait_for(ws.receive(), AUTH_TIMEOUT)
        except TimeoutError:
            first = None
        finally:
            self._unauthenticated -= 1
        secret = parse_catchup(first.data) if first is not None else None
        if secret is None or not hmac.compare_digest(secret.encode("utf-8"), self.secret):
            self.refused += 1
            self.on_change()
            await ws.close(code=FORBIDDEN, message=b"forbidden")
            return ws
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:  # the kernel's buffer for a viewer that does not read: bounded
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        viewer = _Viewer(ws, request, self.queue_bytes)
        self._join(viewer)
        try:
            await self._read(ws, viewer)
        finally:
            viewer.dead = True
            self.viewers.discard(viewer)
            self.on_change()
        return ws

    def _join(self, viewer: _Viewer) -> None:
        self.viewers.discard(viewer)
        self.joining.append(viewer)
        self._schedule()

    async def _read(self, ws: web.WebSocketResponse, viewer: _Viewer) -> None:
        """After the first request: only catch-ups, at most one a second."""
        last, ignored = time.monotonic(), 0
        async for msg in ws:
            secret = parse_catchup(msg.data) if msg.type == WSMsgType.TEXT else None
            if secret is None or not hmac.compare_digest(secret.encode("utf-8"), self.secret):
                await ws.close(code=FORBIDDEN, message=b"read-only")
                return
            now = time.monotonic()
            if now - last < CATCHUP_INTERVAL:
                self.ignored += 1
                ignored += 1
                if ignored > MAX_IGNORED:
                    await ws.close(code=FORBIDDEN, message=b"too many requests")
                    return
                continue
            last = now
            self._join(viewer)


def _encode(ops: list[Op]) -> bytes:
    return json.dumps(ops, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
