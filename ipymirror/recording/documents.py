"""A recording as documents: Markdown, HTML, and the terminal (asciicast).

Markdown and HTML are the notebook cells (:mod:`ipymirror.recording.notebook`);
HTML drawn by :class:`~ipymirror.core.html.HtmlRenderer`, the renderer of the
``share --web`` page.  The asciicast is the transcript exactly as ``watch`` and
``replay`` draw it -- same :class:`~ipymirror.core.transcript.Transcript` and
:class:`~ipymirror.core.render.Renderer`, colours on.  What reaches a terminal
is sanitised (Markdown goes to stdout).
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ipymirror.core.cells import Cell
from ipymirror.core.html import HtmlRenderer
from ipymirror.core.protocol import to_event
from ipymirror.core.render import Renderer, pick_mime, resolve_cr
from ipymirror.core.sanitize import sanitize, strip_sgr
from ipymirror.core.transcript import Transcript
from ipymirror.recording.format import Header, Record
from ipymirror.recording.notebook import Problems

__all__ = ["IMAGE_FILES", "to_asciicast", "to_html", "to_markdown", "transcript_text"]

WIDTH, HEIGHT = 100, 30  # the terminal an asciicast / HTML page is drawn for
FRAME = 1 / 30  # records this close together form one asciicast frame


def _fence(text: str, lang: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text.rstrip(chr(10))}\n{ticks}"


def _output_text(out: Mapping[str, Any], r: Renderer) -> str:
    kind = out.get("output_type")
    if kind == "stream":
        return r.clean(out.get("text", ""))  # sanitised, \r rewrites resolved
    if kind == "error":
        return "\n".join(r.traceback(out["ename"], out["evalue"], tuple(out["traceback"])))
    if kind == "execute_result":
        return "\n".join(r.result(out.get("data", {}), out.get("execution_count")))
    return "\n".join(r.mime(out.get("data", {}), out.get("metadata", {})))


def _terminal_safe(text: str) -> str:
    """Text for a terminal (Markdown goes to stdout): sanitised, no colour, no ``\\r``,
    and encodable (lone surrogates, which recordings keep, as U+FFFD)."""
    return _SURROGATE.sub("\ufffd", resolve_cr(strip_sgr(sanitize(text))))


_SURROGATE = re.compile("[\ud800-\udfff]")
IMAGE_FILES = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/svg+xml": ".svg",
}


def _image_file(out: Mapping[str, Any]) -> tuple[str, bytes] | None:
    """(MIME type, file content) of an image output; None for other outputs or bad data."""
    if out.get("output_type") not in ("display_data", "execute_result"):
        return None
    data = out.get("data") or {}
    mime = pick_mime(data)
    if mime is None or mime not in IMAGE_FILES or not isinstance(data.get(mime), str):
        return None
    value = data[mime]
    if mime == "image/svg+xml":
        return mime, value.encode("utf-8")
    try:
        return mime, base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def to_markdown(
    header: Header, cells: list[Cell], files: dict[str, bytes] | None = None, folder: str = ""
) -> str:
    """Code blocks and output blocks, for pasting into an issue.

    With ``files`` (a dict to fill), images become files ``folder/output_C_O.ext``
    (cell C, output O, as nbconvert names them) linked from the text; without,
    each image is its placeholder line.
    """
    r = Renderer(width=WIDTH, color=False, language=header.lexer)
    parts = [f"Recorded with ipymirror from a {header.describe()}, {header.started}."]
    for c, cell in enumerate(cells):
        count = cell.execution_count if cell.execution_count is not None else " "
        parts.append(f"**{r.clean(cell.peer.label)}** · In [{count}]")
        parts.append(_fence(cell.code, header.language))
        texts: list[str] = []
        for o, out in enumerate(cell.outputs):
            image = _image_file(out) if files is not None else None
            if image is None:
                texts.append(_output_text(out, r))
                continue
            _text_block(parts, texts)
            name = posixpath.join(folder, f"output_{c}_{o}{IMAGE_FILES[image[0]]}")
            if files is not None:
                files[name] = image[1]
            parts.append(f"![{image[0]}]({urllib.parse.quote(name)})")
        _text_block(parts, texts)
    return _terminal_safe("\n\n".join(parts) + "\n")


def _text_block(parts: list[str], texts: list[str]) -> None:
    """Fence the text outputs collected so far (consecutive outputs share a block)."""
    text = "\n".join(t.rstrip("\n") for t in texts if t)
    if text.strip():
        parts.append(_fence(text))
    texts.clear()


def _feed(
    transcript: Transcript, records: Iterable[Record], problems: Problems | None = None
) -> None:
    for record in records:
        ev = to_event(record.msg)
        if ev is None:
            continue
        try:
            transcript.feed(ev)
        except Exception as exc:  # one odd message never ends the export
            if problems is None:
                raise
            problems.add(problems.line(), f"a {record.msg_type} that cannot be drawn ({exc!r})")


def transcript_text(header: Header, records: Iterable[Record], *, width: int = WIDTH) -> str:
    """The whole session as the terminal shows it, colours included."""
    transcript = Transcript(Renderer(width=width - 2, color=True, language=header.lexer))
    _feed(transcript, records)
    transcript.finish_all()
    return "".join(transcript.take())


def to_html(header: Header, cells: list[Cell]) -> str:
    """A self-contained page that looks like the notebook (the page ``share --web`` draws).

    Same HTML renderer as the live page: images embedded as ``data:`` URIs,
    Markdown and HTML outputs rendered and sanitised, no script at all.
    """
    r = HtmlRenderer(header.lexer)
    title = f"ipymirror session: {header.describe()}, {header.started}"
    intro = r.notice(f"recorded with ipymirror from a {header.describe()}, {header.started}")
    body = "\n".join([intro, *(r.cell(cell, f"c{n}") for n, cell in enumerate(cells, 1))])
    return r.document(title, body)


def _rows(lines: list[str], width: int) -> int:
    """Terminal rows that ``lines`` take up (long lines wrap)."""
    from rich.cells import cell_len

    return sum(max(1, -(-cell_len(strip_sgr(line)) // width)) for line in lines)


def to_asciicast(
    header: Header,
    records: Iterable[Record],
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
    problems: Problems | None = None,
) -> Iterator[str]:
    """asciicast v2 lines: a header, then ``[t, "o", text]`` frames as the terminal drew them.

    Committed lines scroll up; the live region (progress bars) is drawn below
    them and redrawn in place, as ``watch`` does.
    """
    started = header.started_at
    meta: dict[str, Any] = {"version": 2, "width": width, "height": height}
    if started is not None:
        meta["timestamp"] = int(started.timestamp())
    meta["title"] = f"ipymirror: {header.describe()}"
    meta["env"] = {"TERM": "xterm-256color"}
    yield json.dumps(meta, ensure_ascii=False)
    transcript = Transcript(Renderer(width=width - 2, color=True, language=header.lexer))
    shown = 0  # rows of live region on screen, cursor on its last row
    version = transcript.version

    def frame(end: bool = False) -> str:
        nonlocal shown, version
        committed = "".join(transcript.take())
        if not committed and transcript.version == version and not end:
            return ""  # nothing new to draw
        version = transcript.version
        out = ""
        if shown:
            out += "\r" + (f"\x1b[{shown - 1}A" if shown > 1 else "") + "\x1b[J"
        out += committed
        live = [] if end else transcript.live()[-(height - 1) :]
        shown = _rows(live, width)
        out += "\n".join(live)
        return out.replace("\n", "\r\n")

    start: float | None = None
    for record in records:
        if start is not None and record.t > start + FRAME:
            if text := frame():
                yield json.dumps([round(start, 6), "o", text], ensure_ascii=False)
            start = None
        if start is None:
            start = record.t
        _feed(transcript, [record], problems)
    transcript.finish_all()
    if text := frame(end=True):
        yield json.dumps([round(start or 0.0, 6), "o", text], ensure_ascii=False)
