"""ServerLink against a stand-in Jupyter Server whose IOPub subscribes late.

jupyter_server answers a websocket's handshake first and subscribes to the
kernel's IOPub after (and, when the kernel is busy, does not check that the
subscription took): a peer's cell that runs in between never reaches the new
connection.  A real server does it in a window too short to hit on purpose
(once in six loaded CI runs), so this stand-in makes the window explicit: a
reconnected websocket gets IOPub only from its second ``kernel_info_request``
on.  The link must not say "reconnected" before IOPub flows again.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from aiohttp import WSMsgType, web
from jupyter_client.session import Session

from ipymirror.transports.server.framing import decode, encode
from ipymirror.transports.server.link import ServerLink
from ipymirror.transports.server.rest import ServerAPI
from ipymirror.transports.server.urls import parse_server_url

KERNEL_ID = "6a1e5d0c-0000-4000-8000-000000000001"
KERNEL = Session(key=os.urandom(8).hex().encode(), username="kernel")
PEER = Session(key=os.urandom(8).hex().encode(), username="peer")


class Connection:
    def __init__(self, ws: web.WebSocketResponse, subscribed: bool) -> None:
        self.ws, self.subscribed, self.requests = ws, subscribed, 0

    async def send(self, channel: str, msg: dict[str, Any]) -> None:
        if channel != "iopub" or self.subscribed:  # IOPub before the subscription: lost
            await self.ws.send_str(str(encode(None, channel, msg)))


class LateServer:
    """The REST call and the websocket ServerLink uses, with the kernel faked."""

    def __init__(self) -> None:
        self.conns: list[Connection] = []
        self.app = web.Application()
        self.app.router.add_get("/api", self.version)
        self.app.router.add_get("/api/status", self.version)
        self.app.router.add_get(f"/api/kernels/{KERNEL_ID}", self.kernel)
        self.app.router.add_get(f"/api/kernels/{KERNEL_ID}/channels", self.channels)
        self.runner = web.AppRunner(self.app)

    async def start(self) -> str:
        await self.runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        await web.SockSite(self.runner, sock).start()
        port = sock.getsockname()[1]
        return f"http://127.0.0.1:{port}/api/kernels/{KERNEL_ID}"

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "2.0.0"})

    async def kernel(self, request: web.Request) -> web.Response:
        return web.json_response({"id": KERNEL_ID, "name": "python3", "execution_state": "idle"})

    async def channels(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Connection(ws, subscribed=not self.conns)  # the first at once, later ones late
        self.conns.append(conn)
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            channel, msg = decode(None, frame.data)
            if msg["msg_type"] != "kernel_info_request":
                continue
            conn.requests += 1
            conn.subscribed = conn.subscribed or conn.requests >= 2
            parent = msg["header"]
            await conn.send("iopub", status("busy", parent))
            await conn.send(channel, KERNEL.msg("kernel_info_reply", {"status": "ok"}, parent))
            await conn.send("iopub", status("idle", parent))
        return ws

    async def peer_cell(self, text: str) -> None:
        """A peer's cell, broadcast to every connection subscribed now."""
        request = PEER.msg("execute_request", {"code": f"print({text!r})"})["header"]
        for msg in (
            status("busy", request),
            KERNEL.msg("stream", {"name": "stdout", "text": text}, request),
            status("idle", request),
        ):
            for conn in self.conns:
                if not conn.ws.closed:
                    await conn.send("iopub", msg)


def status(state: str, parent: dict[str, Any]) -> dict[str, Any]:
    return KERNEL.msg("status", {"execution_state": state}, parent)


def test_reconnected_is_said_once_a_peers_next_cell_reaches_us(run):
    async def scenario() -> None:
        server = LateServer()
        url = await server.start()
        target = parse_server_url(url)
        link = ServerLink(ServerAPI(target, ""), target, "me")
        reconnected = asyncio.Event()

        def notice(text: str) -> None:
            if text.startswith("reconnected after"):
                reconnected.set()

        link.on_notice = notice
        try:
            await link.connect(10)
            await server.conns[0].ws.close()  # the network drops; the link reconnects
            await asyncio.wait_for(reconnected.wait(), 10)
            await server.peer_cell("after the drop\n")  # a peer runs a cell at once

            async def printed() -> str:
                async for batch in link.iopub_batches():
                    for msg in batch:
                        if msg["msg_type"] == "stream":
                            return str(msg["content"]["text"])
                raise AssertionError("IOPub ended")

            try:
                text = await asyncio.wait_for(printed(), 10)
            except TimeoutError:
                raise AssertionError("the peer's cell never reached the reconnected link") from None
            assert text == "after the drop\n"
            assert len(server.conns) == 2 and server.conns[1].requests >= 2
        finally:
            await link.close(shutdown=False)
            await server.runner.cleanup()

    run(scenario())
