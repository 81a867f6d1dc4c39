"""The ``share --web`` server in process: secrets, read-only websocket, slow viewers.

Real aiohttp server on 127.0.0.1, real websocket clients (and one raw socket
that stops reading); the page's state is fed events directly, as the relay
feeds it.  The browser side is tests/test_web_page.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any

import aiohttp
import pytest

from ipymirror.cli import main
from ipymirror.errors import MirrorError
from ipymirror.transports.share.web import (
    FORBIDDEN,
    WebShare,
    parse_catchup,
    parse_web_address,
    web_secret,
    web_url,
)

SECRET = web_secret("a" * 40)
MSG_ID = "m-1"


def msg(msg_type: str, content: dict[str, Any], parent: str = MSG_ID) -> dict[str, Any]:
    return {
        "header": {"msg_type": msg_type, "msg_id": os.urandom(4).hex()},
        "parent_header": {"msg_id": parent, "session": "s-1", "username": "alice"},
        "content": content,
    }


def catchup(secret: str = SECRET) -> str:
    return json.dumps({"v": 1, "type": "catchup", "secret": secret})


async def serve(**kw: Any) -> tuple[WebShare, str]:
    web = WebShare(SECRET, language="python", **kw)
    port = await web.start("127.0.0.1", 0)
    return web, f"ws://127.0.0.1:{port}/ws"


@pytest.mark.parametrize(
    "text",
    [
        '{"v": 1, "type": "catchup"}',
        '{"v": 2, "type": "catchup", "secret": "x"}',
        '{"v": 1, "type": "execute", "secret": "x"}',
        '{"v": 1, "type": "catchup", "secret": 5}',
        '{"v": 1, "type": "catchup", "secret": "x", "code": "1"}',
        '{"v": 1, "type": "catchup", "secret": "' + "x" * 200 + '"}',
        "[1, 2]",
        "not json",
        "x" * 600,
        None,
        b'{"v": 1}',
    ],
)
def test_only_a_well_formed_catchup_is_a_request(text):
    assert parse_catchup(text) is None


def test_addresses_and_the_url():
    assert parse_web_address("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert parse_web_address("[::1]:0") == ("::1", 0)
    for bad in ("8765", "host:", "http://h:1", "h:99999", "h:1/x"):
        with pytest.raises(MirrorError, match="bad --web address"):
            parse_web_address(bad)
    assert web_url("127.0.0.1", 8765, SECRET) == f"http://127.0.0.1:8765/#{SECRET}"
    assert web_url("0.0.0.0", 1, "s", "lab.example.org") == "http://lab.example.org:1/#s"
    assert web_url("::1", 1, "s") == "http://[::1]:1/#s"
    assert web_secret("a" * 40) == SECRET != web_secret("b" * 40)


def test_a_bad_web_address_is_one_line(capsys):
    assert main(["share", "--web", "nonsense"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad --web address" in err[0]


def test_wrong_secrets_get_a_close_and_nothing_else():
    async def scenario() -> None:
        web, url = await serve()
        web.feed([msg("execute_input", {"code": "secret_data = 1", "execution_count": 1})])
        try:
            async with aiohttp.ClientSession() as s:
                for first in (catchup("wrong"), catchup(""), '{"v":1}', None):
                    async with s.ws_connect(url) as ws:
                        if first is not None:
                            await ws.send_str(first)
                        got = [m async for m in ws]
                        assert got == [] and ws.close_code == FORBIDDEN
                async with s.get(url.replace("ws:", "http:").replace("/ws", "/")) as resp:
                    assert resp.headers["Content-Security-Policy"].startswith(
                        "default-src 'self'; img-src 'self' data:"
                    )
                    assert "secret_data" not in await resp.text()
        finally:
            await web.close()
        assert web.refused == 4

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_late_joiner_gets_the_page_then_live_and_catchups_are_rate_limited():
    async def scenario() -> None:
        web, url = await serve()
        web.feed([msg("execute_input", {"code": "x = 1", "execution_count": 1})])
        web.feed([msg("stream", {"name": "stdout", "text": "early line\n"})])
        try:
            async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
                await ws.send_str(catchup())
                first = json.loads((await ws.receive(timeout=10)).data)
                assert first[0] == ["epoch", web.epoch]  # this relay run's
                assert first[1][0] == "reset" and "early line" in first[1][1]
                web.feed([msg("stream", {"name": "stdout", "text": "live line\n"})])
                live = json.loads((await ws.receive(timeout=10)).data)
                assert ["app", "c1-0", "live line\n"] in live
                for _ in range(5):  # at most one catch-up a second is answered
                    await ws.send_str(catchup())
                await ws.send_str('{"v": 1, "type": "execute", "code": "1"}')  # not allowed
                rest = [m async for m in ws]  # read to the close: all six were handled
                assert rest == [] and ws.close_code == FORBIDDEN
                assert web.ignored == 5
        finally:
            await web.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def _stalled(port: int) -> socket.socket:
    """A websocket client that authenticates and then never reads again."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head
    payload, mask = catchup().encode(), os.urandom(4)
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask)
    sock.sendall(bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


def test_a_viewer_that_stops_reading_is_cut_off_and_the_others_get_everything():
    async def scenario() -> None:
        web, url = await serve(queue_bytes=256 * 1024)
        port = int(url.split(":")[2].split("/")[0])
        web.feed([msg("execute_input", {"code": "flood()", "execution_count": 1})])
        stalled = await asyncio.to_thread(_stalled, port)
        try:
            async with aiohttp.ClientSession() as s, s.ws_connect(url, max_msg_size=0) as ws:
                await ws.send_str(catchup())
                await ws.receive(timeout=10)
                while len(web.viewers) < 2:
                    await asyncio.sleep(0.01)  # (the stalled one's request is in flight)
                lines = 0
                for batch in range(200):  # ~4 MB in all, 20 kB a batch
                    text = "".join(f"line {batch:03d} {j:03d} {'x' * 180}\n" for j in range(100))
                    web.feed([msg("stream", {"name": "stdout", "text": text})])
                    web.flush()
                    while True:  # the reader keeps up; the stalled one cannot
                        got = json.loads((await ws.receive(timeout=10)).data)
                        lines += sum(op[2].count("\n") for op in got if op[0] in ("app", "add"))
                        if any(op[0] in ("app", "add") for op in got):
                            break
                assert lines == 200 * 100
                assert web.cut_off == 1 and len(web.viewers) == 1
        finally:
            stalled.close()
            await web.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_the_page_starts_from_the_relays_backlog():
    from ipymirror.recording.format import encode_record

    async def scenario() -> None:
        web, url = await serve()
        backlog = [
            encode_record(msg("execute_input", {"code": "old = 1", "execution_count": 1}), 0.1),
            encode_record(msg("stream", {"name": "stdout", "text": "from the backlog\n"}), 0.2),
            b'{"not": "a record"}',
        ]
        web.seed(backlog)
        try:
            async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
                await ws.send_str(catchup())
                first = json.loads((await ws.receive(timeout=10)).data)
                assert first[1][0] == "reset" and "from the backlog" in first[1][1]
        finally:
            await web.close()

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_the_host_gets_the_url_and_on_a_terminal_a_qr_code():
    import io
    from types import SimpleNamespace

    from ipymirror.commands.share import _start_web
    from ipymirror.transports.share.relay import Backlog
    from ipymirror.transports.share.ticket import new_host_keys

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    async def scenario(out: io.StringIO) -> str:
        args = SimpleNamespace(web="127.0.0.1:0", advertise=None, backlog_cells=5, web_queue=1.0)
        relay = SimpleNamespace(backlog=Backlog(), observers=[])
        web = await _start_web(args, new_host_keys(), relay, "python", out)
        try:
            assert relay.observers == [web.feed]
            return out.getvalue()
        finally:
            await web.close()

    piped = asyncio.run(scenario(io.StringIO()))
    assert re_url(piped) and "█" not in piped  # piped: the URL line only
    shown = asyncio.run(scenario(Tty()))
    assert re_url(shown) and shown.count("\n") > 15 and "█" in shown  # and the QR code


def re_url(text: str) -> bool:
    import re

    return bool(re.match(r"» browsers open:  http://127\.0\.0\.1:\d+/#[\w-]{43}\n", text))
