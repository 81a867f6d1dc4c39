"""A real terminal that draws sixel: a peer's plot in xterm (-ti vt340) under Xvfb.

pyte cannot draw pixels, so this is the check that the sixel bytes make a
picture on a real terminal's screen, in the right place, with the prompt
still working below it.  xterm logs what it receives (``-l``), which is how
the test knows when the console is up; the screenshot (ImageMagick
``import``) is then searched for the plot's line colour.

Needs Debian's xterm, xvfb and imagemagick (installed by .ci/run).  Set
``IPYMIRROR_SCREENSHOT_DIR=docs`` to keep the screenshot (docs/guide.md shows it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image
from terminal import REPO_ROOT, _descendants, _signal_all, _wait_pids
from test_plots import BLUE, PLOT

ROWS, COLS = 36, 100
DOC_PLOT = (  # the screenshot in docs/guide.md: something a peer would plot
    "import numpy as np, matplotlib\n"
    "matplotlib.use('module://matplotlib_inline.backend_inline')\n"
    "import matplotlib.pyplot as plt\n"
    "t = np.linspace(0, 4 * np.pi, 400)\n"
    "fig, ax = plt.subplots(figsize=(5, 2.6), dpi=80)\n"
    "ax.plot(t, np.sin(t), linewidth=3, label='sin')\n"
    "ax.plot(t, np.cos(t) * np.exp(-t / 8), linewidth=3, label='damped cos')\n"
    "ax.legend(); ax.set_title('loss, epoch by epoch'); plt.show()\n"
)


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    r, w = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(w)
    with os.fdopen(r) as f:
        number = f.readline().strip()  # written once the server accepts connections
    assert number, "Xvfb did not start"
    return proc, f":{number}"


def wait_log(log: Path, needle: bytes, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in (log.read_bytes() if log.exists() else b""):
        assert time.monotonic() < deadline, f"{needle!r} never reached xterm"
        time.sleep(0.05)  # a file written by another process: polled, bounded


def screenshot(display: str, out: Path) -> Image.Image:
    subprocess.run(
        ["import", "-display", display, "-window", "root", str(out)], check=True, timeout=30
    )
    return Image.open(out).convert("RGB")


def blue_box(im: Image.Image) -> tuple[int, tuple[int, int, int, int] | None]:
    """How many pixels have the plot's line colour, and their bounding box."""
    mask = im.point(lambda _: 0).convert("L")
    near = [
        (x, y)
        for y in range(0, im.height, 2)
        for x in range(0, im.width, 2)
        if all(abs(a - b) <= 30 for a, b in zip(im.getpixel((x, y)), BLUE, strict=True))
    ]
    del mask
    if not near:
        return 0, None
    xs, ys = [p[0] for p in near], [p[1] for p in near]
    return len(near), (min(xs), min(ys), max(xs), max(ys))


def test_a_peers_plot_in_xterm_sixel(kernel, peer, tmp_path):
    xvfb, display = start_xvfb()
    log = tmp_path / "xterm.log"
    env = dict(os.environ, DISPLAY=display, PYTHONPATH=str(REPO_ROOT))
    argv = [
        "xterm", "-ti", "vt340", "-xrm", "XTerm*numColorRegisters: 256",
        "-xrm", "XTerm*logInhibit: false", "-geometry", f"{COLS}x{ROWS}+0+0",
        "-l", "-lf", str(log),
        "-e", sys.executable, "-m", "ipymirror", "--existing", kernel.connection_file,
        "--name", "alice",
    ]  # fmt: skip
    xterm = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_log(log, b"In [")
        bob = peer(kernel, "bob")
        bob.run("print('hello from bob')")
        target = os.environ.get("IPYMIRROR_SCREENSHOT_DIR")
        bob.run(DOC_PLOT if target else PLOT)
        bob.run("print('after-' + 'the-plot')")
        wait_log(log, b"after-the-plot")
        assert b"\x1bP0;0;0q" in log.read_bytes()  # detected: sixel (xterm -ti vt340 says 4)
        shot = tmp_path / "xterm.png"
        deadline = time.monotonic() + 20
        while True:
            count, box = blue_box(screenshot(display, shot))
            if count > 150 or time.monotonic() > deadline:
                break
        assert count > 150, f"no plot on screen ({count} blue pixels); see {shot}"
        assert box is not None
        # at most --image-rows (20) rows of xterm's 13-pixel cells, right of the gutter
        assert box[3] - box[1] <= 20 * 13 and box[0] > 6
        if target:
            im = Image.open(shot)
            im.crop((0, 0, min(im.width, COLS * 6 + 4), min(im.height, ROWS * 13 + 4))).save(
                Path(target) / "peer-plot-xterm.png"
            )
        shutil.copy(shot, tmp_path / "kept.png")
    finally:
        pids = [xterm.pid, *_descendants(xterm.pid)]
        _signal_all(pids, 15)
        _wait_pids(pids, 10)
        xterm.wait(10)
        xvfb.terminate()
        xvfb.wait(10)
