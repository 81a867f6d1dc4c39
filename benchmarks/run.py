#!/usr/bin/env python3
"""ipymirror vs jupyter_console on one shared kernel, side by side.

    python benchmarks/run.py            # full run (3 runs, ~6 minutes on 2 cores)
    python benchmarks/run.py --quick    # small run to iterate (~1 minute)

Starts an ipykernel on 127.0.0.1, a peer client that runs cells on it and a
plain IOPub subscriber (the floor), then runs each frontend in turn in a
120x40 terminal and prints one table: floor, jupyter_console, ipymirror,
ipymirror ÷ jupyter_console, the target of issue 3 and whether it is met.
See benchmarks/README.md for what each row measures and how.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import os
import platform
import random
import re
import signal
import string
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
from harness import BenchError, now

FRONTENDS = ("jupyter_console", "ipymirror")
SCENARIOS = ("start", "idle", "latency", "flood", "keys")
PROMPT_RE = re.compile(r"^In \[\d+\]: ?", re.M)


def LAST_LINE_RE(last: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![0-9]){last}(?![0-9])")


KEYS = string.ascii_lowercase + string.ascii_uppercase  # 52 distinct key characters
MS = 1000.0


@dataclass
class Config:
    runs: int
    cells: int  # latency cells per run and frontend
    flood: int  # lines of the screen-checked flood (pty)
    big_flood: int  # lines of the flood typed over (tmux)
    idle: float  # seconds of idle CPU measurement
    starts: int  # start-up samples per run and frontend
    max_keys: int  # keys typed during the big flood, at most
    screen_check: bool  # also replay the flood through pyte and read its scrollback


QUICK = Config(runs=1, cells=20, flood=20_000, big_flood=200_000, idle=5.0, starts=3,
               max_keys=50, screen_check=True)  # fmt: skip
FULL = Config(runs=3, cells=50, flood=200_000, big_flood=2_000_000, idle=10.0, starts=5,
              max_keys=200, screen_check=True)  # fmt: skip


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def argv_of(frontend: str, connection_file: str) -> list[str]:
    if frontend == "ipymirror":
        return [sys.executable, "-m", "ipymirror", "--existing", connection_file, "--name", "me"]
    if frontend == "jupyter_console":
        return [h.jupyter_command(), "console", "--existing", connection_file,
                "--ZMQTerminalInteractiveShell.include_other_output=True"]  # fmt: skip
    if frontend == "prompt":  # the floor of the key test: a bare prompt_toolkit prompt
        code = "from prompt_toolkit import PromptSession; PromptSession().prompt('In [1]: ')"
        return [sys.executable, "-c", code]
    if frontend == "jupyter-console":  # the same, without the `jupyter` launcher
        exe = str(Path(h.jupyter_command()).with_name("jupyter-console"))
        return [exe, "--existing", connection_file,
                "--ZMQTerminalInteractiveShell.include_other_output=True"]  # fmt: skip
    raise ValueError(frontend)


def ready(rows: str) -> bool:
    return PROMPT_RE.search(rows) is not None


def failure(exc: BaseException) -> dict[str, Any]:
    return {
        "error": f"{type(exc).__name__}: {exc}" if not isinstance(exc, BenchError) else str(exc)
    }


# ----------------------------------------------------------------- scenarios

PROFILE_DIR: Path | None = None  # --py-spy DIR
PROFILED = ("ipymirror",)


def profile(frontend: str, pid: int, what: str) -> h.PySpy | None:
    """Attach py-spy to the frontend for one scenario when --py-spy was given."""
    if PROFILE_DIR is None or frontend not in PROFILED:
        return None
    return h.PySpy(pid, PROFILE_DIR / f"{frontend}-{what}.txt")


def start_prompt(term: h.PtyTerm, frontend: str, timeout: float = 30.0) -> float:
    """Seconds from spawn to a prompt `In [n]: ` on the emulated screen."""
    w = term.watch_screen(ready)
    if not term.wait([w], timeout) or w.t is None:
        state = term.exit_text()
        what = "crashed" if state != "running" else f"no prompt within {timeout:g} s"
        raise BenchError(f"{frontend} {what} ({state}); last output: {term.tail(300)!r}")
    return w.t - term.t_spawn


def start_sample(frontend: str, kernel: h.Kernel, env: dict[str, str]) -> float:
    term = h.PtyTerm(argv_of(frontend, kernel.connection_file), env)
    try:
        return start_prompt(term, frontend)
    finally:
        term.kill()


def measure_starts(
    frontends: list[str], kernel: h.Kernel, env: dict[str, str], n: int
) -> dict[str, dict[str, Any]]:
    """``n`` start-up samples of each frontend, interleaved (A B A B …) so that a
    burst of load on the machine does not land on one frontend only."""
    samples: dict[str, list[float]] = {fe: [] for fe in frontends}
    errors: dict[str, str] = {}
    for _ in range(n):
        for fe in frontends:
            if fe in errors:
                continue
            try:
                samples[fe].append(start_sample(fe, kernel, env) * MS)
            except BenchError as exc:
                errors[fe] = str(exc)
    out: dict[str, dict[str, Any]] = {}
    for fe in frontends:
        if fe in errors:
            out[fe] = {"error": errors[fe], "samples_ms": samples[fe]}
        else:
            out[fe] = {"samples_ms": samples[fe], "median_ms": h.median(samples[fe])}
    return out


def measure_idle(term: h.PtyTerm, seconds: float) -> dict[str, Any]:
    before = h.cpu_seconds(term.pid)
    time.sleep(seconds)
    after = h.cpu_seconds(term.pid)
    if before is None or after is None or not term.alive():
        raise BenchError(f"the frontend ended during the idle measurement ({term.exit_text()})")
    scale = 10.0 / seconds
    return {
        "seconds": seconds,
        "cpu_s_per_10s": (after[1] - before[1]) * scale,  # schedstat, ns resolution
        "cpu_ticks_s_per_10s": (after[0] - before[0]) * scale,  # utime+stime, 10 ms ticks
    }


def measure_latency(term: h.PtyTerm, kernel: h.Kernel, cells: int, seed: int) -> dict[str, Any]:
    """Per cell: code, stdout and result markers; from broadcast to screen."""
    rng = random.Random(seed)
    kinds = {"code": "execute_input", "stdout": "stream", "result": "execute_result"}
    screen: dict[str, list[float]] = {k: [] for k in kinds}
    pty: dict[str, list[float]] = {k: [] for k in kinds}
    floor: dict[str, list[float]] = {k: [] for k in kinds}
    missing = 0
    for i in range(cells):
        n = rng.randrange(1_000_000, 9_000_000) * 100 + i  # unique per cell
        markers = {"code": f"C{n}E", "stdout": f"S{2 * n}E", "result": f"R{3 * n}E"}
        # The code marker sits in a comment past the 40 characters a status line shows.
        code = f'print("S%dE" % ({n} * 2)); "R%dE" % ({n} * 3)  # C{n}E'
        ws = {k: term.watch_screen(lambda rows, m=m: m in rows) for k, m in markers.items()}
        wb = {k: term.watch_bytes(re.escape(m.encode())) for k, m in markers.items()}
        mark = kernel.sub.mark()
        msg_id, t0 = kernel.execute(code)
        term.wait([*ws.values(), *wb.values()], 3.0)
        kernel.wait_reply(msg_id, 10)
        kernel.wait_idle(msg_id, 10, mark)
        recs = [r for r in kernel.sub.since(mark) if r.parent == msg_id]
        for kind, mtype in kinds.items():
            rec = next(
                (
                    r
                    for r in recs
                    if r.msg_type == mtype and (kind != "stdout" or markers[kind] in r.text)
                ),
                None,
            )
            if rec is None:
                raise BenchError(f"the subscriber missed the {mtype} of a latency cell")
            floor[kind].append(rec.t - t0)
            if ws[kind].t is None:
                missing += 1
                screen[kind].append(float("inf"))
            else:
                screen[kind].append(ws[kind].t - rec.t)
            pty[kind].append(float("inf") if wb[kind].t is None else wb[kind].t - rec.t)
        term.unwatch(*ws.values(), *wb.values())
        if i == 2 and missing == 9:
            raise BenchError("nothing of the first 3 cells ever appeared on the screen")
        if not term.alive():
            raise BenchError(f"the frontend ended during the latency cells ({term.exit_text()})")
        time.sleep(rng.uniform(0.05, 0.25))
    pooled = [v for k in kinds for v in screen[k]]
    pooled_pty = [v for k in kinds for v in pty[k]]
    pooled_floor = [v for k in kinds for v in floor[k]]
    out: dict[str, Any] = {"cells": cells, "missing": missing}
    for name, values in (("screen", pooled), ("pty", pooled_pty), ("floor", pooled_floor)):
        out[f"{name}_p50_ms"] = h.percentile(values, 50) * MS
        out[f"{name}_p90_ms"] = h.percentile(values, 90) * MS
    for kind in kinds:
        out[f"screen_{kind}_p50_ms"] = h.percentile(screen[kind], 50) * MS
        out[f"floor_{kind}_p50_ms"] = h.percentile(floor[kind], 50) * MS
    return out


def check_lines(text: str, n: int) -> dict[str, Any]:
    """Are 0..n-1 all there, in order?  ``text`` is terminal text, ANSI-free.

    For a failure, ``example`` shows the text around the first value out of
    order, or the first missing value.
    """
    seen = bytearray(n)
    firsts: list[tuple[int, int]] = []  # (value, index of its piece)
    pieces = re.split(r"[\r\n]", text)
    for i, piece in enumerate(pieces):
        piece = piece.strip()
        if piece[:1] in ("│", "┆"):
            piece = piece[1:].strip()
        if piece.isdigit():
            v = int(piece)
            if v < n and not seen[v]:
                seen[v] = 1
                firsts.append((v, i))
    missing = n - len(firsts)
    descents = [(a, b) for a, b in itertools.pairwise(firsts) if b[0] < a[0]]
    notices = [line.strip() for line in text.splitlines() if "not shown" in line][:3]
    example = ""
    if descents:
        (a, _), (b, i) = descents[0]
        example = f"{b} after {a}: {pieces[max(0, i - 4) : i + 3]!r}"
    elif missing:
        first = seen.find(0)
        example = f"{first} missing (or not alone on its line)"
    return {
        "missing": missing,
        "out_of_order": len(descents),
        "all_in_order": missing == 0 and not descents,
        "notices": notices,
        "example": example,
    }


def screen_scrollback(raw: bytes) -> str:
    """Replay ``raw`` through pyte with unlimited scrollback; all the lines."""
    screen, stream = h._pyte_screen()
    stream.feed(raw)
    return "\n".join([*screen.scrolled, *(row.rstrip() for row in screen.display)])


def measure_flood(term: h.PtyTerm, kernel: h.Kernel, lines: int) -> dict[str, Any]:
    """`for i in range(N): print(i)` by the peer; last line on the pty vs kernel time."""
    term.emulate = False  # pyte is far slower than the frontends: keep it off the path
    last = lines - 1
    start = term.mark()
    w = term.watch_bytes(rb"(?<![0-9])%d(?![0-9])" % last)
    mark = kernel.sub.mark()
    msg_id, t0 = kernel.execute(f"for i in range({lines}): print(i)")
    idle = kernel.wait_idle(msg_id, 60 + lines / 5000, mark)
    kernel_s = idle.t - t0
    term.wait([w], max(30.0, 20 * kernel_s))
    term.wait_quiet(1.0, 15)
    recs = [r for r in kernel.sub.since(mark) if r.parent == msg_id and r.msg_type == "stream"]
    last_rec = next((r for r in recs if r.tail.endswith(f"\n{last}\n")), None)
    raw = bytes(term.raw[start:])
    check = check_lines(h.strip_ansi(raw, moves_break_lines=True).decode("utf-8", "replace"), lines)
    out: dict[str, Any] = {
        "lines": lines,
        "kernel_s": kernel_s,
        "stream_msgs": len(recs),
        "bytes": len(raw),
        "floor_ratio": (last_rec.t - t0) / kernel_s if last_rec else None,
        **check,
    }
    if w.t is None:
        out["screen_s"] = None
        out["ratio"] = None
        out["error"] = f"the last line never arrived ({term.exit_text()})"
    else:
        out["screen_s"] = w.t - t0
        out["ratio"] = (w.t - t0) / kernel_s
    return out


def pty_session(
    frontend: str, kernel: h.Kernel, env: dict[str, str], cfg: Config, only: set[str], seed: int
) -> dict[str, Any]:
    """One frontend process: idle CPU, then latency cells, then the flood."""
    res: dict[str, Any] = {}
    term = h.PtyTerm(argv_of(frontend, kernel.connection_file), env)
    try:
        start_prompt(term, frontend)
        term.wait_quiet(1.0, 5)
        time.sleep(1.0)
        steps = [
            ("idle", lambda: measure_idle(term, cfg.idle)),
            ("latency", lambda: measure_latency(term, kernel, cfg.cells, seed)),
            ("flood", lambda: measure_flood(term, kernel, cfg.flood)),
        ]
        for name, step in steps:
            if name not in only:
                continue
            if not term.alive():
                res[name] = {"error": f"{frontend} had ended ({term.exit_text()})"}
                continue
            log(f"  {frontend}: {name}")
            spy = profile(frontend, term.pid, f"{name}-{seed}")
            try:
                res[name] = step()
            except BenchError as exc:
                res[name] = failure(exc)
            finally:
                if spy:
                    spy.stop()
        if "flood" in res:
            res["flood"]["peak_rss_mb"] = h.vm_hwm_mb(term.pid)
        if "flood" in res and cfg.screen_check and "error" not in res["flood"]:
            log(f"  {frontend}: replaying the flood through pyte (scrollback check)")
            term.kill()
            text = screen_scrollback(bytes(term.raw))
            res["flood"]["scrollback"] = check_lines(text, cfg.flood)
    finally:
        term.kill()
    return res


def measure_keys(
    frontend: str, kernel: h.Kernel, env: dict[str, str], cfg: Config, home: Path, seed: int
) -> dict[str, Any]:
    """Type a key every 200 ms at the frontend's prompt during a big flood (tmux)."""
    pane = h.TmuxPane(argv_of(frontend, kernel.connection_file), env, home)
    msg_id, mark, spy = "", 0, None
    try:
        deadline = now() + 30
        while True:
            cap = pane.capture()
            if cap.dead:
                raise BenchError(f"{frontend} crashed ({pane.dead_status()}): {cap.lines[-5:]}")
            if ready("\n".join(cap.lines)):
                break
            if now() > deadline:
                raise BenchError(f"{frontend}: no prompt in tmux within 30 s")
            time.sleep(0.02)
        time.sleep(1.5)
        spy = profile(frontend, pane.pid, f"keys-{seed}")
        pids = {
            "frontend": pane.pid,
            "tmux": pane.server_pid,
            "kernel": kernel.pid,
            "benchmark": os.getpid(),
            "subscriber": kernel.sub.proc.pid,
        }
        cpu0 = {k: h.cpu_seconds(p) for k, p in pids.items()}
        n = cfg.big_flood
        last_line = str(n - 1)
        mark = kernel.sub.mark()
        msg_id, t0 = kernel.execute(f"for i in range({n}): print(i)")
        first = kernel.sub.wait(lambda r: r.parent == msg_id and r.msg_type == "stream", 30, mark)
        if first is None:
            raise BenchError("the flood never started")
        typed = ""
        keys: list[dict[str, Any]] = []
        echoed = 0  # keys[:echoed] have been seen
        next_key = first.t + 0.2
        kernel_done: float | None = None
        drawn: float | None = None
        typing = True
        last_re = LAST_LINE_RE(last_line)
        writes: deque[tuple[float, int]] = deque()
        before: tuple[float, int] | None = None
        rtts: list[float] = []  # how long tmux took to answer a capture (the resolution)
        stop_at = now() + 120
        while now() < stop_at:
            t = now()
            if typing and t >= next_key:
                ch = KEYS[len(keys) % len(KEYS)]
                typed += ch
                keys.append({"t": pane.send_text(ch), "echo": None, "intact": False})
                next_key += 0.2
            t_ask = now()
            cap = pane.capture()
            rtts.append(cap.t - t_ask)
            if cap.dead:
                raise BenchError(f"{frontend} crashed during the flood ({pane.dead_status()})")
            if drawn is None and kernel_done is not None:
                # Drawn: the last line is on screen, or the frontend has (nearly)
                # stopped writing: < 4 KB in 0.3 s (echoing a key writes a little).
                writes.append((cap.t, h.io_wchar(pane.pid) or 0))
                while writes and writes[0][0] < cap.t - 0.3:
                    before = writes.popleft()
                if last_re.search("\n".join(cap.lines)):
                    drawn = cap.t
                elif before and cap.t - kernel_done > 0.3 and writes[-1][1] - before[1] < 4096:
                    drawn = before[0]
            if kernel_done is None:
                rec = kernel.sub.wait(
                    lambda r: r.parent == msg_id and r.msg_type == "status" and r.state == "idle",
                    0,
                    mark,
                )
                kernel_done = rec.t if rec else None
            # Echo: the character left of the cursor is one of the pending keys.
            left = cap.cursor_line[: cap.x]
            if left and echoed < len(keys):
                j = max(
                    (j for j in range(echoed + 1, len(keys) + 1) if typed[j - 1] == left[-1]),
                    default=0,
                )
                if j:
                    intact = re.fullmatch(
                        r"In \[\d+\]: " + re.escape(typed[:j]), cap.cursor_line.rstrip()
                    )
                    for k in range(echoed, j):
                        keys[k]["echo"] = cap.t
                        keys[k]["intact"] = bool(intact)
                    echoed = j
            if typing and (len(keys) >= cfg.max_keys or drawn is not None):
                typing = False
                stop_at = min(stop_at, now() + 5)  # let the last keys echo
            if not typing and echoed == len(keys):
                break
            time.sleep(0.004)
        lat = [(k["echo"] - k["t"]) if k["echo"] else float("inf") for k in keys]
        cpu1 = {k: h.cpu_seconds(p) for k, p in pids.items()}
        cpu = {
            k: round(cpu1[k][1] - cpu0[k][1], 2)
            for k in pids
            if cpu0[k] is not None and cpu1[k] is not None
        }
        return {
            "cpu_s": cpu,  # CPU seconds of each process over the flood and the typing
            "lines": n,
            "keys": len(keys),
            "echoed": echoed,
            "intact": sum(k["intact"] for k in keys),
            "intact_pct": 100.0 * sum(k["intact"] for k in keys) / len(keys) if keys else None,
            "p50_ms": h.percentile(lat, 50) * MS if keys else None,
            "p90_ms": h.percentile(lat, 90) * MS if keys else None,
            "kernel_s": (kernel_done - t0) if kernel_done else None,
            "drawn_s": (drawn - t0) if drawn else None,
            "latencies_ms": [round(x * MS, 1) if x != float("inf") else None for x in lat],
            "intact_each": [k["intact"] for k in keys],
            "capture_rtt_p50_ms": h.percentile(rtts, 50) * MS if rtts else None,
            "capture_rtt_p90_ms": h.percentile(rtts, 90) * MS if rtts else None,
            "peak_rss_mb": h.vm_hwm_mb(pane.pid),
        }
    finally:
        if spy:
            spy.stop()
        pane.kill()
        if msg_id:  # the flood goes on in the kernel even if the frontend is gone
            with contextlib.suppress(BenchError):
                kernel.wait_idle(msg_id, 120, mark)


