"""Pictures drawn for this terminal: kitty, iTerm2, sixel or half-blocks.

The transcript hands over a :class:`~ipymirror.core.images.Picture` (the
bundle's data and the cells it occupies); this module decodes it with Pillow
and encodes it for one protocol.  Decoding and encoding run in one worker
process (:class:`ImagePainter`), never on the event loop, so a 20 MB PNG does
not freeze the prompt.  Any failure gives the placeholder line instead.

Every drawn picture takes exactly ``rows`` lines of ordinary text first (the
gutter, then a newline), so it scrolls, and is accounted for, like text; a
graphics protocol then draws over those rows from a saved cursor position:

    rows x (gutter "\\n")   ESC 7   CSI rows A   CSI col G   <image>   ESC 8

Where the encoders come from:

* sixel: textual-image's encoder (``textual_image._sixel.image_to_sixels``).
  Its rich renderables are not used: importing ``textual_image.renderable``
  queries the terminal on stdin at import time (it would type the answer
  into the prompt), and they write kitty data straight to ``sys.__stdout__``.
* kitty and iTerm2: the envelopes are written here, a few lines each
  (base64 of a PNG in ``ESC _ G`` chunks, or one ``ESC ] 1337 ; File=`` OSC):
  textual-image has no iTerm2 encoder, and its kitty one uses Unicode
  placeholders that only kitty draws and writes to the terminal itself.
* half-blocks: ``▀`` cells with a true-colour foreground (top pixel) and
  background (bottom pixel), also written here: it is one loop, and the
  library's version is one of the renderables above.
"""

from __future__ import annotations

import base64
import concurrent.futures
import functools
import io
import queue
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ipymirror.core.images import (
    JPEG_SCALE,
    MAX_PIXELS,
    Picture,
    image_bytes,
)
from ipymirror.core.render import RESET

__all__ = [
    "PROTOCOLS",
    "ImagePainter",
    "blocks",
    "decode",
    "drawable_types",
    "encode",
    "fit",
    "iterm",
    "kitty",
    "sixel",
    "tmux_wrap",
]

PROTOCOLS = ("kitty", "iterm", "sixel", "blocks")
KITTY_CHUNK = 4096  # base64 characters per kitty escape (the protocol's limit)
MAX_QUEUED = 16  # pictures waiting for the worker; more are drawn as placeholders


def drawable_types() -> frozenset[str]:
    """The image types this installation can draw: SVG only with cairosvg (and libcairo)."""
    import importlib.util

    types = {"image/png", "image/jpeg", "image/gif"}
    if importlib.util.find_spec("cairosvg") is not None:
        types.add("image/svg+xml")
    return frozenset(types)


