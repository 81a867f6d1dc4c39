"""End-to-end: a peer's matplotlib plot drawn inline, in a real pty, for each viewer.

The console, ``watch`` and ``replay`` run on a pseudo-terminal read back by
pyte.  pyte answers the device-attributes query without sixel, so ``auto``
gives half-blocks, whose colours pyte keeps per cell; sixel and kitty output
is decoded back from the raw bytes the program wrote.
"""

from __future__ import annotations

import base64
import io
import re
import subprocess

from PIL import Image
from recording_support import cell_messages, write_recording
from terminal import REPO_ROOT, Terminal, at_empty_prompt, default_env

from ipymirror.core.images import cell_geometry
from ipymirror.terminal.images import fit

BLUE = (31, 119, 180)  # matplotlib's first line colour, #1f77b4
PLOT = (
    "import matplotlib\n"
    "matplotlib.use('module://matplotlib_inline.backend_inline')\n"
    "import matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots(figsize=(4, 3), dpi=80)\n"
    "ax.plot([0, 1, 2], [0, 2, 1], linewidth=8)\n"
    "plt.show()\n"
)


PROMPT = re.compile(r"^In \[(\d+)\]:( |$)")


def env_for() -> dict[str, str]:
    """The repo importable; cursor position reports answered (by pyte)."""
    return default_env(PYTHONPATH=str(REPO_ROOT), PROMPT_TOOLKIT_NO_CPR=None)


def open_console(terminal, ipymirror_argv, km, **kw) -> Terminal:
    term = terminal(
        ipymirror_argv("--existing", km.connection_file, "--name", "me"), env=env_for(), **kw
    )
    term.wait_for(lambda t: PROMPT.match(t.cursor_line()) is not None)
    return term


def settle(term: Terminal, who) -> None:
    """Have ``who`` run one more cell: everything before it is then committed."""
    who.run("print('settled-' + 'marker')")
    term.wait_for("│ settled-marker")
    term.wait_for(lambda t: PROMPT.match(t.cursor_line()) is not None)


def settle_raw(term: Terminal, who) -> None:
    """Like ``settle``, read from the raw bytes: pyte draws sixel/kitty payloads as text."""
    who.run("print('settled-' + 'marker')")
    term.wait_for(lambda t: b"settled-marker" in bytes(t.raw))


def sent_png(result: dict) -> tuple[int, int]:
    """The pixel size of the plot the peer's kernel sent."""
    (png,) = [
        m["content"]["data"]["image/png"]
        for m in result["iopub"]
        if m["msg_type"] == "display_data" and "image/png" in m["content"]["data"]
    ]
    return Image.open(io.BytesIO(base64.b64decode(png))).size


def drawn_size(size: tuple[int, int], cols: int = 98, rows: int = 20) -> tuple[int, int]:
    """Pixels the plot is drawn with on 10x20 cells (pyte reports no pixel size)."""
    c, r = cell_geometry(*size, max_cols=cols, max_rows=rows, cell=(10, 20))
    return fit(*size, c * 10, r * 20)


def near(hexcolour: object, rgb: tuple[int, int, int], tolerance: int = 40) -> bool:
    if not isinstance(hexcolour, str) or not re.fullmatch(r"[0-9a-f]{6}", hexcolour):
        return False
    got = [int(hexcolour[i : i + 2], 16) for i in (0, 2, 4)]
    return all(abs(a - b) <= tolerance for a, b in zip(got, rgb, strict=True))


def block_rows(term: Terminal) -> list[int]:
    """Rows of the screen drawn in half-blocks."""
    with term._cond:
        return [
            y
            for y in range(term.screen.lines)
            if sum(1 for x in range(term.screen.columns) if term.screen.buffer[y][x].data == "▀")
            > 10
        ]


