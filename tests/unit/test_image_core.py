"""Images in the core: header sizes, the pixel cap, cell geometry, pictures in the transcript."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ipymirror.core.events import ClearOutput, Display, ExecuteInput, Peer, Result, Status, Stream
from ipymirror.core.images import (
    MAX_PIXELS,
    Picture,
    cell_geometry,
    image_dims,
    svg_dims,
    too_many_pixels,
)
from ipymirror.core.render import Renderer
from ipymirror.core.sanitize import sanitize
from ipymirror.core.transcript import Transcript

RASTER = frozenset({"image/png", "image/jpeg", "image/gif"})
BOB = Peer("s-bob", "bob")


def encoded(im: Image.Image, fmt: str, **kw) -> str:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return base64.b64encode(buf.getvalue()).decode()


def png_header_only(width: int, height: int) -> str:
    """A PNG that declares ``width`` x ``height`` (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    body = struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + body).decode()


@pytest.mark.parametrize(
    "fmt,mime", [("PNG", "image/png"), ("GIF", "image/gif"), ("JPEG", "image/jpeg")]
)
def test_dims_from_the_header(fmt, mime):
    value = encoded(Image.new("RGB", (123, 45), "red"), fmt)
    assert image_dims(mime, value) == (123, 45)


def test_jpeg_dims_after_exif_and_whitespace():
    im = Image.new("RGB", (300, 200), "blue")
    exif = Image.Exif()
    exif[0x010E] = "x" * 5000  # ImageDescription: a big APP1 segment before the SOF
    value = encoded(im, "JPEG", exif=exif.tobytes())
    wrapped = "\n".join(value[i : i + 76] for i in range(0, len(value), 76))
    assert image_dims("image/jpeg", wrapped) == (300, 200)


@pytest.mark.parametrize(
    "svg,dims",
    [
        ('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100"/>', (200, 100)),
        ('<svg width="72pt" height="36pt"></svg>', (96, 48)),
        ('<?xml version="1.0"?>\n<svg viewBox="0 0 400 300"></svg>', (400, 300)),
        ('<svg width="100%" viewBox="0,0,40,20" height="10"></svg>', (20, 10)),
        ("<svg></svg>", None),
        ("not svg", None),
    ],
)
def test_svg_dims(svg, dims):
    assert svg_dims(svg) == dims


@pytest.mark.parametrize("value", ["!!not base64!!", "", "AAAA", None, 42])
def test_garbage_has_no_dims(value):
    assert image_dims("image/png", value) is None
    assert image_dims("image/jpeg", value) is None


def test_pixel_cap_is_read_from_the_header():
    bomb = png_header_only(60_000, 60_000)
    assert image_dims("image/png", bomb) == (60_000, 60_000)
    assert too_many_pixels("image/png", (60_000, 60_000))
    assert not too_many_pixels("image/png", (5000, 5000))
    # a JPEG may be downscaled by 1/8 while decoding: 64 times more is allowed
    assert not too_many_pixels("image/jpeg", (20_000, 20_000))
    assert too_many_pixels("image/jpeg", (50_000, 50_000))
    r = Renderer(images=RASTER)
    data = {"image/png": bomb, "text/plain": "<bomb>"}
    assert r.picture(data, {}) is None  # refused before any decoder sees it
    assert r.display(data, {}) == r.mime(data)  # the placeholder line instead
    assert "60000×60000" in r.mime(data)[0]
    assert MAX_PIXELS < 60_000 * 60_000


@pytest.mark.parametrize(
    "size,box,expected",
    [
        ((640, 480), (78, 20), (54, 20)),  # a matplotlib figure: the height cap decides
        ((640, 480), (30, 20), (30, 12)),  # a narrow terminal: the width decides
        ((1, 1), (78, 20), (1, 1)),  # never enlarged
        ((100, 20), (78, 20), (10, 1)),
        ((10_000, 10), (78, 20), (78, 1)),
    ],
)
def test_cell_geometry(size, box, expected):
    cols, rows = cell_geometry(*size, max_cols=box[0], max_rows=box[1], cell=(10, 20))
    assert (cols, rows) == expected


def test_picture_only_for_drawable_types_and_respects_the_bundle_preference():
    png = encoded(Image.new("RGB", (40, 40)), "PNG")
    assert Renderer().picture({"image/png": png}, {}) is None  # images off: the placeholder
    r = Renderer(images=RASTER, width=80)
    pic = r.picture({"image/png": png, "text/plain": "<Figure>"}, {})
    assert isinstance(pic, Picture)
    assert (pic.width, pic.height, pic.cols, pic.rows) == (40, 40, 4, 2)
    assert "[image/png 40×40" in pic.fallback
    assert r.picture({"text/markdown": "# hi", "image/png": png}, {}) is None
    assert r.picture({"image/svg+xml": "<svg width='10' height='10'/>"}, {}) is None  # no renderer
    # notebook metadata sets the display size, as in Jupyter
    pic = r.picture({"image/png": png}, {"image/png": {"width": 400}})
    assert (pic.cols, pic.rows) == (40, 20)


def take_all(t: Transcript) -> list:
    return t.take_chunks()


