#!/usr/bin/env python3
"""``share --web`` under 500 browser viewers (issue 14's benchmark figures).

    python benchmarks/web_bench.py                      # 500 viewers, 1 run (~1 min)
    python benchmarks/web_bench.py --viewers 100 --cells 20

One run, on 127.0.0.1 only:

* one ipykernel and a peer client (this process), ``python -m ipymirror share
  --web`` (the real command, its own process, ``--web-queue 0.25``);
* ``--viewers`` websocket viewers speaking the page's protocol (a catch-up
  request with the secret, then reading the HTML operations), spread over
  ``--procs`` worker processes (bare asyncio protocols: the bytes a browser
  receives, without a browser's rendering);
* one more viewer alone in a process of its own (what one real browser gets:
  the others' latency includes waiting behind 249 viewers in their process);
* one viewer that stops reading: a raw socket with a 4 kB receive buffer that
  authenticates and never reads again.

Phases: idle (CPU with every viewer connected); ``--cells`` cells, one every
``--interval`` s, each printing 5 lines that carry the kernel's
CLOCK_MONOTONIC (latency = a viewer's receipt of the websocket message minus
that time, so kernel -> relay -> page -> viewer); one big output, ``--burst``
chunks of 10 kB 0.1 s apart (the reader that stopped is cut off; the others
get every line); the cells again (what the others see after the cut).  Relay CPU is utime+stime
from /proc; peak RSS is its VmHWM.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import harness  # noqa: E402
from harness import BenchError, cpu_seconds, now, percentile, vm_hwm_mb  # noqa: E402

CELL = "import time\nfor j in range(5):\n    print(f'{PHASE} T{time.monotonic():.6f}', flush=True)"
BURST = (
    "import time\nfor k in range({N}):\n"
    "    lines = ''.join(f'burst {k:04d} {j:03d} ' + 'x' * 84 + '\\n' for j in range(99))\n"
    "    print(f'during T{time.monotonic():.6f}', lines, sep='\\n', end='', flush=True)\n"
    "    time.sleep(0.1)\nprint('burst', 'end')"
)  # 10 kB every 0.1 s
MARK = re.compile(rb"(before|during|after) T(\d+\.\d+)")


# ------------------------------------------------------------ worker process


def _handshake(host: str, port: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def _frame(text: str) -> bytes:
    """A masked client text frame (short: under 126 bytes)."""
    payload, mask = text.encode(), os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


class _Viewer(asyncio.Protocol):
    """One viewer as a bare websocket protocol: a browser's bytes, a callback per message.

    (Deliberately light: 250 of these share one Python process, and what is
    measured is the server, not the simulated viewers' own queueing.)
    """

    def __init__(self, request: bytes, hello: bytes, on_text: Any, on_close: Any) -> None:
        self.request, self.hello = request, hello
        self.on_text, self.on_close = on_text, on_close
        self.buf = bytearray()
        self.upgraded = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        t = now()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in buf[: buf.find(b"\r\n")]:
                raise BenchError(f"not upgraded: {bytes(buf[:60])!r}")
            del buf[: end + 4]
            self.upgraded = True
            self.transport.write(self.hello)
        while len(buf) >= 2:
            n, head = buf[1] & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, head = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, head = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < head + n:
                return
            opcode, payload = buf[0] & 0x0F, bytes(buf[head : head + n])
            del buf[: head + n]
            if opcode == 1:
                self.on_text(t, payload)
            elif opcode == 8:
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_close()


async def _worker(url: str, n: int) -> None:
    """Run ``n`` viewers until SIGTERM; then print their latencies (ms) per phase as JSON."""
    base, secret = url.split("/#", 1)
    host, port = base[len("http://") :].rsplit(":", 1)
    hello = _frame(json.dumps({"v": 1, "type": "catchup", "secret": secret}))
    got: list[dict[str, dict[str, float]]] = [{} for _ in range(n)]  # phase -> mark -> ms
    flood_end: list[float | None] = [None] * n
    closes = [0] * n
    connected, moved = asyncio.Event(), asyncio.Event()
    ready = [0]
    loop = asyncio.get_running_loop()

    def viewer(i: int) -> _Viewer:
        first = [True]

        def on_text(t: float, payload: bytes) -> None:
            if first[0]:
                first[0] = False
                ready[0] += 1
                moved.set()
                if ready[0] == n:
                    connected.set()
            if b" T" in payload:
                for m in MARK.finditer(payload):  # first sight (a tail op, or lines)
                    seen = got[i].setdefault(m.group(1).decode(), {})
                    seen.setdefault(m.group(2).decode(), 1000 * (t - float(m.group(2))))
            if b"burst end" in payload and flood_end[i] is None:
                flood_end[i] = t
                if all(x is not None for x in flood_end):
                    print("burst-done", flush=True)  # every viewer here has it all

        def on_close() -> None:
            closes[i] += 1

        return _Viewer(_handshake(host, port), hello, on_text, on_close)

    for i in range(n):
        await loop.create_connection(lambda i=i: viewer(i), host, int(port))
        while ready[0] <= i - 50:  # a class does not open its pages in the same millisecond
            moved.clear()
            await moved.wait()
    await connected.wait()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    print(json.dumps({"got": got, "flood_end": flood_end, "closes": closes}), flush=True)


class Worker:
    def __init__(self, url: str, n: int, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", url, str(n)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, text=True,
            start_new_session=True,
        )  # fmt: skip
        harness.on_cleanup(self.kill)

    def readline(self, timeout: float) -> str:
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()))
        reader.daemon = True
        reader.start()
        reader.join(timeout)
        if not box:
            raise BenchError(f"no answer from worker {self.proc.pid} within {timeout:g} s")
        return box[0]

    def results(self, timeout: float) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        return json.loads(self.readline(timeout))

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def stalled_viewer(url: str) -> socket.socket:
    """A viewer that authenticates and then never reads: a tiny receive window."""
    base, secret = url.split("/#", 1)
    host, port = base[len("http://") :].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(_handshake(host, port))
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        raise BenchError(f"the stalled viewer was not upgraded: {head[:80]!r}")
    sock.sendall(_frame(json.dumps({"v": 1, "type": "catchup", "secret": secret})))
    return sock  # and never read from again


# ------------------------------------------------------------------ one run


class Share:
    def __init__(self, connection_file: str, home: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ipymirror", "share", "--existing", connection_file,
             "--bind", "tcp://127.0.0.1:0", "--ticket-file", str(home / "ticket"),
             "--web", "127.0.0.1:0", "--web-queue", "0.25"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, text=True, start_new_session=True,
        )  # fmt: skip
        harness.on_cleanup(self.stop)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for(lambda x: "browsers open:" in x, 60)
        self.url = line.split("browsers open:", 1)[1].strip()

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, check: Any, timeout: float) -> str:
        deadline = now() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if check(line):
                        return line
                left = deadline - now()
                if left <= 0 or self.proc.poll() is not None:
                    raise BenchError(f"share: no matching line; it said {self.lines[-5:]}")
                self.cond.wait(left)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def run_cells(kernel: harness.Kernel, phase: str, args: argparse.Namespace) -> None:
    mark = kernel.sub.mark()
    for _ in range(args.cells):
        started = now()
        msg_id, _ = kernel.execute(CELL.replace("{PHASE}", phase))
        kernel.wait_reply(msg_id, 30)
        kernel.wait_idle(msg_id, 30, mark)
        time.sleep(max(0.0, args.interval - (now() - started)))


def one_run(args: argparse.Namespace) -> dict[str, Any]:
    home = harness.workdir()
    env = harness.bench_env(home)
    kernel = harness.Kernel(home, env)
    share = Share(kernel.connection_file, home, env)
    part, extra = divmod(args.viewers, args.procs)
    workers = [Worker(share.url, part + (i < extra), env) for i in range(args.procs)]
    probe = Worker(share.url, 1, env)  # one more viewer, alone in its process
    for w in [*workers, probe]:
        if w.readline(180).strip() != "ready":
            raise BenchError("a viewer worker did not start")
    stalled = stalled_viewer(share.url)
    share.wait_for(lambda x: f"browsers: {args.viewers + 2} " in x, 60)

    c0, t0 = cpu_seconds(share.proc.pid), now()
    time.sleep(args.idle)
    c1, t1 = cpu_seconds(share.proc.pid), now()
    idle_cpu = 100 * (c1[0] - c0[0]) / (t1 - t0)

    run_cells(kernel, "warmup", argparse.Namespace(cells=2, interval=args.interval))
    c0, t0 = cpu_seconds(share.proc.pid), now()
    run_cells(kernel, "before", args)
    c1, t1 = cpu_seconds(share.proc.pid), now()
    cells_cpu = 100 * (c1[0] - c0[0]) / (t1 - t0)

    flood_start = now()
    msg_id, _ = kernel.execute(BURST.replace("{N}", str(args.burst)))
    kernel.wait_reply(msg_id, 120)
    share.wait_for(lambda x: "cut off: 1" in x, 60)
    for w in [*workers, probe]:  # the readers have caught up with the big output
        if w.readline(120).strip() != "burst-done":
            raise BenchError("a viewer worker did not get the whole big output")
    run_cells(kernel, "after", args)
    time.sleep(1.0)  # the last deliveries land
    peak = vm_hwm_mb(share.proc.pid)
    results = [w.results(120) for w in workers]
    alone = probe.results(60)
    stalled.close()
    share.stop()
    kernel.stop()

    def lat(phase: str) -> list[float]:
        return [x for r in results for v in r["got"] for x in v.get(phase, {}).values()]

    lone = [x for v in alone["got"] for x in v.get("before", {}).values()]
    floor: dict[str, float] = {}  # the same lines at a plain IOPub subscriber: the kernel's part
    for rec in kernel.sub.since(0):
        if rec.msg_type == "stream":
            for m in MARK.finditer(rec.text.encode()):
                if m.group(1) == b"before":
                    floor.setdefault(m.group(2).decode(), 1000 * (rec.t - float(m.group(2))))
    ends = [t for r in results for t in r["flood_end"]]
    before, during, after = lat("before"), lat("during"), lat("after")
    return {
        "p50": percentile(before, 50),
        "p99": percentile(before, 99),
        "max": max(before, default=None),
        "lone_p50": percentile(lone, 50),
        "lone_p99": percentile(lone, 99),
        "floor_p50": percentile(list(floor.values()), 50),
        "floor_p99": percentile(list(floor.values()), 99),
        "during_p50": percentile(during, 50),
        "during_p99": percentile(during, 99),
        "after_p50": percentile(after, 50),
        "after_p99": percentile(after, 99),
        "delivered": len(before) + len(after),
        "expected": 2 * 5 * args.cells * args.viewers,
        "flood_all": None if None in ends else 1000 * (max(ends) - flood_start),
        "reconnects": sum(sum(r["closes"]) for r in results),
        "cpu": cells_cpu,
        "idle_cpu": idle_cpu,
        "rss": peak,
    }


ROWS = [
    ("p50", "delivery latency p50, all viewers (ms)", "{:.1f}"),
    ("p99", "delivery latency p99, all viewers (ms)", "{:.1f}"),
    ("max", "delivery latency max (ms)", "{:.1f}"),
    ("lone_p50", "p50 of one more viewer, alone in its process (ms)", "{:.1f}"),
    ("lone_p99", "p99 of one more viewer, alone in its process (ms)", "{:.1f}"),
    ("floor_p50", "the kernel's part: at a plain IOPub subscriber, p50", "{:.1f}"),
    ("floor_p99", "the kernel's part: at a plain IOPub subscriber, p99", "{:.1f}"),
    ("during_p50", "p50 during the big output, as one stalls (ms)", "{:.1f}"),
    ("during_p99", "p99 during the big output, as one stalls (ms)", "{:.1f}"),
    ("after_p50", "p50 after the stalled viewer was cut off (ms)", "{:.1f}"),
    ("after_p99", "p99 after the stalled viewer was cut off (ms)", "{:.1f}"),
    ("flood_all", "big output: its end at every viewer (ms)", "{:.0f}"),
    ("delivered", "line deliveries (of expected)", "{:.0f}"),
    ("reconnects", "reading viewers disconnected", "{:.0f}"),
    ("cpu", "relay CPU during the cells (% of a core)", "{:.1f}"),
    ("idle_cpu", "relay CPU idle, viewers connected (%)", "{:.1f}"),
    ("rss", "relay peak RSS (MB)", "{:.1f}"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=500)
    parser.add_argument("--procs", type=int, default=2, help="viewer worker processes")
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between cells")
    parser.add_argument("--burst", type=int, default=60, help="10 kB chunks of the big output")
    parser.add_argument("--idle", type=float, default=2.0, help="idle seconds measured")
    args = parser.parse_args()
    try:
        res = one_run(args)
    except BenchError as exc:
        print(f"web_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        harness.cleanup()
    print(
        f"web_bench: {args.viewers} websocket viewers in {args.procs} processes + 1 that stops "
        f"reading; {args.cells} cells (5 lines) every {args.interval:g} s before and after an "
        f"output of {args.burst * 10} kB at 100 kB/s; {platform.python_version()}, "
        f"{os.cpu_count()} CPUs"
    )
    width = max(len(label) for _, label, _ in ROWS)
    for key, label, fmt in ROWS:
        value = res[key]
        text = fmt.format(value) if value is not None else "-"
        if key == "delivered":
            text += f" / {res['expected']}"
        print(f"{label:{width}}  {text}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_worker(sys.argv[2], int(sys.argv[3])))
        sys.exit(0)
    sys.exit(main())
