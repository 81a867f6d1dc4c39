#!/usr/bin/env python3
"""The read-only relay under 200 viewers (issue 5's benchmark figures).

    python benchmarks/relay_bench.py                      # 200 viewers, 3 runs
    python benchmarks/relay_bench.py --viewers 50 --runs 1 --cells 40

Per run, on 127.0.0.1 only:

* one ipykernel, a peer client (in this process) and the plain IOPub
  subscriber of ``harness.py`` in a process of its own: the reference clock;
* ``python -m ipymirror share`` (the real command, its own process);
* ``--viewers`` viewer clients: ``ViewerSource`` objects (the code ``ipymirror
  watch TICKET`` runs, decoding every record) spread over ``--procs`` worker
  processes, one asyncio loop and one ZMQ context per process;
* the peer runs ``--cells`` cells, one every ``--interval`` seconds, each
  printing 5 lines (one IOPub message each, ``flush=True``) and a result.

Latency of a delivery = the time a viewer's ``batches()`` yields the message
minus the time the reference subscriber received the same message from the
kernel (CLOCK_MONOTONIC in every process).  Messages are matched by (parent
msg_id, msg_type, occurrence).  Relay CPU is utime+stime from /proc over the
session (and over an idle period with every viewer connected), as % of one
core; peak RSS is the relay's VmHWM.  Figures are per run, then the median.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import harness  # noqa: E402
from harness import BenchError, cpu_seconds, median, now, percentile, vm_hwm_mb  # noqa: E402

CELL = "for j in range(5):\n    print(f'cell {i} line {j}', flush=True)\n{i} * 2"


# ------------------------------------------------------------ worker process


async def _worker(ticket_text: str, n: int) -> None:
    """Run ``n`` viewers until SIGTERM; then print their deliveries as JSON."""
    import zmq.asyncio

    from ipymirror.transports.share.ticket import Ticket
    from ipymirror.transports.share.viewer import ViewerSource

    ticket = Ticket.parse(ticket_text)
    ctx = zmq.asyncio.Context()
    sources = [ViewerSource(ticket, ctx=ctx) for _ in range(n)]
    await asyncio.gather(*(s.connect(120) for s in sources))
    got: list[list[tuple[float, str, str]]] = [[] for _ in sources]
    notices: list[list[str]] = [[] for _ in sources]

    async def consume(i: int, source: ViewerSource) -> None:
        source.notice = notices[i].append
        out = got[i]
        async for batch in source.batches():
            t = now()
            for m in batch:
                out.append((t, m["parent_header"].get("msg_id", ""), m["msg_type"]))

    tasks = [asyncio.ensure_future(consume(i, s)) for i, s in enumerate(sources)]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    missed = [s.seq.missed for s in sources]
    for s in sources:
        s.close()
    ctx.term()
    print(json.dumps({"got": got, "notices": notices, "missed": missed}), flush=True)


def _probe(ticket_text: str) -> None:
    """A raw subscriber of the relay (no asyncio, no sequencing): the relay's own hop.

    Timestamps each live message as ``recv_multipart`` returns, decodes after.
    """
    import zmq

    from ipymirror.transports.share.ticket import Ticket

    ticket = Ticket.parse(ticket_text)
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.curve_serverkey = ticket.server_public.encode()
    sub.curve_publickey = ticket.viewer_public.encode()
    sub.curve_secretkey = ticket.viewer_secret.encode()
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(ticket.pub)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    raw: list[tuple[float, list[bytes]]] = []
    print("ready", flush=True)
    while not stop.is_set():
        if sub.poll(100):
            frames = sub.recv_multipart()
            raw.append((now(), frames))
    got = []
    for t, frames in raw:
        if frames[0] == b"ev":
            for line in frames[3:]:
                msg = json.loads(line)
                got.append((t, msg["parent_header"].get("msg_id", ""), msg["msg_type"]))
    print(json.dumps({"got": [got], "notices": [[]], "missed": [0]}), flush=True)


class Worker:
    def __init__(self, ticket: str, n: int, env: dict[str, str]) -> None:
        mode = ["--probe", ticket] if n == 0 else ["--worker", ticket, str(n)]
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *mode],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, text=True,
            start_new_session=True,
        )  # fmt: skip
        harness.on_cleanup(self.kill)

    def ready(self, timeout: float) -> None:
        line = _readline(self.proc, timeout)
        if line.strip() != "ready":
            raise BenchError(f"a viewer worker did not start: {line!r}")

    def results(self, timeout: float) -> dict[str, Any]:
        self.proc.send_signal(signal.SIGTERM)
        return json.loads(_readline(self.proc, timeout))

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    """One stdout line of ``proc``, or BenchError after ``timeout``."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not box:
        raise BenchError(f"no answer from pid {proc.pid} within {timeout:g} s")
    return box[0]


