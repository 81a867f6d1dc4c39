"""Peer-cell latency through a Jupyter Server's websocket, next to ZMQ, on one kernel.

    python benchmarks/server_bench.py [--cells 30]

One jupyter_server (127.0.0.1, token, ``base_url=/user/alice/``) runs one notebook
kernel.  A JupyterLab-like websocket peer (``lab-bob``, v1 framing) runs every cell;
its send time is t0.  Two frontends watch at the same time, each in a real pty (the benchmarks'
``PtyTerm``): ``ipymirror --existing <the kernel's connection file>`` (ZMQ, straight
from the kernel) and ``ipymirror --existing <the notebook's URL>`` (through the
server's websocket).  Per cell (seen by both at once): t0 -> the cell's stdout marker in each
frontend's pty bytes and on its emulated screen; the floor is the peer's own websocket receiving
that stdout.  Prints median and p90 in ms.  Everything on 127.0.0.1; the server,
kernel and frontends are ended on exit.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "support")]

import harness as h  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run_cells(terms: dict[str, h.PtyTerm], bob, cells: int, seed: int) -> dict[str, dict]:
    """Each cell is watched by every frontend at once: the same cell, the same moment."""
    rng = random.Random(seed)
    out = {name: {"pty": [], "screen": []} for name in terms}
    floor: list[float] = []
    for i in range(cells):
        n = rng.randrange(10**6, 9 * 10**6) * 100 + i
        marker = f"S{2 * n}E"
        watches = {
            name: (
                t.watch_screen(lambda rows, m=marker: m in rows),
                t.watch_bytes(re.escape(marker.encode())),
            )
            for name, t in terms.items()
        }
        t0 = h.now()
        msg_id = bob.execute_nowait(f'print("S%dE" % ({n} * 2))')
        got = bob.wait_iopub(
            lambda m, mid=msg_id: (
                m["parent_header"].get("msg_id") == mid and m["msg_type"] == "stream"
            ),
            10,
        )
        floor.append(got["t"] - t0)
        for name, (ws, wb) in watches.items():
            if not terms[name].wait([ws, wb], 5.0):
                raise h.BenchError(f"{name}: cell {i} never appeared: {terms[name].tail(300)!r}")
            out[name]["pty"].append(wb.t - t0)
            out[name]["screen"].append(ws.t - t0)
            terms[name].unwatch(ws, wb)
        bob.wait_iopub(
            lambda m, mid=msg_id: (
                m["parent_header"].get("msg_id") == mid
                and m["content"].get("execution_state") == "idle"
            ),
            10,
        )
        time.sleep(rng.uniform(0.05, 0.2))
    return {**out, "floor": {"floor": floor}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=30)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="ipymirror-server-bench-"))
    env = h.bench_env(home)
    import os

    os.environ.update(
        {
            k: env[k]
            for k in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR")
        }
    )
    from server_helpers import LabPeer, start_jupyter_server

    server = start_jupyter_server(home / "root")
    h.on_cleanup(server.stop)
    try:
        kid = server.new_notebook_session("bench.ipynb")["kernel"]["id"]
        bob = LabPeer(server, kid, "lab-bob")
        h.on_cleanup(bob.close)
        conn = Path(env["JUPYTER_RUNTIME_DIR"]) / f"kernel-{kid}.json"
        frontends = {
            "ZMQ (connection file)": ["--existing", str(conn)],
            "Jupyter Server websocket": ["--existing", f"{server.url}lab/tree/bench.ipynb"],
        }
        terms = {}
        for name, argv in frontends.items():
            term = h.PtyTerm(
                [sys.executable, "-m", "ipymirror", *argv, "--name", "me"],
                {**env, "JUPYTER_TOKEN": server.token},
            )
            ready = term.watch_screen(lambda rows: "In [" in rows)
            if not term.wait([ready], 30):
                raise h.BenchError(f"{name}: no prompt: {term.tail(400)!r}")
            terms[name] = term
        run_cells(terms, bob, 3, 0)  # warm-up: lexers, caches
        results = run_cells(terms, bob, args.cells, 1)
        floor = results.pop("floor")["floor"]
        print(
            f"peer-cell latency, {args.cells} cells seen by both frontends at once, ms "
            "(peer send -> output), median / p90"
        )
        print(f"{'frontend':28} {'pty bytes':>16} {'screen':>16}")
        for name, r in results.items():
            cols = [f"{pct(r[k], 0.5):6.1f} / {pct(r[k], 0.9):6.1f}" for k in ("pty", "screen")]
            print(f"{name:28} {cols[0]:>16} {cols[1]:>16}")
        print(
            f"{'floor: the peer receiving it':28} {pct(floor, 0.5):6.1f} / {pct(floor, 0.9):6.1f}"
        )
        print(f"(load average {os.getloadavg()[0]:.1f})")
        return 0
    except h.BenchError as exc:
        print(f"server_bench: {exc}", file=sys.stderr)
        return 1
    finally:
        h.cleanup()


if __name__ == "__main__":
    sys.exit(main())
