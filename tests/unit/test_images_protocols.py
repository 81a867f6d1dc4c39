"""Each protocol, byte by byte: what ipymirror writes decodes back into the source image.

kitty and iTerm2: the base64 payload is a PNG, opened with Pillow.  Sixel:
libsixel's own decoder (``sixel2png``, Debian ``libsixel-bin``).  Half-blocks:
the colours land in the right cells of a pyte screen.  Sizes must match the
cells the picture was given; colours within a small tolerance.
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
import threading
from dataclasses import replace

import pyte
import pytest
from PIL import Image

from ipymirror.core.images import Picture
from ipymirror.core.render import Renderer
from ipymirror.terminal.images import ImagePainter, decode, encode, tmux_wrap
from ipymirror.terminal.writer import TerminalWriter

RASTER = frozenset({"image/png", "image/jpeg", "image/gif"})
CELL = (10, 20)
QUADRANTS = ((255, 0, 0), (0, 200, 0), (0, 0, 255), (255, 255, 255))


def quadrants(width: int = 200, height: int = 100) -> Image.Image:
    """Four flat colours, one per quadrant: easy to find again after scaling."""
    im = Image.new("RGB", (width, height))
    w, h = width // 2, height // 2
    for i, colour in enumerate(QUADRANTS):
        im.paste(colour, ((i % 2) * w, (i // 2) * h, (i % 2 + 1) * w, (i // 2 + 1) * h))
    return im


def b64(im: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def picture(im: Image.Image, fmt: str = "PNG", cell=CELL, gutter: str = "│ ") -> Picture:
    mime = "image/" + fmt.lower()
    pic = Renderer(images=RASTER, width=78, cell=cell).picture({mime: b64(im, fmt)}, {})
    assert pic is not None
    return replace(pic, gutter=gutter)


def assert_quadrants(im: Image.Image, tolerance: int = 24) -> None:
    im = im.convert("RGB")
    w, h = im.size
    for i, colour in enumerate(QUADRANTS):
        x, y = (i % 2) * w // 2 + w // 4, (i // 2) * h // 2 + h // 4
        got = im.getpixel((x, y))
        close = all(abs(a - b) <= tolerance for a, b in zip(got, colour, strict=True))
        assert close, (i, got, colour)


def split_frame(data: bytes, pic: Picture) -> str:
    """Check the reserved rows and cursor moves around the image; return the image escape."""
    text = data.decode()
    reserve = (pic.gutter + "\n") * pic.rows
    assert text.startswith(reserve)
    move = f"\x1b7\x1b[{pic.rows}A\x1b[{len(pic.gutter) + 1}G"
    assert text[len(reserve) :].startswith(move) and text.endswith("\x1b8")
    return text[len(reserve) + len(move) : -2]


def test_kitty_payload_is_the_image_at_the_given_cells():
    pic = picture(quadrants())
    assert (pic.cols, pic.rows) == (20, 5)
    seq = split_frame(encode(pic, "kitty", CELL), pic)
    chunks = re.findall(r"\x1b_G([^;]*);([A-Za-z0-9+/=]*)\x1b\\", seq)
    assert "".join(f"\x1b_G{k};{p}\x1b\\" for k, p in chunks) == seq  # nothing else in it
    keys = dict(kv.split("=") for kv in chunks[0][0].split(","))
    assert keys | {"m": "0"} == {
        "a": "T",
        "f": "100",
        "t": "d",
        "c": "20",
        "r": "5",
        "C": "1",
        "q": "2",
        "m": "0",
    }
    assert [k for k, _ in chunks[1:]] == ["m=1"] * (len(chunks) - 2) + ["m=0"][: len(chunks) - 1]
    png = base64.b64decode("".join(p for _, p in chunks))
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and im.size == (200, 100)
    assert_quadrants(im)


def test_kitty_big_image_is_chunked():
    noise = Image.effect_noise((400, 200), 100).convert("RGB")
    pic = picture(noise)
    seq = split_frame(encode(pic, "kitty", CELL), pic)
    payloads = re.findall(r";([A-Za-z0-9+/=]*)\x1b\\", seq)
    assert len(payloads) > 2 and all(len(p) <= 4096 for p in payloads)
    assert Image.open(io.BytesIO(base64.b64decode("".join(payloads)))).size == (400, 200)


def test_iterm_payload_is_the_image_at_the_given_cells():
    pic = picture(quadrants())
    seq = split_frame(encode(pic, "iterm", CELL), pic)
    m = re.fullmatch(r"\x1b\]1337;File=([^:]*):([A-Za-z0-9+/=]*)\x07", seq)
    assert m, seq[:80]
    args = dict(kv.split("=") for kv in m.group(1).split(";"))
    png = base64.b64decode(m.group(2))
    assert args == {
        "inline": "1",
        "size": str(len(png)),
        "width": "20",
        "height": "5",
        "preserveAspectRatio": "1",
    }
    im = Image.open(io.BytesIO(png))
    assert im.size == (200, 100)
    assert_quadrants(im)


def test_sixel_decodes_back_with_libsixel(tmp_path):
    pic = picture(quadrants())
    seq = split_frame(encode(pic, "sixel", CELL), pic)
    assert seq.startswith("\x1bP") and seq.endswith("\x1b\\")
    # the colour registers come before any pixel data (see images.sixel)
    body = seq[seq.index("q") + 1 :]
    first_data = re.search(r"[?-~!$-]", re.sub(r'^"[0-9;]*|#\d+;2;\d+;\d+;\d+', "", body))
    assert first_data is not None
    src = tmp_path / "in.six"
    src.write_text(seq)
    out = tmp_path / "out.png"
    subprocess.run(["sixel2png", "-i", str(src), "-o", str(out)], check=True, timeout=30)
    im = Image.open(out)
    assert im.size == (200, 100)
    assert_quadrants(im)


@pytest.mark.parametrize("fmt", ["JPEG", "GIF"])
def test_jpeg_and_gif_first_frame(fmt, tmp_path):
    if fmt == "GIF":
        frames = [quadrants(), Image.new("RGB", (200, 100), (9, 9, 9))]
        buf = io.BytesIO()
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
        data = base64.b64encode(buf.getvalue()).decode()
        pic = Renderer(images=RASTER, width=78, cell=CELL).picture({"image/gif": data}, {})
    else:
        pic = picture(quadrants(), fmt)
    assert pic is not None
    assert_quadrants(decode(pic, (200, 100)), tolerance=40)


def test_svg_is_drawn_with_cairosvg_and_never_fetches():
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">'
        '<rect width="100" height="50" fill="#ff0000"/><rect x="100" width="100" height="50" '
        'fill="#00c800"/><rect y="50" width="100" height="50" fill="#0000ff"/>'
        '<rect x="100" y="50" width="100" height="50" fill="#ffffff"/></svg>'
    )
    types = RASTER | {"image/svg+xml"}
    pic = Renderer(images=types, width=78, cell=CELL).picture({"image/svg+xml": svg}, {})
    assert pic is not None and (pic.cols, pic.rows) == (20, 5)
    assert_quadrants(decode(pic, (200, 100)))
    image = '<image href="http://127.0.0.1:9/x.png" width="9" height="9"/>'
    hostile = svg.replace("</svg>", image + "</svg>")
    pic = Renderer(images=types, width=78, cell=CELL).picture({"image/svg+xml": hostile}, {})
    assert pic is not None
    painted = ImagePainter("kitty").encode(pic)  # a refused fetch: drawn without it, or placeholder
    assert painted


def test_half_blocks_put_each_pixel_in_its_cell_on_a_pyte_screen():
    colours = [[(x * 60, y * 60, 200 - x * 40) for x in range(4)] for y in range(4)]
    im = Image.new("RGB", (4, 4))
    for y in range(4):
        for x in range(4):
            im.putpixel((x, y), colours[y][x])
    pic = picture(im, cell=(1, 2))  # blocks: a pixel per half-cell
    assert (pic.cols, pic.rows) == (4, 2)
    screen = pyte.Screen(20, 6)
    stream = pyte.ByteStream(screen)
    stream.feed(b"top\n\r")
    data = encode(pic, "blocks", (1, 2))
    stream.feed(data.replace(b"\n", b"\r\n"))
    stream.feed(b"after")
    assert screen.display[1].startswith("│ ▀▀▀▀") and screen.display[3].startswith("after")
    for row in range(2):
        for x in range(4):
            char = screen.buffer[1 + row][2 + x]
            top, bottom = colours[2 * row][x], colours[2 * row + 1][x]
            assert char.data == "▀"
            assert char.fg == "{:02x}{:02x}{:02x}".format(*top), (row, x, char)
            assert char.bg == "{:02x}{:02x}{:02x}".format(*bottom), (row, x, char)


def test_a_broken_image_is_its_placeholder():
    pic = picture(quadrants())
    broken = replace(pic, data=pic.data[: len(pic.data) // 2])
    painter = ImagePainter("sixel")
    placeholder = "".join(line + "\n" for line in pic.lines()).encode()
    assert placeholder.startswith("│ \x1b[2m[image/png 200×100".encode())
    assert painter.encode(broken) == placeholder
    assert painter.failures == 1
    liar = replace(pic, width=pic.width * 2)  # header and data disagree
    assert painter.encode(liar) == placeholder


def test_the_worker_is_a_process_and_survives_a_crash():
    import concurrent.futures
    import os

    pic = picture(quadrants())
    painter = ImagePainter("kitty")
    try:
        assert painter.submit(pic).result(60).startswith("│ \n".encode())
        pid = painter._executor().submit(os.getpid).result(30)
        assert pid != os.getpid()
        # a decoder that kills its process: the picture is its placeholder, the next one draws
        painter._executor().submit(os._exit, 1)
        broken = painter.submit(pic).result(60)
        assert broken in (fallback_bytes(pic), painter.encode(pic))
        assert b"\x1b_Ga=T" in painter.submit(pic).result(60)
    finally:
        painter.close()
    assert isinstance(painter._pool, concurrent.futures.ProcessPoolExecutor)


def fallback_bytes(pic: Picture) -> bytes:
    return "".join(line + "\n" for line in pic.lines()).encode()


def test_tmux_passthrough_doubles_escapes():
    assert tmux_wrap("\x1b_Ga=T;x\x1b\\") == "\x1bPtmux;\x1b\x1b_Ga=T;x\x1b\x1b\\\x1b\\"
    pic = picture(quadrants())
    wrapped = encode(pic, "kitty", CELL, tmux=True).decode()
    assert "\x1bPtmux;\x1b\x1b_G" in wrapped


def test_writer_keeps_text_after_a_picture_in_order_and_off_the_loop():
    """The picture is drawn on the worker; the text after it waits for it, not the loop."""
    import asyncio

    pic = picture(quadrants())
    out = io.StringIO()
    release = threading.Event()

    class SlowPainter(ImagePainter):
        def _run(self, fn, *args):
            def slow(*a):
                release.wait(10)
                return fn(*a)

            return super()._run(slow, *args)

    writer = TerminalWriter(out, painter=SlowPainter("kitty", processes=False))

    async def main() -> None:
        writer.push(["before\n", pic, "after\n"])
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert out.getvalue() == "before\n"  # the loop runs on, the rest waits
        release.set()
        for _ in range(200):
            if "after" in out.getvalue():
                break
            await asyncio.sleep(0.01)

    asyncio.run(main())
    text = out.getvalue()
    assert text.startswith("before\n") and text.endswith("after\n")
    assert "\x1b_Ga=T" in text and text.index("\x1b_G") < text.index("after")


def test_a_picture_that_never_finishes_is_its_placeholder_after_the_timeout():
    """No image (a hostile SVG, a stuck decoder) holds up the text behind it for long."""
    import asyncio

    pic = picture(quadrants())
    out = io.StringIO()
    never = threading.Event()
    abandoned = []

    class StuckPainter(ImagePainter):
        def _run(self, fn, *args):
            def stuck(*a):
                never.wait(30)
                return fn(*a)

            return super()._run(stuck, *args)

        def abandon(self):
            abandoned.append(True)
            super().abandon()

    writer = TerminalWriter(out, painter=StuckPainter("kitty", processes=False))
    writer.draw_timeout = 0.2

    async def main() -> None:
        writer.push(["before\n", pic, "after\n"])
        for _ in range(300):
            if "after" in out.getvalue():
                break
            await asyncio.sleep(0.01)

    asyncio.run(main())
    never.set()
    text = out.getvalue()
    assert text == "before\n" + fallback_bytes(pic).decode() + "after\n"
    assert abandoned == [True]


def test_abandon_kills_a_stuck_worker_process():
    import concurrent.futures
    import os
    import time

    painter = ImagePainter("kitty")
    try:
        pid = painter._executor().submit(os.getpid).result(60)
        stuck = painter._executor().submit(time.sleep, 60)  # a decoder that never ends
        painter.abandon()
        with pytest.raises(concurrent.futures.BrokenExecutor):  # the worker was killed
            stuck.result(30)
        pic = picture(quadrants())
        assert b"\x1b_Ga=T" in painter.submit(pic).result(60)  # a new worker draws
        assert painter._executor().submit(os.getpid).result(30) != pid
    finally:
        painter.close()
