"""ServerLink in-process on a real jupyter_server: every request of the KernelTransport
protocol over the one websocket (execute, complete, is_complete, inspect, history),
a unique session per link, and liveness after a REST shutdown."""

from __future__ import annotations

import asyncio

import pytest
from server_helpers import start_jupyter_server
from shedding_support import lines_counted, printed_by

from ipymirror.transports.server.link import ServerLink
from ipymirror.transports.server.rest import ServerAPI
from ipymirror.transports.server.urls import parse_server_url
from ipymirror.transports.shedding import BACKLOG

SLOW = 60.0  # a loaded machine's first jedi completion can take seconds


@pytest.fixture
def server(tmp_path, jupyter_dirs):
    srv = start_jupyter_server(tmp_path / "root")
    yield srv
    srv.stop()


def test_requests_over_the_websocket(server):
    kid = server.new_notebook_session("nb.ipynb")["kernel"]["id"]

    async def main() -> None:
        target = parse_server_url(f"{server.url}lab/tree/nb.ipynb")
        links = [ServerLink(ServerAPI(target, server.token), target, "me") for _ in range(2)]
        try:
            for link in links:
                await link.connect(30)
            a, b = links
            assert a.session_id != b.session_id  # the server drops an older socket of the same id
            assert a.kernel_id == kid and a.kernel_name == "python3" and a.language == "ipython3"
            reply = await a.request(a.execute("import collections\nx = 41 + 1"), SLOW)
            assert reply["content"]["status"] == "ok"
            matches = (await a.request(a.complete("collections.Ordered", 19), SLOW))["content"]
            assert (
                "collections.OrderedDict" in matches["matches"]
                or "OrderedDict" in matches["matches"]
            )
            done = (await a.request(a.is_complete("for i in x:"), SLOW))["content"]
            assert done["status"] == "incomplete"
            info = (await a.request(a.inspect("x", 1), SLOW))["content"]
            assert info["found"] and "42" in info["data"]["text/plain"]
            hist = (await a.request(a.history(hist_access_type="tail", n=5), SLOW))["content"]
            assert any("41 + 1" in entry[2] for entry in hist["history"])
            # b saw a's cell on IOPub, attributed to a's session
            seen = []
            async for batch in b.iopub_batches():
                seen += batch
                if any(m["msg_type"] == "execute_input" for m in seen):
                    break
            cell = next(m for m in seen if m["msg_type"] == "execute_input")
            assert cell["parent_header"]["session"] == a.session_id
            assert a.is_beating()
            await a.api.shutdown(kid)
            for _ in range(100):  # the REST poll says so within a few seconds
                if not a.is_beating():
                    break
                await asyncio.sleep(0.1)
            assert not a.is_beating()
        finally:
            for link in links:
                await link.close(shutdown=False)

    asyncio.run(main())


def test_a_display_far_behind_a_server_sheds_whole_lines_and_counts_them(tmp_path, jupyter_dirs):
    """A server with its rate limit off relays a flood whole; a display that has
    not read it holds at most BACKLOG messages and counts what it dropped."""
    unlimited = "--ZMQChannelsWebsocketConnection.limit_rate=False"
    server = start_jupyter_server(tmp_path / "root", "s3cret-token", "/user/alice/", unlimited)
    lines = 20_000  # well over BACKLOG (8,192), and quick on a loaded machine
    notices: list[str] = []

    async def main() -> tuple[list[str], int]:
        server.new_notebook_session("nb.ipynb")
        target = parse_server_url(f"{server.url}lab/tree/nb.ipynb")
        bob, me = (ServerLink(ServerAPI(target, server.token), target, n) for n in ("bob", "me"))
        me.shed_when_behind()
        me.on_notice = notices.append
        # Known once the cell's idle has reached `me` (the last of its messages): by
        # then all of the flood has, and `me` has handed on none of it.
        flood_in = asyncio.Event()
        queue, cell = me._queue, ""

        def watched(msg: dict) -> None:
            queue(msg)
            parent, state = msg["parent_header"], msg["content"].get("execution_state")
            if parent.get("msg_id") == cell and state == "idle":
                flood_in.set()

        me._queue = watched  # type: ignore[method-assign]
        try:
            await bob.connect(30)
            await me.connect(30)
            cell = bob.execute(f"for i in range({lines}): print(i, flush=True)")
            await asyncio.wait_for(flood_in.wait(), 110)
            peak = me._iopub.qsize()
            return await printed_by(me.iopub_batches(), cell), peak
        finally:
            for link in (bob, me):
                await link.close(shutdown=False)

    try:
        shown, peak = asyncio.run(main())
    finally:
        server.stop()
    got = [int(line) for line in "".join(shown).splitlines()]
    dropped = lines_counted(notices)
    print(f"server shedding: {len(got):,} shown + {dropped:,} counted of {lines:,} lines;", end=" ")
    print(f"{peak:,} messages waiting at most")
    assert got == sorted(set(got)) and len(got) + dropped == lines
    # Past the cap only what is not whole lines is kept (a print split mid-line, statuses):
    # a few, where without shedding every one of the flood's messages waits.
    assert peak < 2 * BACKLOG