# ------------------------------------------------------------------ one run


class Relay:
    def __init__(self, connection_file: str, home: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ipymirror", "share", "--existing", connection_file,
             "--bind", "tcp://127.0.0.1:0", "--ticket-file", str(home / "ticket")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, text=True, start_new_session=True,
        )  # fmt: skip
        harness.on_cleanup(self.stop)
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_for(lambda line: line.startswith("viewers:"), 60)
        self.ticket = next(
            line.split()[-1] for line in self.lines if "ipymirror watch ipym1:" in line
        )

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, check, timeout: float) -> str:
        deadline = now() + timeout
        with self.cond:
            while True:
                for line in self.lines:
                    if check(line):
                        return line
                left = deadline - now()
                if left <= 0 or self.proc.poll() is not None:
                    raise BenchError(f"relay: no matching line; it said {self.lines[-5:]}")
                self.cond.wait(left)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def one_run(args: argparse.Namespace) -> dict[str, Any]:
    home = harness.workdir()
    env = harness.bench_env(home)
    kernel = harness.Kernel(home, env)
    relay = Relay(kernel.connection_file, home, env)
    share, extra = divmod(args.viewers, args.procs)
    sizes = [share + (i < extra) for i in range(args.procs)]
    workers = [Worker(relay.ticket, n, env) for n in sizes if n]
    probe = Worker(relay.ticket, 0, env)
    for w in [*workers, probe]:
        w.ready(180)
    relay.wait_for(lambda line: line.startswith(f"viewers: {args.viewers + 1} "), 120)

    # Idle: every viewer connected, nothing running (ticks only).
    c0, t0 = cpu_seconds(relay.proc.pid), now()
    time.sleep(args.idle)
    c1, t1 = cpu_seconds(relay.proc.pid), now()
    idle_cpu = 100 * (c1[0] - c0[0]) / (t1 - t0)

    # The session.
    mark = kernel.sub.mark()
    cells: list[str] = []
    c0, t0 = cpu_seconds(relay.proc.pid), now()
    for i in range(args.cells):
        started = now()
        msg_id, _ = kernel.execute(CELL.replace("{i}", str(i)))
        cells.append(msg_id)
        kernel.wait_reply(msg_id, 30)
        kernel.wait_idle(msg_id, 30, mark)
        time.sleep(max(0.0, args.interval - (now() - started)))
    time.sleep(1.0)  # let the last deliveries land before the viewers stop
    c1, t1 = cpu_seconds(relay.proc.pid), now()
    session_cpu = 100 * (c1[0] - c0[0]) / (t1 - t0)
    peak = vm_hwm_mb(relay.proc.pid)

    results = [w.results(120) for w in workers]
    probed = probe.results(60)
    relay.stop()
    kernel.stop()

    wanted = set(cells)
    ref: dict[tuple[str, str, int], float] = {}
    seen: Counter[tuple[str, str]] = Counter()
    for rec in kernel.sub.since(mark):
        if rec.parent in wanted:
            key = (rec.parent, rec.msg_type)
            ref[(*key, seen[key])] = rec.t
            seen[key] += 1
    per_viewer = [lat for res in results for lat in latencies(res, ref, wanted)]
    hop = latencies(probed, ref, wanted)[0]
    everything = [x for lat in per_viewer for x in lat]
    last = per_viewer[-1]
    return {
        "p50": percentile(everything, 50),
        "p99": percentile(everything, 99),
        "max": max(everything, default=None),
        "last_p50": percentile(last, 50),
        "last_p99": percentile(last, 99),
        "delivered": len(everything),
        "expected": len(ref) * args.viewers,
        "missed": sum(sum(r["missed"]) for r in results),
        "hop_p50": percentile(hop, 50),
        "hop_p99": percentile(hop, 99),
        "cpu": session_cpu,
        "idle_cpu": idle_cpu,
        "rss": peak,
    }