def fit(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The largest ``width:height`` size inside ``box_w`` x ``box_h`` (at least 1x1)."""
    scale = min(box_w / width, box_h / height)
    return max(1, min(box_w, round(width * scale))), max(1, min(box_h, round(height * scale)))


# ------------------------------------------------------------------ decoding


def _svg_png(svg: str, size: tuple[int, int]) -> bytes:
    """SVG to PNG with cairosvg.  ``unsafe=False``: no XML entities, no external
    files or URLs (only ``data:`` images inside the SVG are loaded)."""
    import cairosvg  # type: ignore[import-untyped]

    png = cairosvg.svg2png(
        bytestring=svg.encode("utf-8"), output_width=size[0], output_height=size[1], unsafe=False
    )
    return bytes(png)


def decode(pic: Picture, box: tuple[int, int]) -> Any:
    """The picture as an RGB Pillow image fitting ``box`` pixels (aspect kept).

    The pixel count was checked on the header (core); Pillow is told the same
    cap, and a JPEG is decoded straight at a reduced scale when that is enough.
    """
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS * JPEG_SCALE * JPEG_SCALE
    size = fit(pic.width, pic.height, *box)
    svg = pic.mime == "image/svg+xml"
    raw = _svg_png(pic.data, size) if svg else image_bytes(pic.data)
    with Image.open(io.BytesIO(raw)) as im:
        if (im.width, im.height) != (pic.width, pic.height) and not svg:
            raise ValueError("the image is not the size its header said")
        if im.format == "JPEG":
            im.draft("RGB", size)  # decode at 1/2, 1/4, 1/8 when that still covers size
        if im.width * im.height > MAX_PIXELS:
            raise ValueError("too many pixels")
        im.seek(0)  # a GIF's first frame
        rgba = im.convert("RGBA")
    if rgba.size != size:
        rgba = rgba.resize(size, Image.Resampling.LANCZOS)
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(black, rgba).convert("RGB")


def _png(image: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=1)
    return out.getvalue()


# ----------------------------------------------------------------- encoders


def kitty(image: Any, cols: int, rows: int) -> str:
    """kitty graphics protocol: transmit and display a PNG at the cursor, in cols x rows.

    ``C=1`` leaves the cursor where it is; ``q=2`` stops the terminal from
    answering (an answer would arrive on stdin, i.e. in the prompt).
    """
    data = base64.b64encode(_png(image)).decode("ascii")
    chunks = [data[i : i + KITTY_CHUNK] for i in range(0, len(data), KITTY_CHUNK)] or [""]
    out = []
    for n, chunk in enumerate(chunks):
        more = 1 if n < len(chunks) - 1 else 0
        keys = f"a=T,f=100,t=d,c={cols},r={rows},C=1,q=2,m={more}" if n == 0 else f"m={more}"
        out.append(f"\x1b_G{keys};{chunk}\x1b\\")
    return "".join(out)


def iterm(image: Any, cols: int, rows: int) -> str:
    """iTerm2 inline image (OSC 1337 File=), cols x rows cells (also WezTerm, Konsole)."""
    png = _png(image)
    data = base64.b64encode(png).decode("ascii")
    args = f"inline=1;size={len(png)};width={cols};height={rows};preserveAspectRatio=1"
    return f"\x1b]1337;File={args}:{data}\x07"


_REGISTER = re.compile(r"#(\d+);2;\d+;\d+;\d+")
_RASTER = re.compile(r'\x1bP[0-9;]*q(?:"[0-9;]*)?')


def sixel(image: Any) -> str:
    """DEC sixel, by textual-image's encoder (up to 256 colours).

    The colour registers are then all defined up front, as img2sixel does:
    textual-image defines each one where it is first used, and xterm (-ti
    vt340, checked on xterm 379) then draws the bands before a definition in
    that register's old colour (a grey stripe across the top of a plot).
    """
    from textual_image._sixel import image_to_sixels

    seq = str(image_to_sixels(image))
    head = _RASTER.match(seq)
    if head is None:
        return seq
    defs = "".join(m.group(0) for m in _REGISTER.finditer(seq, head.end()))
    body = _REGISTER.sub(lambda m: "#" + m.group(1), seq[head.end() :])
    return seq[: head.end()] + defs + body


def blocks(image: Any, gutter: str = "") -> list[str]:
    """Half-blocks: one ``▀`` per two pixels, top pixel as foreground, bottom as background."""
    w, h = image.size
    px = image.load()
    lines = []
    for y in range(0, h, 2):
        parts = [gutter]
        last = None
        for x in range(w):
            top = px[x, y]
            bottom = px[x, y + 1] if y + 1 < h else None
            if bottom is None:
                sgr = f"\x1b[0;38;2;{top[0]};{top[1]};{top[2]}m"
            else:
                sgr = (
                    f"\x1b[38;2;{top[0]};{top[1]};{top[2]};"
                    f"48;2;{bottom[0]};{bottom[1]};{bottom[2]}m"
                )
            if sgr != last:
                parts.append(sgr)
                last = sgr
            parts.append("▀")
        parts.append(RESET)
        lines.append("".join(parts))
    return lines


def tmux_wrap(seq: str) -> str:
    """tmux's passthrough: ``ESC P tmux ;`` + the sequence with each ESC doubled + ST.

    Used only when asked for (``--images kitty`` inside tmux): tmux must also
    have ``allow-passthrough on``.
    """
    return "\x1bPtmux;" + seq.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def encode(pic: Picture, protocol: str, cell: tuple[int, int], *, tmux: bool = False) -> bytes:
    """The bytes that draw ``pic`` on ``pic.rows`` fresh lines (see the module doc)."""
    cols, rows = pic.cols, pic.rows
    if protocol == "blocks":
        image = decode(pic, (cols, rows * 2))
        lines = blocks(image, pic.gutter)
        lines += [pic.gutter] * (rows - len(lines))
        return ("\n".join(lines) + "\n").encode()
    image = decode(pic, (cols * cell[0], rows * cell[1]))
    if protocol == "sixel":
        seq = sixel(image)
    elif protocol == "kitty":
        seq = kitty(image, cols, rows)
    elif protocol == "iterm":
        seq = iterm(image, cols, rows)
    else:
        raise ValueError(f"no such image protocol: {protocol}")
    if tmux and protocol != "sixel":
        seq = tmux_wrap(seq)
    reserve = (pic.gutter + "\n") * rows
    move = f"\x1b7\x1b[{rows}A\x1b[{len(pic.gutter) + 1}G"
    return (reserve + move + seq + "\x1b8").encode()


def fallback(pic: Picture) -> bytes:
    return "".join(line + "\n" for line in pic.lines()).encode()


# ------------------------------------------------------------------- worker


def paint(pic: Picture, protocol: str, cell: tuple[int, int], tmux: bool) -> bytes | None:
    """:func:`encode`, or None if the picture cannot be drawn (run in the worker)."""
    try:
        return encode(pic, protocol, cell, tmux=tmux)
    except Exception:  # undecodable, truncated, hostile: the placeholder says what it was
        return None


def paint_live(pic: Picture, cols: int, rows: int) -> list[str] | None:
    """Half-block lines of ``pic`` in ``cols`` x ``rows`` cells, or None (run in the worker)."""
    try:
        return blocks(decode(pic, (cols, rows * 2)), pic.gutter)
    except Exception:
        return None


class ImagePainter:
    """Draws pictures in one worker process; caches live-region renderings.

    A process, not a thread: the sixel encoder is partly pure Python, and on
    a thread it would hold the GIL against the prompt's key echo; and a
    decoder that crashes on a hostile image takes down the worker, not the
    mirror (the pool is then replaced, the picture is its placeholder).
    ``processes=False`` uses a thread (where processes cannot be started).

    ``on_ready`` is called (from a pool thread) when a live rendering has
    become ready, so the frontend can redraw its live region.
    """

    def __init__(
        self,
        protocol: str,
        cell: tuple[int, int] = (10, 20),
        *,
        tmux: bool = False,
        on_ready: Callable[[], None] | None = None,
        processes: bool = True,
    ) -> None:
        self.protocol = protocol
        self.cell = cell
        self.tmux = tmux
        self.on_ready = on_ready
        self.processes = processes
        self._pool: concurrent.futures.Executor | None = None
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._dispatcher: threading.Thread | None = None
        self._lock = threading.Lock()
        self._queued = 0
        self._live: OrderedDict[tuple[int, int, int], list[str] | None] = OrderedDict()
        self.version = 0  # bumps when a live rendering becomes ready
        self.failures = 0

    def _executor(self) -> concurrent.futures.Executor:
        if self._pool is None:
            if self.processes:
                try:
                    import multiprocessing

                    context = multiprocessing.get_context("forkserver")  # no fork of our threads
                    self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=context)
                except (ImportError, OSError, ValueError):
                    self.processes = False
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix="ipymirror-images"
                )
        return self._pool

    def _run(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future[Any]:
        """``fn(*args)`` in the worker.  Only a queue put on the caller's thread: starting
        (or restarting) a worker process blocks, so the dispatcher thread does that."""
        out: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._jobs.put((fn, args, out))
        with self._lock:
            if self._dispatcher is None:
                self._dispatcher = threading.Thread(
                    target=self._dispatch, name="ipymirror-images", daemon=True
                )
                self._dispatcher.start()
        return out

    def _dispatch(self) -> None:
        while (item := self._jobs.get()) is not None:
            fn, args, out = item
            try:
                try:
                    job = self._executor().submit(fn, *args)
                except (concurrent.futures.BrokenExecutor, RuntimeError):
                    self._pool = None  # the worker died (a crashing decoder?): a new one
                    job = self._executor().submit(fn, *args)
            except Exception as exc:  # no worker at all: the callers draw placeholders
                out.set_exception(exc)
                continue
            job.add_done_callback(functools.partial(self._chain, out))

    def _chain(self, out: Future[Any], job: Future[Any]) -> None:
        try:
            out.set_result(job.result())
        except concurrent.futures.BrokenExecutor as exc:
            self._pool = None
            out.set_exception(exc)
        except BaseException as exc:
            out.set_exception(exc)

    def encode(self, pic: Picture) -> bytes:
        """Draw now, on this thread; the placeholder if anything fails."""
        data = paint(pic, self.protocol, self.cell, self.tmux)
        if data is None:
            self.failures += 1
            return fallback(pic)
        return data

    def submit(self, pic: Picture) -> concurrent.futures.Future[bytes]:
        """Draw in the worker; the placeholder at once when too many already wait."""
        out: concurrent.futures.Future[bytes] = concurrent.futures.Future()
        with self._lock:
            if self._queued >= MAX_QUEUED:
                out.set_result(fallback(pic))
                return out
            self._queued += 1

        def done(job: concurrent.futures.Future[Any]) -> None:
            with self._lock:
                self._queued -= 1
            try:
                data = job.result()
            except BaseException:  # the worker died (a new one comes next time), or exit
                data = None
            if data is None:
                self.failures += 1
                data = fallback(pic)
            if not out.done():
                out.set_result(data)

        self._run(paint, pic, self.protocol, self.cell, self.tmux).add_done_callback(done)
        return out

    def live(self, pic: Picture, max_rows: int) -> list[str]:
        """Half-block lines for the live region (redrawn in place by the app).

        The first call starts the rendering and returns the placeholder; once
        ready, ``on_ready`` fires and later calls return the drawing.
        """
        rows = max(1, min(pic.rows, max_rows))
        cols = max(1, min(pic.cols, -(-pic.cols * rows // pic.rows)))
        key = (pic.key, cols, rows)
        with self._lock:
            if key in self._live:
                self._live.move_to_end(key)
                lines = self._live[key]
                return lines if lines is not None else pic.lines()
            self._live[key] = None
            while len(self._live) > 32:
                self._live.popitem(last=False)

        def done(job: concurrent.futures.Future[Any]) -> None:
            try:
                lines = job.result()
            except BaseException:
                lines = None
            if lines is None:
                self.failures += 1
                lines = pic.lines()
            with self._lock:
                if key in self._live:
                    self._live[key] = lines
                self.version += 1
            if self.on_ready is not None:
                self.on_ready()

        self._run(paint_live, pic, cols, rows).add_done_callback(done)
        return pic.lines()

    def abandon(self) -> None:
        """A picture took too long (a hostile SVG?): stop its worker; the next gets a new one.

        A running job cannot be cancelled; killing the worker process is the only
        way (through ``_processes``, the pool's own table: no public API for it).
        """
        pool, self._pool = self._pool, None
        if isinstance(pool, concurrent.futures.ProcessPoolExecutor):
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Drop what waits; the worker ends after the picture it is drawing (if any)."""
        self._jobs.put(None)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