def test_a_peer_picture_is_committed_in_order_with_its_gutter():
    r = Renderer(images=RASTER, color=False, width=80)
    t = Transcript(r)
    png = encoded(Image.new("RGB", (100, 40), "green"), "PNG")
    t.feed(ExecuteInput(BOB, "c1", "plot()", 3))
    t.feed(Stream(BOB, "c1", "stdout", "before\n"))
    t.feed(Display(BOB, "c1", {"image/png": png, "text/plain": "<Figure>"}))
    t.feed(Stream(BOB, "c1", "stdout", "after\n"))
    t.feed(Result(BOB, "c1", {"image/png": png}, 3))
    t.feed(Status(BOB, "c1", "idle"))
    chunks = take_all(t)
    pics = [c for c in chunks if isinstance(c, Picture)]
    assert len(pics) == 2 and all(p.gutter == "│ " and (p.cols, p.rows) == (10, 2) for p in pics)
    text = ["<pic>" if isinstance(c, Picture) else c for c in chunks]
    flat = "".join(text)
    assert flat.index("before") < flat.index("<pic>") < flat.index("after")
    assert flat.endswith("│ Out[3]: \n<pic>")
    # whoever draws no images reads the placeholders
    t2 = Transcript(r)
    for ev in (
        ExecuteInput(BOB, "c1", "plot()", 3),
        Display(BOB, "c1", {"image/png": png}),
        Status(BOB, "c1", "idle"),
    ):
        t2.feed(ev)
    assert "│ [image/png 100×40" in "".join(t2.take())


def test_my_own_picture_has_no_gutter():
    r = Renderer(images=RASTER, color=False)
    t = Transcript(r, me="s-me")
    png = encoded(Image.new("RGB", (10, 10)), "PNG")
    t.feed(Display(Peer("s-me", "me"), "c1", {"image/png": png}))
    (pic,) = take_all(t)
    assert isinstance(pic, Picture) and pic.gutter == ""


def test_update_display_data_replaces_the_live_picture_then_commits_the_last():
    r = Renderer(images=RASTER, color=False)
    t = Transcript(r)
    red = encoded(Image.new("RGB", (20, 20), "red"), "PNG")
    blue = encoded(Image.new("RGB", (20, 20), "blue"), "PNG")
    t.feed(ExecuteInput(BOB, "c1", "loop()", 1))
    take_all(t)
    t.feed(Display(BOB, "c1", {"image/png": red}, display_id="d1"))
    live = [x for x in t.live_lines() if isinstance(x, Picture)]
    assert [p.data for p in live] == [red]
    t.feed(Display(BOB, "c1", {"image/png": blue}, display_id="d1", update=True))
    live = [x for x in t.live_lines() if isinstance(x, Picture)]
    assert [p.data for p in live] == [blue]  # replaced in place, not appended
    assert not [c for c in take_all(t) if isinstance(c, Picture)]  # nothing committed yet
    t.feed(Status(BOB, "c1", "idle"))
    committed = [c for c in take_all(t) if isinstance(c, Picture)]
    assert [p.data for p in committed] == [blue]
    assert t.live_lines() == []


def test_clear_output_wait_drops_the_old_picture():
    r = Renderer(images=RASTER, color=False)
    t = Transcript(r)
    frames = [encoded(Image.new("RGB", (8, 8), (i, 0, 0)), "PNG") for i in range(3)]
    t.feed(ExecuteInput(BOB, "c1", "anim()", 1))
    for frame in frames:
        t.feed(ClearOutput(BOB, "c1", wait=True))
        t.feed(Display(BOB, "c1", {"image/png": frame}))
    live = [x for x in t.live_lines() if isinstance(x, Picture)]
    assert [p.data for p in live] == [frames[-1]]
    assert t.live()[-1].startswith("│ [image/png 8×8")  # the text view of the same


@pytest.mark.parametrize(
    "raw",
    [
        "\x1b_Ga=T,f=100;iVBORw0KGgo=\x1b\\",  # kitty
        "\x1bPq#0;2;100;0;0#0!10~-\x1b\\",  # sixel
        "\x1b]1337;File=inline=1:iVBORw0KGgo=\x07",  # iTerm2
        "\x9fGa=T;AAAA\x9c",  # kitty with 8-bit APC/ST
        "\x90q#0!10~\x9c",  # sixel with 8-bit DCS
    ],
)
def test_a_peer_cannot_draw_with_raw_escapes(raw):
    """Images are data, not escapes: graphics sequences in peer *text* are stripped."""
    r = Renderer(images=RASTER, color=True)
    t = Transcript(r)
    t.feed(ExecuteInput(BOB, "c1", raw, 1))
    t.feed(Stream(BOB, "c1", "stdout", f"x{raw}y\n"))
    t.feed(Display(BOB, "c1", {"text/plain": raw}))
    t.feed(Result(BOB, "c1", {"text/markdown": raw}, 1))
    t.feed(Status(BOB, "c1", "idle"))
    out = "".join(t.take())
    for introducer in ("\x1b_", "\x1bP", "\x1b]", "\x9f", "\x90", "\x9c"):
        assert introducer not in out
    assert "xy" in out
    assert sanitize(raw) == ""


@settings(max_examples=300, deadline=None)
@given(
    head=st.sampled_from([b"", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"GIF89a", b"\xff\xd8"]),
    tail=st.binary(max_size=200),
    mime=st.sampled_from(["image/png", "image/gif", "image/jpeg"]),
)
def test_hostile_headers_never_raise(head, tail, mime):
    value = base64.b64encode(head + tail).decode()
    dims = image_dims(mime, value)
    assert dims is None or all(isinstance(d, int) and d >= 0 for d in dims)
    r = Renderer(images=RASTER)
    pic = r.picture({mime: value}, {mime: {"width": 10**9}})
    assert pic is None or (1 <= pic.cols <= r.width and 1 <= pic.rows <= r.image_rows)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_hostile_svg_never_raises(text):
    dims = svg_dims("<svg " + text)
    assert dims is None or min(dims) >= 1