# ------------------------------------------------------------------- report

TARGETS = {  # issue 3: what ipymirror must reach
    "lat50": (10.0, "≤ 10 ms"),
    "lat90": (20.0, "≤ 20 ms"),
    "flood": (1.15, "≤ 1.15"),
    "keys90": (50.0, "≤ 50 ms"),
    "intact": (90.0, "≥ 90 %"),
    "rss": (80.0, "≤ 80 MB"),
    "idle": (0.02, "≤ 0.02 s"),
    "start": (250.0, "≤ 250 ms"),
}


def collect(
    results: dict[str, list[dict[str, Any]]], prompt: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Medians over runs of each row, per frontend, plus the floor.

    ``prompt``: the key test of a bare prompt_toolkit prompt (the floor of row 3).
    """

    def med(fe: str, scen: str, key: str) -> float | None:
        vals = []
        for run in results.get(fe, []):
            v = (run.get(scen) or {}).get(key)
            if isinstance(v, (int, float)):
                vals.append(v)
        return h.median(vals)

    def errors(fe: str, scen: str) -> str | None:
        errs = [(run.get(scen) or {}).get("error") for run in results.get(fe, [])]
        errs = [e for e in errs if e]
        return errs[0] if errs else None

    rows: dict[str, dict[str, Any]] = {}
    for fe in results:
        r: dict[str, Any] = {}
        r["lat50"] = med(fe, "latency", "screen_p50_ms")
        r["lat90"] = med(fe, "latency", "screen_p90_ms")
        r["pty50"] = med(fe, "latency", "pty_p50_ms")
        r["pty90"] = med(fe, "latency", "pty_p90_ms")
        r["lat_missing"] = sum((run.get("latency") or {}).get("missing", 0) for run in results[fe])
        r["flood"] = med(fe, "flood", "ratio")
        floods = [run["flood"] for run in results[fe] if "missing" in (run.get("flood") or {})]
        r["flood_all"] = all(f.get("all_in_order") for f in floods) if floods else None
        r["flood_missing"] = max((f.get("missing", 0) for f in floods), default=None)
        r["flood_disorder"] = max((f.get("out_of_order", 0) for f in floods), default=None)
        r["flood_notices"] = sorted({n for f in floods for n in f.get("notices", [])})
        sb = [f["scrollback"] for f in floods if "scrollback" in f]
        r["scrollback_all"] = all(s["all_in_order"] for s in sb) if sb else None
        r["scrollback_missing"] = max((s["missing"] for s in sb), default=None)
        r["keys90"] = med(fe, "keys", "p90_ms")
        r["keys50"] = med(fe, "keys", "p50_ms")
        r["intact"] = med(fe, "keys", "intact_pct")
        r["keys_n"] = med(fe, "keys", "keys")
        rss = []
        for run in results[fe]:
            vals = [(run.get(s) or {}).get("peak_rss_mb") for s in ("flood", "keys")]
            vals = [v for v in vals if v is not None]
            if vals:
                rss.append(max(vals))
        r["rss"] = h.median(rss)
        r["rss_flood"] = med(fe, "flood", "peak_rss_mb")
        r["rss_keys"] = med(fe, "keys", "peak_rss_mb")
        r["idle"] = med(fe, "idle", "cpu_s_per_10s")
        r["idle_ticks"] = med(fe, "idle", "cpu_ticks_s_per_10s")
        starts = [s for run in results[fe] for s in (run.get("start") or {}).get("samples_ms", [])]
        r["start"] = h.median(starts)
        r["start_min"] = min(starts) if starts else None
        r["errors"] = {s: errors(fe, s) for s in SCENARIOS if errors(fe, s)}
        rows[fe] = r
    floor: dict[str, Any] = {}
    lat = [run.get("latency") or {} for fe in results for run in results[fe]]
    floor["lat50"] = h.median(x.get("floor_p50_ms") for x in lat)
    floor["lat90"] = h.median(x.get("floor_p90_ms") for x in lat)
    fl = [run.get("flood") or {} for fe in results for run in results[fe]]
    floor["flood"] = h.median(x.get("floor_ratio") for x in fl)
    keys = [run.get("keys") or {} for run in prompt]
    floor["keys90"] = h.median(k.get("p90_ms") for k in keys)
    floor["intact"] = h.median(k.get("intact_pct") for k in keys)
    floor["keys_errors"] = [k["error"] for k in keys if "error" in k]
    rows["floor"] = floor
    return rows


def fmt(v: float | None, unit: str = "", digits: int = 1) -> str:
    if v is None:
        return "—"
    if v == float("inf"):
        return "never"
    if unit == "ms" and v >= 1000:
        return f"{v / 1000:.2f} s"
    return f"{v:.{digits}f}{(' ' + unit) if unit else ''}"


def table(rows: dict[str, dict[str, Any]], cfg: Config) -> str:
    jc, im, fl = rows.get("jupyter_console", {}), rows.get("ipymirror", {}), rows.get("floor", {})

    def ratio(key: str) -> str:
        a, b = im.get(key), jc.get(key)
        if a is None or b is None or b == 0 or float("inf") in (a, b):
            return "—"
        return f"{a / b:.2f}"

    def met(key: str, extra: bool = True) -> str:
        v = im.get(key)
        if v is None:
            return "not measured"
        limit, _ = TARGETS[key]
        ok = v >= limit if key == "intact" else v <= limit
        return "met" if ok and extra else "NOT met"

    def cell(fe: dict[str, Any], key: str, unit: str, digits: int, scen: str) -> str:
        err = fe.get("errors", {}).get(scen)
        v = fe.get(key)
        if err and v is None:
            return "FAILED (see below)"
        return fmt(v, unit, digits)

    def lines_cell(fe: dict[str, Any]) -> str:
        if fe.get("flood_all") is None:
            return "—"
        if fe["flood_all"]:
            text = "all, in order"
        else:
            text = f"{fe['flood_missing']:,} missing/garbled, {fe['flood_disorder']:,} out of order"
        if fe.get("scrollback_all") is not None:
            text += "; scrollback " + (
                "ok" if fe["scrollback_all"] else f"{fe['scrollback_missing']:,} missing/garbled"
            )
        return text

    k = cfg.big_flood
    header = ["measure", "floor", "jupyter_console", "ipymirror",
              "ipymirror ÷ jc", "target", "ipymirror"]  # fmt: skip
    body = [
        ["peer cell code/stdout/result on screen, p50", fmt(fl.get("lat50"), "ms", 1),
         cell(jc, "lat50", "ms", 1, "latency"), cell(im, "lat50", "ms", 1, "latency"),
         ratio("lat50"), TARGETS["lat50"][1], met("lat50")],
        ["same, p90", fmt(fl.get("lat90"), "ms", 1), cell(jc, "lat90", "ms", 1, "latency"),
         cell(im, "lat90", "ms", 1, "latency"), ratio("lat90"), TARGETS["lat90"][1], met("lat90")],
        [f"{cfg.flood:,}-line flood: last line on pty ÷ kernel time", fmt(fl.get("flood"), "", 2),
         cell(jc, "flood", "", 2, "flood"), cell(im, "flood", "", 2, "flood"), ratio("flood"),
         TARGETS["flood"][1], met("flood", bool(im.get("flood_all")))],
        ["  lines 0..N-1 in the output", "all", lines_cell(jc), lines_cell(im), "", "all",
         "not measured" if im.get("flood_all") is None else
         "met" if im.get("flood_all") and im.get("scrollback_all") is not False else "NOT met"],
        [f"{k:,}-line flood: key echo p90 (key every 200 ms)", fmt(fl.get("keys90"), "ms", 0),
         cell(jc, "keys90", "ms", 0, "keys"), cell(im, "keys90", "ms", 0, "keys"),
         ratio("keys90"), TARGETS["keys90"][1], met("keys90")],
        ["  keys echoed on an intact prompt line", fmt(fl.get("intact"), "%", 0),
         fmt(jc.get("intact"), "%", 0),
         fmt(im.get("intact"), "%", 0), "", TARGETS["intact"][1], met("intact")],
        ["peak RSS during the floods", "—", cell(jc, "rss", "MB", 1, "flood"),
         cell(im, "rss", "MB", 1, "flood"), ratio("rss"), TARGETS["rss"][1], met("rss")],
        ["CPU while idle, per 10 s", "0", cell(jc, "idle", "s", 3, "idle"),
         cell(im, "idle", "s", 3, "idle"), ratio("idle"), TARGETS["idle"][1], met("idle")],
        ["start to ready prompt (--existing)", "—", cell(jc, "start", "ms", 0, "start"),
         cell(im, "start", "ms", 0, "start"), ratio("start"), TARGETS["start"][1], met("start")],
    ]  # fmt: skip
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    out = ["| " + " | ".join(h_.ljust(w) for h_, w in zip(header, widths, strict=True)) + " |"]
    foot = (
        "floor: latency and flood rows, the plain IOPub subscriber; key rows, a bare"
        " prompt_toolkit prompt in the same tmux setup, typed at during the same flood"
    )
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in body:
        out.append(
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        )
    return "\n".join([*out, "", foot])


def details(rows: dict[str, dict[str, Any]], results: dict[str, list[dict[str, Any]]]) -> str:
    out = []
    for fe in FRONTENDS:
        if fe not in rows:
            continue
        r = rows[fe]
        out.append(
            f"{fe}: latency as bytes on the pty p50/p90 {fmt(r['pty50'], 'ms')} /"
            f" {fmt(r['pty90'], 'ms')}; markers never shown: {r['lat_missing']};"
            f" key echo p50 {fmt(r['keys50'], 'ms', 0)} over {fmt(r['keys_n'], '', 0)} keys;"
            f" peak RSS small flood {fmt(r['rss_flood'], 'MB')}, big flood"
            f" {fmt(r['rss_keys'], 'MB')}; idle CPU in 10 ms ticks {fmt(r['idle_ticks'], 's', 2)};"
            f" start fastest {fmt(r['start_min'], 'ms', 0)}"
        )
        if r["flood_notices"]:
            out.append(f"  notices in the flood output: {r['flood_notices']}")
        for i, run in enumerate(results[fe]):
            fl = run.get("flood") or {}
            for where, check in (("pty bytes", fl), ("scrollback", fl.get("scrollback") or {})):
                if check.get("example"):
                    out.append(f"  run {i + 1}, flood lines ({where}): {check['example']}")
        for i, run in enumerate(results[fe]):
            fl = run.get("flood") or {}
            ks = run.get("keys") or {}
            la = run.get("latency") or {}
            lat = [fmt(la.get(f"screen_{k}_p50_ms"), "ms") for k in ("code", "stdout", "result")]
            out.append(
                f"  run {i + 1} (load {fmt(run.get('load1'), '', 1)}): latency p50/p90"
                f" {fmt(la.get('screen_p50_ms'), 'ms')}/{fmt(la.get('screen_p90_ms'), 'ms')}"
                f" (p50 code {lat[0]}, stdout {lat[1]}, result {lat[2]});"
                f" flood {fmt(fl.get('screen_s'), 's', 2)} vs kernel"
                f" {fmt(fl.get('kernel_s'), 's', 2)}"
                f" ({fl.get('stream_msgs', '?')} stream msgs, {fl.get('bytes', 0) / 1e6:.1f} MB);"
            )
            out.append(
                f"    big flood: drawn {fmt(ks.get('drawn_s'), 's', 2)} vs kernel"
                f" {fmt(ks.get('kernel_s'), 's', 2)}; keys {ks.get('echoed', '?')}/"
                f"{ks.get('keys', '?')} echoed, {ks.get('intact', '?')} intact, p50/p90"
                f" {fmt(ks.get('p50_ms'), 'ms', 0)}/{fmt(ks.get('p90_ms'), 'ms', 0)};"
                f" CPU s {ks.get('cpu_s', {})}"
            )
        for scen, err in r["errors"].items():
            out.append(f"  {scen} FAILED: {err}")
    if "prompt" in results:
        for i, run in enumerate(results["prompt"]):
            ks = run.get("keys") or {}
            out.append(
                f"floor of the key test, run {i + 1} (a bare prompt_toolkit prompt in tmux, typed"
                f" at during the same flood; it draws nothing of it): p50/p90"
                f" {fmt(ks.get('p50_ms'), 'ms', 0)}/{fmt(ks.get('p90_ms'), 'ms', 0)},"
                f" {ks.get('keys', '?')} keys; CPU s {ks.get('cpu_s', {})}"
                + (f"; FAILED: {ks['error']}" if "error" in ks else "")
            )
    if "jupyter-console" in results:
        runs = results["jupyter-console"]
        s = [x for run in runs for x in (run.get("start") or {}).get("samples_ms", [])]
        out.append(
            f"jupyter-console (the rival without the `jupyter` launcher): start median"
            f" {fmt(h.median(s), 'ms', 0)}, fastest {fmt(min(s) if s else None, 'ms', 0)}"
        )
    return "\n".join(out)


def machine() -> dict[str, str]:
    import importlib.metadata as md

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for pkg in ("ipykernel", "jupyter_client", "jupyter_console", "ipython", "prompt_toolkit",
                "pyzmq", "pyte", "ptyprocess", "rich", "pygments"):  # fmt: skip
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "-"
    tmux = "-"
    with contextlib.suppress(Exception):
        import subprocess

        tmux = subprocess.run(
            ["tmux", "-V"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
    sys.path.insert(0, str(h.REPO_ROOT))
    try:
        import ipymirror

        versions["ipymirror"] = ipymirror.__version__
    except Exception:
        versions["ipymirror"] = "?"
    git = "?"
    with contextlib.suppress(Exception):
        import subprocess

        git = subprocess.run(["git", "-C", str(h.REPO_ROOT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=5).stdout.strip()  # fmt: skip
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "tmux": tmux,
        "git": git,
        **versions,
    }


# --------------------------------------------------------------------- main


class Deadline(BaseException):
    pass


def _deadline(signum: int, frame: Any) -> None:
    raise Deadline()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small floods, fewer cells, one run")
    ap.add_argument("--runs", type=int, help="runs per frontend (medians over them)")
    ap.add_argument("--cells", type=int, help="latency cells per run")
    ap.add_argument("--flood", type=int, help="lines of the screen-checked flood")
    ap.add_argument("--big-flood", type=int, help="lines of the flood typed over")
    ap.add_argument("--only", help=f"comma list of scenarios ({','.join(SCENARIOS)})")
    ap.add_argument("--frontends", default=",".join(FRONTENDS), help="comma list")
    ap.add_argument(
        "--no-screen-check", action="store_true", help="skip the pyte scrollback replay"
    )
    ap.add_argument("--json", metavar="PATH", help="also write every raw result as JSON")
    ap.add_argument("--time-limit", type=float, help="give up after this many seconds")
    ap.add_argument(
        "--py-spy",
        metavar="DIR",
        help="profile ipymirror in each scenario "
        "(py-spy raw stacks in DIR, summary printed); slows it down a little",
    )
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    for name in ("runs", "cells", "flood", "big_flood"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    if args.no_screen_check:
        cfg.screen_check = False
    only = set(SCENARIOS if not args.only else args.only.split(","))
    global PROFILE_DIR
    if args.py_spy:
        PROFILE_DIR = Path(args.py_spy).resolve()
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    frontends = [f for f in args.frontends.split(",") if f]
    bad = (only - set(SCENARIOS)) | (set(frontends) - set(FRONTENDS))
    if bad:
        ap.error(f"unknown: {', '.join(sorted(bad))}")
    try:
        import ptyprocess  # noqa: F401
        import pyte  # noqa: F401

        h.jupyter_command()
        if "keys" in only and not h.shutil.which("tmux"):
            raise BenchError("tmux is not installed (apt-get install tmux)")
    except (ImportError, BenchError) as exc:
        hint = "install: pip install -e '.[bench]' pyte  (and tmux from the OS)"
        print(f"benchmarks: missing requirement: {exc}\n{hint}", file=sys.stderr)
        return 2

    limit = args.time_limit or (300 if args.quick else 840)
    signal.signal(signal.SIGALRM, _deadline)
    signal.signal(signal.SIGTERM, _deadline)
    signal.setitimer(signal.ITIMER_REAL, limit)
    t_begin = now()
    results: dict[str, list[dict[str, Any]]] = {fe: [] for fe in frontends}
    info = machine()
    aborted = ""
    try:
        home = h.workdir()
        env = h.bench_env(home)
        log(f"starting an ipykernel on 127.0.0.1 ({home})")
        kernel = h.Kernel(home, env)
        if "start" in only:  # warm caches (imports, IPython profile dir) before timing
            for fe in frontends:
                with contextlib.suppress(BenchError):
                    start_sample(fe, kernel, env)
        starters = [*frontends, *(["jupyter-console"] if "jupyter_console" in frontends else [])]
        results.update({fe: [] for fe in starters if fe not in results})
        for run in range(cfg.runs):
            order = frontends if run % 2 == 0 else frontends[::-1]
            runs = {fe: {} for fe in starters}
            for fe in starters:
                results[fe].append(runs[fe])
            if "start" in only:
                log(f"run {run + 1}/{cfg.runs}: start-up, interleaved")
                for fe, sample in measure_starts(starters, kernel, env, cfg.starts).items():
                    runs[fe]["start"] = sample
            for fe in order:
                res = runs[fe]
                log(f"run {run + 1}/{cfg.runs}: {fe}")
                if not kernel.alive():
                    raise BenchError("the kernel died")
                if only & {"idle", "latency", "flood"}:
                    try:
                        res.update(pty_session(fe, kernel, env, cfg, only, seed=run + 1))
                    except BenchError as exc:
                        for scen in ("idle", "latency", "flood"):
                            if scen in only:
                                res.setdefault(scen, failure(exc))
                if "keys" in only:
                    log(f"  {fe}: {cfg.big_flood:,}-line flood with keys (tmux)")
                    try:
                        res["keys"] = measure_keys(fe, kernel, env, cfg, home, run + 1)
                    except BenchError as exc:
                        res["keys"] = failure(exc)
                res["load1"] = os.getloadavg()[0]  # how busy the machine was (all processes)
            if "keys" in only:  # the floor: a bare prompt, typed at during the same flood
                log(f"  floor: bare prompt_toolkit prompt, {cfg.big_flood:,}-line flood with keys")
                try:
                    floor = {"keys": measure_keys("prompt", kernel, env, cfg, home, run + 1)}
                except BenchError as exc:
                    floor = {"keys": failure(exc)}
                results.setdefault("prompt", []).append(floor)
    except Deadline:
        aborted = f"stopped after {limit:g} s (--time-limit); partial results"
    except BenchError as exc:
        aborted = f"aborted: {exc}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        log("stopping every process started here")
        h.cleanup()

    rows = collect({k: v for k, v in results.items() if k in FRONTENDS}, results.get("prompt", []))
    print()
    mode = "quick" if args.quick else "full"
    print(
        f"ipymirror benchmark — {info['date']} — {mode}, {cfg.runs} run(s), medians over runs;"
        f" {now() - t_begin:.0f} s"
    )
    print(
        f"machine: {info['nproc']} CPUs, {info['cpu']}, load {info['load']} (at start);"
        f" Python {info['python']}; {info['tmux']}; ipymirror {info['ipymirror']} ({info['git']})"
    )
    pkgs = ("ipykernel", "jupyter_client", "jupyter_console", "ipython", "prompt_toolkit", "pyzmq")
    print("versions: " + ", ".join(f"{k} {info[k]}" for k in (*pkgs, "pyte")))
    print()
    print(table(rows, cfg))
    print()
    print(details(rows, results))
    if PROFILE_DIR is not None:
        print("\nprofiles (py-spy, ipymirror):")
        for path in sorted(PROFILE_DIR.glob("*.txt")):
            print(h.summarize_profile(path))
    if aborted:
        print(f"\n{aborted}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": info, "config": cfg.__dict__, "results": results, "rows": rows},
            indent=1, default=str))  # fmt: skip
    return 1 if aborted else 0


if __name__ == "__main__":
    sys.exit(main())
