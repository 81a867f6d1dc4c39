"""Cells -> HTML fragments: the one HTML renderer (``share --web`` and the HTML export).

Pure: returns strings.  It makes the same choices as the terminal's
:class:`~ipymirror.core.render.Renderer` — the lexer (``lexer_for``), the
header, ``Out[n]`` and status texts (rendered by the Renderer, then turned
from ANSI into HTML), sanitising and ``\\r`` resolution — and adds what a
browser can show: images, Markdown and HTML.

Rules it keeps (a peer's output is hostile input):

* Peer text is escaped; only HTML and Markdown outputs carry markup, and those
  go through an allow-list sanitiser (nh3): no scripts, styles, forms, frames,
  event handlers, ids or classes; links only ``http``/``https``/``mailto``;
  ``<img>`` only with a ``data:`` URI of a raster image.  Nothing in an output
  can load from elsewhere (the page's Content-Security-Policy backs this up).
* Colours are classes, never inline styles (that CSP forbids them): SGR
  colours map to ``f0..f255`` / ``g0..g255`` (true colour is downsampled).
* Everything is capped: a stream output shows its last ``MAX_STREAM`` chars,
  rich types over ``MAX_RICH`` fall back to text, images over ``MAX_IMAGE``
  to the terminal's placeholder line.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ipymirror.core.cells import Cell
from ipymirror.core.events import Peer
from ipymirror.core.images import image_summary
from ipymirror.core.presence import Presence
from ipymirror.core.render import Renderer, lexer_for, peer_colour, resolve_cr
from ipymirror.core.sanitize import sanitize, strip_sgr
from ipymirror.core.status import status_line

__all__ = [
    "CSP",
    "HTML_PREFERENCE",
    "HtmlRenderer",
    "ansi_html",
    "css",
    "sanitize_html",
    "split_stream",
]

#: The page's Content-Security-Policy (also a <meta> in exported files).
CSP = "default-src 'self'; img-src 'self' data:"

#: MIME types a browser shows, best first (a notebook's order).
HTML_PREFERENCE = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/svg+xml",
    "text/html",
    "text/markdown",
    "application/json",
    "text/latex",
    "text/plain",
)
_EXPORT_CSP = CSP + "; style-src 'unsafe-inline'"  # a file has its stylesheet inline
MAX_STREAM = 256 * 1024  # characters of one stream output shown (its end)
MAX_RICH = 1024 * 1024  # HTML / Markdown larger than this is shown as text
MAX_IMAGE = 16 * 1024 * 1024  # base64 characters of one image
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
_RASTER = ("image/png", "image/jpeg", "image/gif", "image/webp")

# -- the sanitiser ------------------------------------------------------------

_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
    "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp",
    "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
    "thead", "tr", "tt", "u", "ul", "var",
}  # fmt: skip
_ATTRIBUTES = {
    "*": {"title", "lang", "align"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
}
_DROP_WITH_CONTENT = {"script", "style", "template", "noscript", "iframe", "object", "svg", "math"}
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*", re.I)


def _attribute(tag: str, name: str, value: str) -> str | None:
    """nh3's attribute filter: what the URL schemes alone do not rule out."""
    if tag == "img" and name == "src":
        return value if _DATA_IMAGE.fullmatch(value) else None  # never a load from elsewhere
    if tag == "a" and name == "href":  # not even "#…": the page's fragment is its secret
        low = value.strip().lower()
        return value if low.startswith(("http:", "https:", "mailto:")) else None
    if name in ("width", "height", "colspan", "rowspan", "start"):
        return value if value.isdigit() and len(value) < 6 else None
    return value


