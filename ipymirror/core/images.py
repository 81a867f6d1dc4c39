"""Images in a MIME bundle: which one to draw, how big it is, how much room it takes.

Pure: no decoding, no terminal.  The terminal layer (``terminal/images.py``)
turns a :class:`Picture` into escape bytes for *your* terminal; everything
here only reads headers, so a decompression bomb is recognised by the pixel
count its header declares, before any decoder sees it.

Rules:

* Drawable types, best first: PNG, JPEG, GIF (first frame), SVG (only where
  the terminal layer has an SVG renderer).  The bundle's own preference
  (:func:`~ipymirror.core.render.pick_mime`) decides first: a bundle whose best
  type is Markdown stays Markdown.
* The pixel size comes from the header (PNG IHDR, GIF screen descriptor, JPEG
  SOF, SVG ``width``/``height``/``viewBox``); notebook metadata
  ``{"image/png": {"width": w}}`` sets the *display* size, as in Jupyter.
  No size found: no picture (the placeholder line says what it was).
* An image over :data:`MAX_PIXELS` is refused, except JPEG, whose decoder can
  downscale by 1/2, 1/4 or 1/8 while decoding (up to ``64 * MAX_PIXELS``).
* The cells an image takes (:func:`cell_geometry`) fit the width and the
  height cap, keep the aspect ratio, and never enlarge an image past its own
  pixel size.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_BYTES",
    "MAX_PIXELS",
    "RASTER_TYPES",
    "Picture",
    "cell_geometry",
    "display_dims",
    "human_size",
    "image_bytes",
    "image_dims",
    "image_summary",
    "svg_dims",
    "too_many_pixels",
]

RASTER_TYPES = ("image/png", "image/jpeg", "image/gif")
MAX_PIXELS = 25_000_000  # 5000 x 5000: ~100 MB decoded as RGBA, the most we decode
JPEG_SCALE = 8  # a JPEG decoder can downscale by up to 1/8 while decoding
MAX_BYTES = 64 * 1024 * 1024  # base64 characters of one image we look at, at most
_HEAD = 256 * 1024  # bytes of a JPEG searched for its SOF marker (EXIF may come first)


@dataclass(frozen=True, eq=False)
class Picture:
    """An image output as the transcript holds it: the data and its cell geometry.

    ``data`` is the bundle's own value (base64 text, or SVG source), not a
    copy.  ``fallback`` is the placeholder line, drawn where the image cannot
    be.  ``cols`` x ``rows`` are the cells it occupies, after ``gutter`` (the
    peer's margin, plain text) on each of its rows.
    """

    key: int
    mime: str
    data: str
    width: int  # pixels, from the header
    height: int
    cols: int
    rows: int
    fallback: str
    gutter: str = ""

    def lines(self) -> list[str]:
        """The placeholder as lines of text, for whoever draws no images."""
        return [self.gutter + self.fallback]  # fallback is painted: it resets its colour


def _png_dims(head: bytes) -> tuple[int, int] | None:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24 and head[12:16] == b"IHDR":
        w, h = struct.unpack(">II", head[16:24])
        return int(w), int(h)
    return None


def _gif_dims(head: bytes) -> tuple[int, int] | None:
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        w, h = struct.unpack("<HH", head[6:10])
        return int(w), int(h)
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_dims(head: bytes) -> tuple[int, int] | None:
    """Walk the JPEG marker segments up to the first start-of-frame."""
    if head[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", head[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > len(head):
                return None
            h, w = struct.unpack(">HH", head[i + 5 : i + 9])
            return int(w), int(h)
        if length < 2:
            return None
        i += 2 + length
    return None


_LENGTH = re.compile(r"^\s*([0-9.]+)\s*(px|pt|in|cm|mm)?\s*$")
_UNIT = {"px": 1.0, None: 1.0, "pt": 4 / 3, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4}


def _svg_length(value: str | None) -> float | None:
    m = _LENGTH.match(value or "")
    if not m:
        return None
    try:
        return float(m.group(1)) * _UNIT[m.group(2)]
    except ValueError:
        return None


def _attr(tag: str, name: str) -> str | None:
    m = re.search(r"\s" + name + r"\s*=\s*(['\"])(.*?)\1", tag, re.DOTALL)
    return m.group(2) if m else None


def svg_dims(text: str) -> tuple[int, int] | None:
    """The size an SVG declares on its root element (``width``/``height``, else ``viewBox``)."""
    m = re.search(r"<svg\b[^>]*>", text[:_HEAD], re.DOTALL)
    if not m:
        return None
    tag = m.group(0)
    w, h = _svg_length(_attr(tag, "width")), _svg_length(_attr(tag, "height"))
    box = (_attr(tag, "viewBox") or "").replace(",", " ").split()
    if (w is None or h is None) and len(box) == 4:
        try:
            bw, bh = float(box[2]), float(box[3])
        except ValueError:
            bw = bh = 0.0
        if bw > 0 and bh > 0:
            if w is None and h is None:
                w, h = bw, bh
            elif w is None and h is not None:
                w = h * bw / bh
            elif h is None and w is not None:
                h = w * bh / bw
    if w is None or h is None or w < 1 or h < 1:
        return None
    return round(w), round(h)


def image_bytes(value: str, limit: int | None = None) -> bytes:
    """Decode base64 image data (whitespace allowed); ``limit`` bytes at most.

    Raises ValueError on anything that is not base64.
    """
    if limit is not None:
        value = "".join(value[: (limit // 3 + 2) * 4 * 2].split())[: (limit // 3 + 1) * 4]
        value = value[: len(value) // 4 * 4]
    try:
        return base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from None


def image_dims(mime: str, value: Any) -> tuple[int, int] | None:
    """Pixel size read from the header of ``value`` (base64, or SVG text); None if unknown."""
    if not isinstance(value, str):
        return None
    if mime == "image/svg+xml":
        return svg_dims(value)
    try:
        head = image_bytes(value, _HEAD if mime == "image/jpeg" else 64)
    except ValueError:
        return None
    if mime == "image/png":
        return _png_dims(head)
    if mime == "image/gif":
        return _gif_dims(head)
    if mime == "image/jpeg":
        return _jpeg_dims(head)
    return None


def display_dims(mime: str, dims: tuple[int, int], metadata: Mapping[str, Any]) -> tuple[int, int]:
    """The size to show: notebook metadata ``width``/``height`` where given, else the pixels."""
    meta = metadata.get(mime) if isinstance(metadata, Mapping) else None
    if not isinstance(meta, Mapping):
        return dims
    w, h = meta.get("width"), meta.get("height")
    w = w if isinstance(w, int) and not isinstance(w, bool) and w > 0 else None
    h = h if isinstance(h, int) and not isinstance(h, bool) and h > 0 else None
    if w and h:
        return w, h
    if w:
        return w, max(1, round(dims[1] * w / dims[0]))
    if h:
        return max(1, round(dims[0] * h / dims[1])), h
    return dims


def too_many_pixels(mime: str, dims: tuple[int, int]) -> bool:
    """Would decoding this image cost more than :data:`MAX_PIXELS`?"""
    limit = MAX_PIXELS * JPEG_SCALE * JPEG_SCALE if mime == "image/jpeg" else MAX_PIXELS
    return dims[0] * dims[1] > limit


def cell_geometry(
    width: int, height: int, *, max_cols: int, max_rows: int, cell: tuple[int, int]
) -> tuple[int, int]:
    """(cols, rows) for a ``width`` x ``height`` pixel image on cells of ``cell`` pixels.

    Fits ``max_cols`` and ``max_rows``, keeps the aspect ratio, and does not
    enlarge past the image's own size (a 1x1 image takes one cell).
    """
    cw, ch = max(1, cell[0]), max(1, cell[1])
    max_cols, max_rows = max(1, max_cols), max(1, max_rows)
    scale = min(1.0, max_cols * cw / width, max_rows * ch / height)
    cols = min(max_cols, max(1, math.ceil(width * scale / cw - 1e-9)))
    rows = min(max_rows, max(1, math.ceil(height * scale / ch - 1e-9)))
    return cols, rows


def human_size(n: int) -> str:
    """Bytes as a person reads them: 512 B, 23.4 kB, 1.5 MB (1 kB = 1024 B)."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} kB"
    return f"{n / 1024 / 1024:.1f} MB"


def image_summary(mime: str, value: Any, metadata: Mapping[str, Any]) -> str:
    """One line naming an image's type, pixel size and byte size (its placeholder)."""
    raw = value if isinstance(value, str) else ""
    meta = metadata.get(mime) if isinstance(metadata, Mapping) else None
    dims = None
    if isinstance(meta, Mapping) and isinstance(meta.get("width"), int):
        height = meta.get("height")
        dims = (meta["width"], height if isinstance(height, int) else 0)
    if mime == "image/svg+xml":
        size = len(raw.encode("utf-8", "replace"))
    else:
        # No pass over a big image (this runs on the event loop): IPython does not wrap
        # base64, so past 1 MB only a final newline is discounted.
        newlines = raw.count("\n") if len(raw) < 1 << 20 else int(raw.endswith("\n"))
        size = (len(raw) - newlines) * 3 // 4 - raw[-8:].rstrip()[-2:].count("=")
    if dims is None:
        dims = image_dims(mime, raw)
    what = f"{dims[0]}×{dims[1]}, " if dims and dims[1] else ""
    return f"[{mime} {what}{human_size(size)}]"