def blue_cells(term: Terminal) -> int:
    with term._cond:
        return sum(
            1
            for y in range(term.screen.lines)
            for x in range(term.screen.columns)
            if term.screen.buffer[y][x].data == "▀"
            and (near(term.screen.buffer[y][x].fg, BLUE) or near(term.screen.buffer[y][x].bg, BLUE))
        )


def test_a_peers_matplotlib_plot_in_the_console(kernel, peer, terminal, ipymirror_argv):
    bob = peer(kernel, "bob")
    term = open_console(terminal, ipymirror_argv, kernel, rows=40)
    bob.run(PLOT)
    settle(term, bob)
    rows = block_rows(term)
    assert 5 <= len(rows) <= 20, term.text()  # the default height cap
    assert rows == list(range(rows[0], rows[0] + len(rows)))  # one block, whole rows
    assert blue_cells(term) > 20
    with term._cond:
        assert all(term.screen.buffer[y][0].data == "│" for y in rows)  # the peer's gutter
    assert "[image/png" not in term.text()
    # the prompt still works after it
    term.send("1+1\r")
    term.wait_for("Out[")


def test_image_rows_caps_the_height(kernel, peer, terminal, ipymirror_argv):
    bob = peer(kernel, "bob")
    argv = ipymirror_argv("--existing", kernel.connection_file, "--image-rows", "6")
    term = terminal(argv, env=env_for(), rows=40)
    term.wait_for(at_empty_prompt)
    bob.run(PLOT)
    settle(term, bob)
    assert len(block_rows(term)) == 6


def test_images_off_is_the_placeholder(kernel, peer, terminal, ipymirror_argv):
    bob = peer(kernel, "bob")
    argv = ipymirror_argv("--existing", kernel.connection_file, "--images", "off")
    term = terminal(argv, env=env_for())
    term.wait_for(at_empty_prompt)
    bob.run(PLOT)
    term.wait_for(re.compile(r"│ \[image/png \d+×\d+, [0-9.]+ kB\]"))
    assert not block_rows(term)


def sixel_images(raw: bytes, tmp_path) -> list[Image.Image]:
    out = []
    for n, seq in enumerate(re.findall(rb"\x1bP[0-9;]*q.*?\x1b\\", raw, re.S)):
        src, dst = tmp_path / f"{n}.six", tmp_path / f"{n}.png"
        src.write_bytes(seq)
        subprocess.run(["sixel2png", "-i", str(src), "-o", str(dst)], check=True, timeout=30)
        out.append(Image.open(dst).convert("RGB"))
    return out


def has_colour(im: Image.Image, rgb: tuple[int, int, int], tolerance: int = 30) -> bool:
    return any(
        all(abs(a - b) <= tolerance for a, b in zip(px, rgb, strict=True))
        for _, px in im.getcolors(maxcolors=1 << 24)
    )


def test_sixel_in_watch(kernel, peer, terminal, ipymirror_argv, tmp_path):
    bob = peer(kernel, "bob")
    argv = ipymirror_argv("watch", "--existing", kernel.connection_file, "--images", "sixel")
    term = terminal(argv, env=env_for())
    term.wait_for("watching")
    size = sent_png(bob.run(PLOT))
    settle_raw(term, bob)
    (im,) = sixel_images(bytes(term.raw), tmp_path)
    assert im.size == drawn_size(size)
    assert has_colour(im, BLUE)


def kitty_images(raw: bytes) -> list[Image.Image]:
    images, payload = [], []
    for keys, data in re.findall(rb"\x1b_G([^;]*);([A-Za-z0-9+/=]*)\x1b\\", raw):
        payload.append(data)
        if b"m=0" in keys.split(b","):
            images.append(Image.open(io.BytesIO(base64.b64decode(b"".join(payload)))))
            payload = []
    return images


