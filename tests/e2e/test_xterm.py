"""Real terminals draw a peer's plot: xterm -ti vt340 (sixel) and kitty, under Xvfb.

pyte cannot draw pixels, so this is the check that the bytes make a picture
on a real terminal's screen, in the right place.  Each terminal's input is
logged (xterm ``-l``; ``script`` under kitty), which is how the test knows
when the console is up and which protocol auto-detection chose; the
screenshot (ImageMagick ``import``) is then searched for the plot's line colour.

Needs Debian's xterm, kitty, xvfb and imagemagick (installed by .ci/run).  Set
``IPYMIRROR_SCREENSHOT_DIR=docs`` to keep xterm's screenshot (docs/guide.md shows it).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from terminal import REPO_ROOT, _descendants, _signal_all, _wait_pids

ORANGE = (255, 140, 0)  # the plots' line: no terminal palette has it (bob's label may be blue)
PLOT = (
    "import matplotlib\n"
    "matplotlib.use('module://matplotlib_inline.backend_inline')\n"
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(4, 3), dpi=80)\n"
    "ax.plot([0, 1, 2], [0, 2, 1], linewidth=8, color='#ff8c00')\n"
    "plt.show()\n"
)

ROWS, COLS = 36, 100
DOC_PLOT = (  # the screenshot in docs/guide.md: something a peer would plot
    "import numpy as np, matplotlib\n"
    "matplotlib.use('module://matplotlib_inline.backend_inline')\n"
    "import matplotlib.pyplot as plt\n"
    "t = np.linspace(0, 4 * np.pi, 400)\n"
    "fig, ax = plt.subplots(figsize=(5, 2.6), dpi=80)\n"
    "ax.plot(t, np.sin(t), linewidth=3, label='sin', color='#ff8c00')\n"
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


def line_box(im: Image.Image) -> tuple[int, tuple[int, int, int, int] | None]:
    """How many pixels have the plot's line colour, and their bounding box."""
    near = [
        (x, y)
        for y in range(0, im.height, 2)
        for x in range(0, im.width, 2)
        if all(abs(a - b) <= 30 for a, b in zip(im.getpixel((x, y)), ORANGE, strict=True))
    ]
    if not near:
        return 0, None
    xs, ys = [p[0] for p in near], [p[1] for p in near]
    return len(near), (min(xs), min(ys), max(xs), max(ys))


def xterm_argv(log: Path, command: list[str]) -> list[str]:
    """xterm as a VT340 (sixel, 256 colour registers), logging what it receives."""
    return [
        "xterm", "-ti", "vt340", "-xrm", "XTerm*numColorRegisters: 256",
        "-xrm", "XTerm*logInhibit: false", "-geometry", f"{COLS}x{ROWS}+0+0",
        "-l", "-lf", str(log), "-e", *command,
    ]  # fmt: skip


def kitty_argv(log: Path, command: list[str]) -> list[str]:
    """kitty (software OpenGL under Xvfb); ``script`` in between keeps a log of the bytes."""
    return [
        "kitty", "--config", "NONE", "-o", "font_size=10", "-o", "remember_window_size=no",
        "-o", "initial_window_width=900", "-o", "initial_window_height=720",
        "script", "-q", "-f", "-c", shlex.join(command), str(log),
    ]  # fmt: skip


TERMINALS = {
    # name: (command line, what its image escape starts with, cell height bound in pixels)
    "xterm": (xterm_argv, b"\x1bP0;0;0q", 13),  # xterm -ti vt340 answers attribute 4: sixel
    "kitty": (kitty_argv, b"\x1b_Ga=T,f=100", 20),  # KITTY_WINDOW_ID: kitty graphics
}


@pytest.mark.parametrize("name", sorted(TERMINALS))
def test_a_peers_plot_in_a_real_terminal(name, kernel, peer, tmp_path):
    make_argv, escape, cell_height = TERMINALS[name]
    xvfb, display = start_xvfb()
    log = tmp_path / f"{name}.log"
    env = dict(os.environ, DISPLAY=display, PYTHONPATH=str(REPO_ROOT), LIBGL_ALWAYS_SOFTWARE="1")
    env.pop("TMUX", None)
    env.pop("KITTY_WINDOW_ID", None)
    command = [sys.executable, "-m", "ipymirror", "--existing", kernel.connection_file]
    argv = make_argv(log, [*command, "--name", "alice"])
    term = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_log(log, b"In [")
        bob = peer(kernel, "bob")
        bob.run("print('hello from bob')")
        target = os.environ.get("IPYMIRROR_SCREENSHOT_DIR")
        bob.run(DOC_PLOT if target and name == "xterm" else PLOT)
        bob.run("print('after-' + 'the-plot')")
        wait_log(log, b"after-the-plot")
        assert escape in log.read_bytes()  # the protocol detected for this terminal
        shot = tmp_path / f"{name}.png"
        deadline = time.monotonic() + 30
        while True:  # the terminal draws when it likes: look until the plot is there
            count, box = line_box(screenshot(display, shot))
            if (count > 150 and box and box[3] - box[1] > 60) or time.monotonic() > deadline:
                break
        assert count > 150, f"no plot on screen ({count} pixels of its line); see {shot}"
        assert box is not None
        # at most --image-rows (20) rows of cells, right of the gutter
        assert 60 < box[3] - box[1] <= 20 * cell_height and box[0] > 6
        if target and name == "xterm":
            im = Image.open(shot)
            im.crop((0, 0, min(im.width, COLS * 6 + 4), min(im.height, ROWS * 13 + 4))).save(
                Path(target) / "peer-plot-xterm.png"
            )
    finally:
        pids = [term.pid, *_descendants(term.pid)]
        _signal_all(pids, 15)
        if not _wait_pids(pids, 10):
            _signal_all(pids, 9)
        term.wait(10)
        xvfb.terminate()
        xvfb.wait(10)
