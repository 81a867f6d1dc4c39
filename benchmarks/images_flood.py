"""A peer floods 200 plots; does your prompt still echo keys fast? (issue 11)

    python benchmarks/images_flood.py                 # sixel, 200 plots, a key every 50 ms
    python benchmarks/images_flood.py --images blocks --count 100
    python benchmarks/images_flood.py --big 20       # one 20 MB PNG instead (noise, 2600x2600)

Starts an ipykernel on 127.0.0.1 (Jupyter/IPython dirs in a temporary
directory), ``ipymirror --existing`` on a real pty (100x40), and a peer that
runs one cell drawing ``--count`` distinct matplotlib figures (640x480).
While they are drawn, a key is typed every ``--every`` ms; each key's echo
time is from writing it to the pty until the prompt line on the emulated
screen (pyte) shows it.  Image payloads (DCS/APC/OSC strings) are cut out of
the stream before pyte sees it: pyte draws no pixels, and the point is the
prompt.  Prints p50/p90/max echo and the time until the last plot arrived;
exit status 1 if p90 >= 100 ms.  Bounded: ends everything by --time-limit.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_STRINGS = re.compile(rb"\x1b[P_\]].*?(?:\x1b\\|\x07)", re.S)
_OPEN = re.compile(rb"\x1b[P_\]]")

FLOOD = """\
import numpy as np, matplotlib
matplotlib.use('module://matplotlib_inline.backend_inline')
import matplotlib.pyplot as plt
from IPython.display import display
rng = np.random.default_rng(0)
for i in range({count}):
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    ax.plot(rng.standard_normal(200).cumsum(), linewidth=2)
    ax.set_title(f'plot {{i}}')
    display(fig)
    plt.close(fig)
