"""The relay's memory is bounded by its caps, not by what the kernel prints.

A real relay on 127.0.0.1 and a real (CurveZMQ) viewer socket that subscribes
and then never reads.  The burst is fed to the relay in-process; what the
relay keeps alive is measured with tracemalloc: pyzmq sends large frames
without copying (``copy=False``), so a record a stalled viewer's queue pins
stays a traced Python object.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import zmq
import zmq.asyncio

from ipymirror.transports.share.relay import LIVE_BYTES, Backlog, Relay
from ipymirror.transports.share.ticket import new_host_keys

MB = 1024 * 1024


def _stream(i: int, size: int) -> dict[str, Any]:
    return {
        "header": {"msg_id": f"m{i}", "msg_type": "stream"},
        "msg_type": "stream",
        "parent_header": {"session": "peer", "msg_id": "c1"},
        "content": {"name": "stdout", "text": f"{i:08}" + "y" * (size - 8)},
    }


def test_a_viewer_that_never_reads_costs_at_most_its_queue():
    async def main() -> tuple[int, int]:
        keys = new_host_keys()
        relay = Relay(keys, {"language_info": {"name": "python"}}, tick=60)
        relay.backlog = Backlog(cells=20, max_bytes=8 * MB)
        changed = asyncio.Event()
        relay.on_change = changed.set
        pub, _ = relay.bind("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
        ctx = zmq.asyncio.Context()
        sub = ctx.socket(zmq.SUB)
        ticket = keys.ticket
        sub.setsockopt(zmq.CURVE_SERVERKEY, ticket.server_public.encode())
        sub.setsockopt(zmq.CURVE_PUBLICKEY, ticket.viewer_public.encode())
        sub.setsockopt(zmq.CURVE_SECRETKEY, ticket.viewer_secret.encode())
        sub.setsockopt(zmq.RCVHWM, 1)  # the viewer reads nothing: its side holds ~nothing
        sub.setsockopt(zmq.RCVBUF, 4096)
        sub.setsockopt(zmq.LINGER, 0)
        sub.connect(pub)
        sub.subscribe(b"")
        queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()

        async def batches() -> AsyncIterator[list[dict[str, Any]]]:
            while True:
                yield await queue.get()

        task = asyncio.ensure_future(relay.run(batches(), lambda: True))
        try:
            while relay.viewers < 1:
                changed.clear()
                await asyncio.wait_for(changed.wait(), 30)
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
            # 40 MB in all: big records (a plot, a 1 MB print) and a flood of small ones
            for i in range(32):
                queue.put_nowait([_stream(i, MB)])
                queue.put_nowait([_stream(1000 + i * 256 + j, 1024) for j in range(256)])
                while not queue.empty():
                    await asyncio.sleep(0)
            await asyncio.sleep(0)
            held = tracemalloc.get_traced_memory()[0] - base
            assert relay.backlog.last == 32 * 257
        finally:
            tracemalloc.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            sub.close()
            ctx.term()
            await relay.close()
        return held, relay.backlog.size

    held, backlog = asyncio.run(main())
    # the backlog (8 MB) and the queue of the stalled viewer (copies of small frames
    # are ZMQ's own, not traced; big records never go live), nothing else
    assert backlog <= 8 * MB
    assert held < 8 * MB + 1000 * LIVE_BYTES // 4, held / MB