def latencies(
    res: dict[str, Any], ref: dict[tuple[str, str, int], float], wanted: set[str]
) -> list[list[float]]:
    """Per viewer: ms from the reference's receipt to the viewer's, per message of ``wanted``."""
    out = []
    for got in res["got"]:
        lat: list[float] = []
        count: Counter[tuple[str, str]] = Counter()
        for t, parent, msg_type in got:
            if parent in wanted:
                key = (parent, msg_type, count[(parent, msg_type)])
                count[(parent, msg_type)] += 1
                if key in ref:
                    lat.append(1000 * (t - ref[key]))
        out.append(lat)
    return out


# --------------------------------------------------------------------- main

ROWS = [
    ("p50", "delivery latency p50, all viewers (ms)", "{:.1f}"),
    ("p99", "delivery latency p99, all viewers (ms)", "{:.1f}"),
    ("max", "delivery latency max (ms)", "{:.1f}"),
    ("last_p50", "latency p50, the 200th viewer (ms)", "{:.1f}"),
    ("last_p99", "latency p99, the 200th viewer (ms)", "{:.1f}"),
    ("hop_p50", "relay hop p50, to a raw subscriber (ms)", "{:.1f}"),
    ("hop_p99", "relay hop p99, to a raw subscriber (ms)", "{:.1f}"),
    ("cpu", "relay CPU during the session (% of a core)", "{:.1f}"),
    ("idle_cpu", "relay CPU idle, viewers connected (%)", "{:.1f}"),
    ("rss", "relay peak RSS (MB)", "{:.1f}"),
    ("delivered", "deliveries (of expected)", "{:.0f}"),
    ("missed", "events announced missed", "{:.0f}"),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=200)
    parser.add_argument("--procs", type=int, default=4, help="viewer worker processes")
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between cells")
    parser.add_argument("--idle", type=float, default=3.0, help="idle seconds measured")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    try:
        for _ in range(args.runs):
            runs.append(one_run(args))
            harness.cleanup()
    except BenchError as exc:
        print(f"relay_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        harness.cleanup()
    print(
        f"relay_bench: {args.viewers} viewers in {args.procs} processes, {args.cells} cells "
        f"(5 lines + a result) every {args.interval:g} s, {args.runs} runs; "
        f"{platform.python_version()}, {os.cpu_count()} CPUs"
    )
    width = max(len(label) for _, label, _ in ROWS)
    head = "".join(f"{'run ' + str(i + 1):>10}" for i in range(len(runs)))
    print(f"{'':{width}}{head}{'median':>10}")
    for key, label, fmt in ROWS:
        label = label.replace("200th", f"{args.viewers}th")
        vals = [r[key] for r in runs]
        cells = "".join(f"{fmt.format(v) if v is not None else '-':>10}" for v in vals)
        med = median(vals)
        print(f"{label:{width}}{cells}{fmt.format(med) if med is not None else '-':>10}")
        if key == "delivered":
            print(f"{'':{width}}" + "".join(f"{'/' + str(r['expected']):>10}" for r in runs))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--probe"]:
        _probe(sys.argv[2])
        sys.exit(0)
    if sys.argv[1:2] == ["--worker"]:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_worker(sys.argv[2], int(sys.argv[3])))
        sys.exit(0)
    sys.exit(main())
