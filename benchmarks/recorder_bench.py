#!/usr/bin/env python3
"""Recorder throughput and overhead on a flood (issue 4's benchmark figure).

    python benchmarks/recorder_bench.py                 # 200,000 lines, 3 runs
    python benchmarks/recorder_bench.py --lines 20000 --runs 1

A peer floods a real ipykernel on 127.0.0.1 with ``print(i, flush=True)`` in a
loop (one IOPub message per line).  Each run floods twice, alternating:

* **without** a recorder: the kernel's own time for the loop (measured inside
  the kernel, returned through ``user_expressions``);
* **with** ``ipymirror record`` attached (a separate process, as a user runs
  it): the kernel's time again, when the recording holds the flood's last
  message (its ``idle``), the messages recorded and the recorder's CPU time.

Then, offline, the recorder pipeline's capacity: the same stream messages,
signed and serialised as on the wire, pushed through what ``record`` runs per
message (``Session.deserialize`` -> ``Mirror.feed`` -> ``Recorder.write`` ->
file), plain and gzip, with no kernel in the way.

Figures are medians over the runs.  Every message recorded in the live runs is
checked (every line number 0..N-1 present, in order).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from jupyter_client import KernelManager  # noqa: E402
from jupyter_client.session import Session  # noqa: E402

from ipymirror.commands.record import NoTranscript, Recorder  # noqa: E402
from ipymirror.core.pipeline import Pipeline  # noqa: E402
from ipymirror.core.render import Renderer  # noqa: E402
from ipymirror.recording.files import RecordingWriter, read_recording  # noqa: E402
from ipymirror.recording.format import header_record  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def flood_code(n: int) -> str:
    return (
        "import time as _t\n_t0 = _t.perf_counter()\n"
        f"for i in range({n}):\n    print(i, flush=True)\n"
        "_flood_s = _t.perf_counter() - _t0"
    )


def flood(kc: Any, n: int, timeout: float = 900) -> tuple[str, float]:
    """Run the flood; (its msg_id, the kernel's seconds for the loop)."""
    msg_id = kc.execute(flood_code(n), user_expressions={"s": "_flood_s"})
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    value = reply["content"]["user_expressions"]["s"]["data"]["text/plain"]
    return msg_id, float(value)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def wait_for_idle(path: Path, msg_id: str, timeout: float) -> float:
    """Follow the recording until the flood's idle is in it; the time it was seen."""
    needle = msg_id.encode()
    deadline = time.monotonic() + timeout
    offset, rest = 0, b""
    while time.monotonic() < deadline:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
        offset += len(data)
        *lines, rest = (rest + data).split(b"\n")
        for line in lines:
            if needle in line and b'"idle"' in line and b'"status"' in line:
                return time.perf_counter()
        time.sleep(0.01)
    raise TimeoutError(f"the recording never got the idle of {msg_id}")


def live_run(km: KernelManager, kc: Any, n: int, tmp: Path, env: dict[str, str]) -> dict:
    out = tmp / f"flood-{time.monotonic_ns()}.ipym"
    argv = [sys.executable, "-m", "ipymirror", "record", str(out), "--existing", km.connection_file]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        ready = proc.stdout.readline().decode()
        if "recording the" not in ready:
            raise RuntimeError(f"recorder did not start: {ready!r} {proc.stderr.read()!r}")
        cpu0 = cpu_seconds(proc.pid)
        start = time.perf_counter()
        msg_id, kernel_s = flood(kc, n)
        replied = time.perf_counter()
        done = wait_for_idle(out, msg_id, timeout=900)
        cpu = cpu_seconds(proc.pid) - cpu0
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _, records = read_recording(str(out))
    count, expect, text_ok = 0, 0, True
    for record in records:
        if record.parent_id != msg_id:
            continue
        count += 1
        if record.msg_type == "stream":
            for number in record.msg["content"]["text"].split():
                text_ok &= int(number) == expect
                expect += 1
    size = out.stat().st_size
    out.unlink()
    return {
        "kernel_s": kernel_s,
        "messages": count,
        "complete": text_ok and expect == n,
        "recorded_s": done - start,
        "lag_s": max(0.0, done - replied),
        "cpu_s": cpu,
        "bytes": size,
    }


def capacity(n: int, tmp: Path, gzip: bool) -> float:
    """Messages/s through deserialize -> Pipeline.feed -> Recorder.write, offline."""
    session = Session(key=b"0123456789abcdef", username="alice")
    parent = session.msg("execute_request", {"code": "flood"})
    wire = []
    for i in range(n):
        msg = session.msg("stream", {"name": "stdout", "text": f"{i}\n"}, parent=parent)
        wire.append(session.serialize(msg))
    out = tmp / f"capacity-{time.monotonic_ns()}.ipym{'.gz' if gzip else ''}"
    writer = RecordingWriter(str(out))
    writer.write_line(header_record({"language_info": {"name": "python"}}))
    recorder = Recorder(writer)
    renderer = Renderer(color=False)
    mirror = Pipeline(renderer, "recorder", NoTranscript(renderer))
    mirror.sinks.append(recorder.write)
    reader = Session(key=b"0123456789abcdef")
    start = time.perf_counter()
    for i in range(0, n, 512):
        batch = []
        for frames in wire[i : i + 512]:
            _, parts = reader.feed_identities(frames)
            batch.append(reader.deserialize(parts))
        mirror.feed(batch)
    took = time.perf_counter() - start
    recorder.close()
    out.unlink()
    assert recorder.messages == n
    return n / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000, help="lines the peer prints")
    parser.add_argument("--runs", type=int, default=3, help="runs (medians are reported)")
    args = parser.parse_args()
    n = args.lines

    with tempfile.TemporaryDirectory(prefix="ipymirror-bench-") as tmpdir:
        tmp = Path(tmpdir)
        env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp), PYTHONPATH=str(REPO_ROOT))
        os.environ["JUPYTER_RUNTIME_DIR"] = str(tmp)
        km = KernelManager(kernel_name="python3", ip="127.0.0.1")
        km.connection_file = str(tmp / "kernel-bench.json")
        km.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        kc = km.client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            flood(kc, 1000)  # warm up
            base, live = [], []
            for run in range(args.runs):
                base.append(flood(kc, n)[1])
                live.append(live_run(km, kc, n, tmp, env))
                r = live[-1]
                print(
                    f"run {run + 1}: kernel {base[-1]:.2f} s alone, "
                    f"{r['kernel_s']:.2f} s recorded; "
                    f"{r['messages']:,} messages recorded in {r['recorded_s']:.2f} s "
                    f"(lag {r['lag_s']:.2f} s, recorder CPU {r['cpu_s']:.2f} s), "
                    f"complete: {r['complete']}",
                    flush=True,
                )
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        plain = [capacity(min(n, 100_000), tmp, gzip=False) for _ in range(args.runs)]
        packed = [capacity(min(n, 100_000), tmp, gzip=True) for _ in range(args.runs)]

    med = statistics.median
    kernel_alone = med(base)
    kernel_rec = med(r["kernel_s"] for r in live)
    messages = med(r["messages"] for r in live)
    print()
    print(f"recorder benchmark: {n:,} lines of print(i, flush=True), median of {args.runs} runs")
    print(
        f"  machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    print(f"  messages per flood:                 {messages:,.0f}")
    print(
        f"  kernel time, no recorder:           {kernel_alone:.2f} s "
        f"({n / kernel_alone:,.0f} lines/s)"
    )
    print(
        f"  kernel time, recorder attached:     {kernel_rec:.2f} s "
        f"(overhead {100 * (kernel_rec / kernel_alone - 1):+.0f}%)"
    )
    print(
        f"  recorded throughput (live):         "
        f"{med(r['messages'] / r['recorded_s'] for r in live):,.0f} messages/s "
        f"(recording done {med(r['lag_s'] for r in live):.2f} s after the kernel)"
    )
    print(
        f"  recorder CPU per message (live):    "
        f"{1e6 * med(r['cpu_s'] / r['messages'] for r in live):.0f} µs"
    )
    print(f"  recording size:                     {med(r['bytes'] for r in live) / 1e6:.1f} MB")
    print(f"  every line recorded, in order:      {all(r['complete'] for r in live)}")
    print(f"  pipeline capacity (offline, plain): {med(plain):,.0f} messages/s")
    print(f"  pipeline capacity (offline, gzip):  {med(packed):,.0f} messages/s")


if __name__ == "__main__":
    main()