def sanitize_html(text: str) -> str:
    """Untrusted HTML -> HTML with only the allow-listed tags and attributes."""
    import nh3

    return nh3.clean(
        text,
        tags=_TAGS,
        clean_content_tags=_DROP_WITH_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute,
        url_schemes={"http", "https", "mailto", "data"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


@lru_cache(maxsize=1)
def _markdown_parser() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


# -- ANSI colours -> classes ---------------------------------------------------


def _colour_class(prefix: str, color: Any) -> str:
    from rich.color import ColorSystem, ColorType

    if color is None or color.type == ColorType.DEFAULT:
        return ""
    if color.type == ColorType.TRUECOLOR:
        color = color.downgrade(ColorSystem.EIGHT_BIT)
    return f"{prefix}{color.number}" if color.number is not None else ""


def _classes(style: Any) -> str:
    fg, bg = _colour_class("f", style.color), _colour_class("g", style.bgcolor)
    if style.reverse:
        fg, bg = (("f" + bg[1:]) if bg else "fr"), (("g" + fg[1:]) if fg else "gr")
    flags = [("sb", style.bold), ("sd", style.dim), ("si", style.italic)]
    flags += [("su", style.underline), ("ss", style.strike)]
    return " ".join([c for c in (fg, bg) if c] + [name for name, on in flags if on])


def ansi_html(text: str) -> str:
    """Sanitised text with SGR colours -> escaped HTML with class spans."""
    if "\x1b" not in text:
        return html.escape(text, quote=False)
    from rich.text import Text

    rich_text = Text.from_ansi(text)
    plain, out, at = rich_text.plain, [], 0
    for span in sorted(rich_text.spans, key=lambda s: s.start):
        if span.start < at:
            continue  # from_ansi's spans do not overlap; be safe if they ever do
        out.append(html.escape(plain[at : span.start], quote=False))
        piece = html.escape(plain[span.start : span.end], quote=False)
        style = span.style
        classes = _classes(style) if not isinstance(style, str) else ""
        out.append(f'<span class="{classes}">{piece}</span>' if classes else piece)
        at = span.end
    out.append(html.escape(plain[at:], quote=False))
    return "".join(out)


# -- the renderer --------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else str(value)


class HtmlRenderer:
    """Cells, outputs and the status line as HTML, for one kernel language."""

    def __init__(self, language: str = "") -> None:
        self.language = language
        self.r = Renderer(width=100, color=True, language=language)

    # -- pieces -----------------------------------------------------------
    def ansi(self, text: str) -> str:
        """Untrusted terminal text (colours kept, ``\\r`` resolved) as HTML."""
        return ansi_html(self.r.clean(text))

    def header(self, peer: Peer, count: int | None) -> str:
        return ansi_html(self.r.header(peer, count))

    def code(self, code: str) -> str:
        code = strip_sgr(self.r.clean(code)).rstrip("\n")
        lexer = lexer_for(self.language)
        if lexer is None or len(code) > MAX_RICH:
            return html.escape(code, quote=False)
        from pygments import highlight
        from pygments.formatters import HtmlFormatter

        return str(highlight(code, lexer, HtmlFormatter(nowrap=True))).rstrip("\n")

    def stream_text(self, text: str) -> str:
        """A stream's text (whole lines, or the unfinished last one) as HTML."""
        return ansi_html(resolve_cr(sanitize(text)).rstrip("\r"))

    def status(self, presence: Presence, extra: str = "") -> str:
        line = status_line(presence, self.r)
        return ansi_html(line + (f" │ {self.r.clean(extra)}" if extra else ""))

    # -- outputs ----------------------------------------------------------
    def mime(self, data: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> str:
        """The best MIME type of a bundle for a browser, as HTML."""
        mime = next((m for m in HTML_PREFERENCE if m in data), None)
        if mime is None:
            kinds = ", ".join(str(m) for m in data)
            return f'<pre class="note">{html.escape(f"[{kinds}: no form to show]")}</pre>'
        value, metadata = data[mime], metadata or {}
        if mime.startswith("image/"):
            return self._image(mime, value, metadata)
        text = _text(value) if mime != "application/json" else ""
        if mime == "text/html" and len(text) <= MAX_RICH:
            return f'<div class="html">{sanitize_html(text)}</div>'
        if mime == "text/markdown" and len(text) <= MAX_RICH:
            rendered = _markdown_parser().render(strip_sgr(sanitize(text)))
            return f'<div class="md">{sanitize_html(rendered)}</div>'
        if mime == "application/json":
            try:
                text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
            except (TypeError, ValueError, RecursionError):
                text = repr(value)
        return f"<pre>{self.ansi(text.rstrip(chr(10)))}</pre>"

    def _image(self, mime: str, value: Any, metadata: Mapping[str, Any]) -> str:
        raw = _text(value)
        if mime == "image/svg+xml":  # in an <img>, an SVG's scripts never run
            b64 = base64.b64encode(raw.encode("utf-8", "replace")).decode("ascii")
        else:
            b64 = "".join(raw.split())
        summary = image_summary(mime, value, metadata)
        if (
            len(b64) > MAX_IMAGE
            or not _B64.fullmatch(b64)
            or (mime not in _RASTER and mime != "image/svg+xml")
        ):
            return f'<pre class="note">{html.escape(self.r.clean(summary))}</pre>'
        size = ""
        meta = metadata.get(mime) if isinstance(metadata, Mapping) else None
        for key in ("width", "height"):
            n = meta.get(key) if isinstance(meta, Mapping) else None
            if isinstance(n, int) and not isinstance(n, bool) and 0 < n < 100_000:
                size += f' {key}="{n}"'
        alt = html.escape(self.r.clean(summary))
        return f'<img src="data:{mime};base64,{b64}" alt="{alt}"{size}>'

    def output(self, out: Mapping[str, Any], oid: str) -> str:
        """One nbformat output dict as an element with id ``oid``."""
        kind = out.get("output_type")
        if kind == "stream":
            name = "stderr" if out.get("name") == "stderr" else "stdout"
            done, tail = split_stream(_text(out.get("text", "")))
            cut = max(0, len(done) - MAX_STREAM)
            note = ""
            if cut:
                start = done.find("\n", cut) + 1 or cut
                note = f'<span class="note">… {start:,} earlier characters not shown\n</span>'
                done = done[start:]
            return (
                f'<pre class="o stream {name}" id="{oid}">{note}<span class="d">'
                f'{self.stream_text(done)}</span><span class="t">{self.stream_text(tail)}'
                "</span></pre>"
            )
        if kind == "error":
            tb = self.r.traceback(
                _text(out.get("ename", "")),
                _text(out.get("evalue", "")),
                tuple(_text(x) for x in out.get("traceback") or ()),
            )
            return f'<pre class="o error" id="{oid}">{ansi_html(chr(10).join(tb))}</pre>'
        data = out.get("data") if isinstance(out.get("data"), Mapping) else {}
        meta = out.get("metadata") if isinstance(out.get("metadata"), Mapping) else {}
        body = self.mime(data or {}, meta)
        if kind == "execute_result":
            count = out.get("execution_count")
            prompt = ansi_html(self.r.out_prompt(count if isinstance(count, int) else None))
            head = f'<div class="o result" id="{oid}"><pre class="prompt">{prompt}</pre>'
            return f"{head}{body}</div>"
        return f'<div class="o display" id="{oid}">{body}</div>'

    def outputs(self, cell: Cell, cid: str) -> str:
        html_outs = [self.output(out, f"{cid}-{i}") for i, out in enumerate(cell.outputs)]
        notes = []
        if cell.dropped:
            notes.append(f"… {cell.dropped:,} more outputs not kept")
        if cell.dropped_chars:
            notes.append(f"… {cell.dropped_chars:,} more characters of output not kept")
        html_outs += [f'<pre class="note">{html.escape(note)}</pre>' for note in notes]
        return "".join(html_outs)

    def cell(self, cell: Cell, cid: str) -> str:
        """A whole cell: header in the peer's colour, highlighted code, outputs."""
        return (
            f'<section class="cell pc{peer_colour(cell.peer)}" id="{cid}">'
            f'<pre class="head">{self.header(cell.peer, cell.execution_count)}</pre>'
            f'<pre class="code">{self.code(cell.code)}</pre>'
            f'<div class="outs" id="{cid}-outs">{self.outputs(cell, cid)}</div></section>'
        )

    def notice(self, text: str) -> str:
        return f'<pre class="notice">{ansi_html(strip_sgr(self.r.notice(text)))}</pre>'

    def document(self, title: str, body: str) -> str:
        """A self-contained page (the HTML export): inline CSS, a CSP, no script."""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{_EXPORT_CSP}">\n'
            f"<title>{html.escape(title)}</title>\n<style>\n{css()}</style></head>\n"
            f'<body><main id="transcript">\n{body}\n</main></body></html>\n'
        )


def split_stream(text: str) -> tuple[str, str]:
    """(whole lines, the unfinished last line): only the latter can still change."""
    cut = text.rfind("\n") + 1
    return text[:cut], text[cut:]


# -- the stylesheet ------------------------------------------------------------


@lru_cache(maxsize=1)
def css() -> str:
    """The page's stylesheet: layout, the 256 terminal colours, pygments' classes."""
    from pygments.formatters import HtmlFormatter
    from rich.color import Color
    from rich.terminal_theme import MONOKAI

    def hexa(n: int) -> str:
        return Color.from_ansi(n).get_truecolor(MONOKAI).hex

    fg, bg = MONOKAI.foreground_color.hex, MONOKAI.background_color.hex
    rules = [_LAYOUT.replace("FG", fg).replace("BG", bg)]
    rules += [f".f{n}{{color:{hexa(n)}}}.g{n}{{background:{hexa(n)}}}" for n in range(256)]
    rules.append(f".fr{{color:{bg}}}.gr{{background:{fg}}}")
    for code in range(30, 38):
        rules.append(f".pc{code}{{border-color:{hexa(code - 30)}}}")
    for code in range(90, 98):
        rules.append(f".pc{code}{{border-color:{hexa(code - 90 + 8)}}}")
    rules.append(HtmlFormatter(style="monokai").get_style_defs(".code"))  # type: ignore[no-untyped-call]
    return "\n".join(rules) + "\n"


_LAYOUT = """
html,body{margin:0;background:BG;color:FG}
body{font:14px/1.35 ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace}
main{padding:8px 12px 64px}
pre{margin:0;white-space:pre-wrap;word-break:break-word;font:inherit}
.cell{border-left:3px solid #666;margin:10px 0;padding:2px 0 2px 10px}
.head{font-weight:bold}
.code{background:none;margin:2px 0}
.o{margin:2px 0}
.stderr{color:#f4005f}
.result{display:flex;gap:.5em;align-items:flex-start}
.note,.notice{opacity:.7}
.html,.md{font-family:system-ui,sans-serif;background:#f8f8f8;color:#111;padding:4px 8px;
 border-radius:3px;overflow-x:auto;max-width:100%}
.html table,.md table{border-collapse:collapse}
.html td,.html th,.md td,.md th{border:1px solid #bbb;padding:2px 6px}
img{max-width:100%;height:auto;background:#fff}
.sb{font-weight:bold}.sd{opacity:.6}.si{font-style:italic}.su{text-decoration:underline}
.ss{text-decoration:line-through}
#status{position:fixed;left:0;right:0;bottom:0;padding:4px 12px;background:#222;
 border-top:1px solid #444;white-space:pre;overflow:hidden;text-overflow:ellipsis}
#live{position:fixed;right:16px;bottom:36px;display:none;padding:6px 12px;cursor:pointer;
 font:inherit;background:#2a6;color:#fff;border:0;border-radius:14px}
#live.show{display:block}
#conn{position:fixed;top:6px;right:12px;opacity:.7}
"""