print('flood-' + 'done')
"""

BIG = """\
import io, os
from IPython.display import display, Image
from PIL import Image as P
side = int(({mb} * 2**20 / 3) ** 0.5)
im = P.frombytes('RGB', (side, side), os.urandom(side * side * 3))
buf = io.BytesIO(); im.save(buf, 'PNG', compress_level=1)
print(f'png of {{len(buf.getvalue()) / 2**20:.1f}} MB, {{side}}x{{side}}', flush=True)
display(Image(buf.getvalue()))
print('flood-' + 'done')
"""


class Screen:
    """The pty's output: raw bytes kept, text (payloads cut out) fed to pyte."""

    def __init__(self, fd: int, cols: int, rows: int) -> None:
        import pyte

        self.fd = fd
        self.screen = pyte.Screen(cols, rows)
        self.screen.write_process_input = lambda data: os.write(fd, data.encode())
        self.stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        self.pending = b""
        self.cond = threading.Condition()
        self.eof = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                if not select.select([self.fd], [], [], 1.0)[0]:
                    continue
                data = os.read(self.fd, 1 << 16)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.eof = True
                    self.cond.notify_all()
                    return
                self.raw += data
                buf = _STRINGS.sub(b"", self.pending + data)
                m = _OPEN.search(buf)
                buf, self.pending = (buf[: m.start()], buf[m.start() :]) if m else (buf, b"")
                self.stream.feed(buf)
                self.cond.notify_all()

    def wait(self, pred, timeout: float) -> float | None:
        """Wait until ``pred()`` (called under the lock); the time it became true."""
        deadline = time.perf_counter() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.perf_counter()
                if left <= 0 or self.eof:
                    return None
                self.cond.wait(left)
            return time.perf_counter()

    def cursor_line(self) -> str:
        return self.screen.display[self.screen.cursor.y].rstrip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    protocols = ("sixel", "kitty", "iterm", "blocks", "off")
    ap.add_argument("--images", default="sixel", choices=protocols)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--every", type=float, default=50.0, help="ms between keys")
    ap.add_argument("--time-limit", type=float, default=150.0)
    ap.add_argument("--big", type=float, metavar="MB", help="one PNG of MB megabytes instead")
    args = ap.parse_args()

    import ptyprocess
    from jupyter_client import KernelManager
    from jupyter_client.session import new_id

    tmp = Path(tempfile.mkdtemp(prefix="ipymirror-images-bench-"))
    for name in ("runtime", "data", "config", "ipython"):
        (tmp / name).mkdir()
    os.environ.update(
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        IPYTHONDIR=str(tmp / "ipython"),
    )
    km = KernelManager(ip="127.0.0.1", connection_file=str(tmp / "runtime" / "kernel-bench.json"))
    km.start_kernel()
    term = None
    peer = None
    try:
        peer = km.client()
        peer.session.session = new_id()
        peer.session.username = "peer"
        # no IOPub for the peer: decoding 20 MB messages here would stall this measuring process
        peer.start_channels(iopub=False)
        peer.wait_for_ready(timeout=60)
        peer.execute("import matplotlib.pyplot, numpy", silent=True)  # warm: font cache
        env = dict(
            os.environ,
            TERM="xterm-256color",
            PYTHONPATH=str(REPO),
            PROMPT_TOOLKIT_NO_CPR="1",
        )
        argv = [sys.executable, "-m", "ipymirror", "--existing", km.connection_file]
        argv += ["--name", "me", "--images", args.images]
        term = ptyprocess.PtyProcess.spawn(argv, env=env, dimensions=(40, 100))
        screen = Screen(term.fd, 100, 40)
        at_prompt = re.compile(r"^In \[\d+\]: ?$")
        if screen.wait(lambda: at_prompt.match(screen.cursor_line()), 60) is None:
            print("the console never prompted", file=sys.stderr)
            return 1
        start = time.perf_counter()
        peer.execute(BIG.format(mb=args.big) if args.big else FLOOD.format(count=args.count))
        deadline = start + args.time_limit
        typed = ""
        echoes: list[float] = []
        missed = 0
        done_at = None
        keys = "abcdefghijklmnopqrstuvwxyz"
        # typing until the last plot is drawn, then 10 more keys
        while time.perf_counter() < deadline:
            if done_at is None and b"flood-done" in screen.raw:
                done_at = time.perf_counter() - start
                stop_after = len(echoes) + 10
            if done_at is not None and len(echoes) >= stop_after:
                break
            if len(typed) >= 60:  # keep the line short: clear it (Ctrl-U) and go on
                os.write(term.fd, b"\x15")
                screen.wait(lambda: at_prompt.match(screen.cursor_line()), 5)
                typed = ""
            ch = keys[len(typed) % len(keys)]
            typed += ch
            want = typed
            t0 = time.perf_counter()
            os.write(term.fd, ch.encode())
            t1 = screen.wait(lambda w=want: screen.cursor_line().endswith(w), 5)
            if t1 is None:
                missed += 1
            else:
                echoes.append(t1 - t0)
            time.sleep(max(0.0, args.every / 1000 - (time.perf_counter() - t0)))
        images = {
            "sixel": rb"\x1bP0;0;0q",
            "kitty": rb"\x1b_Ga=T",
            "iterm": rb"\x1b]1337;File=",
            "blocks": b"\xe2\x96\x80",
            "off": rb"\[image/png \d+",
        }[args.images]
        drawn = len(re.findall(images, screen.raw)) if args.images != "blocks" else None
        placeholders = len(re.findall(rb"\[image/png \d+", screen.raw))
        ms = sorted(e * 1000 for e in echoes)
        if not ms:
            print("no key echoed", file=sys.stderr)
            return 1
        p50 = statistics.median(ms)
        p90, p99 = ms[int(0.9 * (len(ms) - 1))], ms[int(0.99 * (len(ms) - 1))]
        if args.big:
            size = re.search(rb"png of [0-9.]+ MB, \d+x\d+", screen.raw)
            print(f"images: {args.images}, one {size.group().decode() if size else '?'}")
        else:
            print(f"images: {args.images}, {args.count} plots of 640x480 from a peer")
        print(f"last plot on screen after {done_at:.1f} s" if done_at else "flood not done")
        if drawn is not None:
            print(f"drawn with {args.images}: {drawn}; as placeholders: {placeholders}")
        print(
            f"key echo over {len(ms)} keys: p50 {p50:.0f} ms, p90 {p90:.0f} ms, "
            f"p99 {p99:.0f} ms, max {ms[-1]:.0f} ms; missed {missed}"
        )
        print(f"raw output {len(screen.raw) / 2**20:.1f} MB")
        return 0 if p90 < 100 and missed == 0 and done_at else 1
    finally:
        if term is not None:
            term.close(force=True)
        if peer is not None:
            peer.stop_channels()
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    sys.exit(main())