def test_kitty_in_the_console_keeps_the_prompt(kernel, peer, terminal, ipymirror_argv):
    bob = peer(kernel, "bob")
    argv = ipymirror_argv("--existing", kernel.connection_file, "--images", "kitty")
    term = terminal(argv, env=env_for())
    term.wait_for(at_empty_prompt)
    term.send("abc")
    size = sent_png(bob.run(PLOT))
    settle_raw(term, bob)
    (im,) = kitty_images(bytes(term.raw))
    assert im.size == drawn_size(size) and has_colour(im.convert("RGB"), BLUE)
    assert term.cursor_line().endswith("abc")  # the half-typed line survived


def test_replay_draws_the_recorded_plot(tmp_path, terminal, ipymirror_argv):
    im = Image.new("RGB", (64, 32), BLUE)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    display = (
        "display_data",
        {"data": {"image/png": png, "text/plain": "<Figure>"}, "metadata": {}},
    )
    msgs = cell_messages("plot()", [display], 1)
    path = write_recording(tmp_path / "s.ipym", [(i * 0.001, m) for i, m in enumerate(msgs)])
    term = terminal(ipymirror_argv("replay", str(path), "--no-wait"), env=env_for())
    assert term.wait_exit() == 0
    # --no-wait on a terminal still draws: 64x32 px in half-blocks is 64 cols x 16 rows
    assert len(block_rows(term)) == 16
    assert blue_cells(term) >= 64 * 16


LIVE = (
    "import io\n"
    "from IPython.display import display, Image\n"
    "from PIL import Image as P\n"
    "def png(c):\n"
    "    b = io.BytesIO(); P.new('RGB', (40, 20), c).save(b, 'PNG'); return b.getvalue()\n"
    "h = display(Image(png('red')), display_id=True)\n"
    "for c in ('lime', 'blue'):\n"
    "    h.update(Image(png(c)))\n"
)


def cells_near(term: Terminal, rgb: tuple[int, int, int]) -> int:
    with term._cond:
        return sum(
            1
            for y in range(term.screen.lines)
            for x in range(term.screen.columns)
            if term.screen.buffer[y][x].data == "▀"
            and near(term.screen.buffer[y][x].fg, rgb, 10)
            and near(term.screen.buffer[y][x].bg, rgb, 10)
        )


def test_update_display_data_replaces_the_plot(kernel, peer, terminal, ipymirror_argv):
    """A display updated in place is one picture, the last one, once the cell ends."""
    bob = peer(kernel, "bob")
    term = open_console(terminal, ipymirror_argv, kernel, rows=40)
    bob.run(LIVE)
    settle(term, bob)
    assert len(block_rows(term)) == 10  # 40x20 px: 40 cols x 10 rows, once
    assert cells_near(term, (0, 0, 255)) == 400
    assert cells_near(term, (255, 0, 0)) == cells_near(term, (0, 255, 0)) == 0


def test_a_live_plot_is_drawn_under_the_prompt_then_committed(
    kernel, peer, terminal, ipymirror_argv, tmp_path
):
    """While its cell runs, a display with a display_id is live: drawn (half-blocks) in
    the live region above the prompt, replaced by each update, committed at the end."""
    bob = peer(kernel, "bob")
    term = open_console(terminal, ipymirror_argv, kernel, rows=40)
    go = tmp_path / "go"
    code = LIVE.replace("for c in ('lime', 'blue'):\n    h.update(Image(png(c)))\n", "") + (
        "import os, time\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.02)\n"
        "h.update(Image(png('blue')))\n"
    )
    msg_id = bob.execute_nowait(code)
    # live while the cell runs, and the prompt (redrawn after it) still below it
    term.wait_for(lambda t: cells_near(t, (255, 0, 0)) > 0 and at_empty_prompt(t))
    assert "[image/png" not in term.text()
    go.touch()
    term.wait_for(lambda t: cells_near(t, (0, 0, 255)) > 0)
    assert msg_id
    settle(term, bob)
    assert cells_near(term, (255, 0, 0)) == 0
    assert len(block_rows(term)) == 10 and cells_near(term, (0, 0, 255)) == 400
