"""Event pieces -> terminal lines.  Pure: returns strings, never prints.

Everything a frontend shows goes through one :class:`Renderer`, so the console,
``watch``, replay and export all draw a cell the same way.  Untrusted text is
sanitised here (colours kept, control sequences dropped) before it is styled.
Heavy libraries (pygments lexers, rich) are imported on first use so start-up
stays fast and plain stream text never touches them.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Mapping
from functools import lru_cache
from itertools import count
from typing import Any

from ipymirror.core.events import Peer
from ipymirror.core.images import (
    MAX_BYTES,
    Picture,
    cell_geometry,
    display_dims,
    human_size,
    image_dims,
    image_summary,
    too_many_pixels,
)
from ipymirror.core.sanitize import sanitize, strip_sgr

__all__ = [
    "MAX_TEXT",
    "RESET",
    "RICH_LIMIT",
    "Line",
    "Renderer",
    "lexer_for",
    "peer_colour",
    "pick_mime",
    "resolve_cr",
    "wrap_cells",
]

#: A line of output, or an image that takes ``rows`` lines (drawn by the terminal layer).
Line = str | Picture

RESET = "\x1b[0m"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"

# 256-colour indices that read well on dark and light backgrounds.
# 16-colour foregrounds (red is left to stderr and errors), so the terminal's
# own theme keeps them readable on dark and light backgrounds.
_PALETTE = (34, 35, 36, 32, 33, 94, 95, 96, 92, 93)
# ``--colors LightBG``: 256-colour foregrounds dark enough to read on white
# (contrast >= 4.5:1 against #ffffff; tests/e2e/test_console_config.py checks it).
_LIGHT_PALETTE = ("38;5;19", "38;5;90", "38;5;23", "38;5;22", "38;5;130", "38;5;54", "38;5;88",
                  "38;5;24", "38;5;94", "38;5;58")  # fmt: skip

#: MIME types a terminal can show, best first.  Images beat their text/plain
#: repr ("<Figure size 640x480>") because the placeholder says more.
MIME_PREFERENCE = (
    "text/markdown",
    "application/json",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/svg+xml",
    "text/plain",
    "text/latex",
    "text/html",
)

#: Above this many characters Markdown and JSON are shown as plain text, and code
#: is not highlighted.  rich and pygments cost 10-70 µs a character (a wide
#: Markdown table is the worst): 2,000 keeps one output under ~50 ms, so the
#: prompt never waits long for a peer's output (measured: tests/test_hostile.py).
RICH_LIMIT = 2_000
HIGHLIGHT_LIMIT = 5_000
#: Characters of one text shown (stream message, traceback, plain/JSON value);
#: the middle of a larger one is elided with a notice saying how much.
MAX_TEXT = 8 * 1024 * 1024


def _last_segment(line: str) -> str:
    r"""What a terminal shows for a line rewritten with ``\r``: its last write."""
    for segment in reversed(line.split("\r")):
        if segment:
            return segment
    return ""


def resolve_cr(text: str) -> str:
    """Collapse carriage-return rewrites line by line (``\\r\\n`` is a newline).

    A trailing ``\\r`` is kept: the next write starts at column 0 again
    (``print(i, end="\\r")`` progress), unless it is a ``\\n``.
    """
    if "\r" not in text:
        return text
    text = text.replace("\r\n", "\n")
    if "\r" not in text:
        return text
    out = "\n".join(_last_segment(line) for line in text.split("\n"))
    return out + "\r" if text.endswith("\r") else out


#: Kernels other than Python's give text/plain as their console prints it (R's
#: ``[1] 42``) beside a Markdown/HTML/LaTeX rendering that loses it: for them
#: text/plain comes right after images.
PLAIN_FIRST = (
    *(m for m in MIME_PREFERENCE if m.startswith("image/")),
    "text/plain",
    *(m for m in MIME_PREFERENCE if not m.startswith("image/") and m != "text/plain"),
)
_PYTHON_LEXERS = frozenset({"", "python", "python3", "python2", "ipython", "ipython3", "ipython2"})


_SGR_AT = re.compile(r"\x1b\[[0-9;:]*m")


def wrap_cells(line: str, width: int) -> list[str]:
    """``line`` cut into rows of at most ``width`` terminal cells (wide characters
    count two, colour sequences none), so a gutter can start every row.

    A colour active at a cut is closed at the row's end and opened again on the
    next row.  Tabs are expanded first (their width depends on the column).
    """
    if len(line) <= width and (line.isascii() or len(line) * 2 <= width):
        return [line]
    if "\t" in line:
        line = line.expandtabs(8)
    from wcwidth import wcwidth

    rows: list[str] = []
    row: list[str] = []
    used = 0
    active: list[str] = []  # SGR sequences since the last reset
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch == "\x1b":
            m = _SGR_AT.match(line, i)
            if m is not None:
                seq = m.group()
                row.append(seq)
                active = [] if seq in ("\x1b[0m", "\x1b[m") else [*active, seq]
                i = m.end()
                continue
        w = wcwidth(ch)
        w = 0 if w < 0 else w
        if used + w > width and used > 0:
            rows.append("".join(row) + (RESET if active else ""))
            row, used = list(active), 0
        row.append(ch)
        used += w
        i += 1
    rows.append("".join(row))
    return rows


def pick_mime(data: Mapping[str, Any], plain_first: bool = False) -> str | None:
    """The MIME type of ``data`` to show in a terminal, or None if nothing fits."""
    for mime in PLAIN_FIRST if plain_first else MIME_PREFERENCE:
        if mime in data:
            return mime
    return next((m for m in data if isinstance(m, str)), None)


# IPython's lexers are pygments *plugins*: finding them scans every installed
# package's entry points and imports IPython (~0.2 s).  Pygments' own Python
# lexer highlights the same code.
_BUILTIN_ALIAS = {"ipython3": "python3", "ipython": "python", "ipython2": "python2"}


@lru_cache(maxsize=16)
def lexer_for(name: str) -> Any:
    """The pygments lexer for a kernel's ``language_info`` name, or None (plain)."""
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    name = _BUILTIN_ALIAS.get(name.lower(), name.lower())
    try:
        return get_lexer_by_name(name) if name else None
    except ClassNotFound:
        return None


def peer_colour(peer: Peer) -> int:
    """The SGR foreground code of a peer's stable colour (terminal and HTML alike)."""
    return _PALETTE[zlib.crc32(peer.session.encode()) % len(_PALETTE)]


class Renderer:
    """Turns code, MIME bundles, tracebacks into lists of terminal lines.

    ``width`` is the usable width for rich layouts; ``color`` False gives plain
    text (``--no-color``, ``NO_COLOR``, or a pipe).  ``images`` are the MIME
    types the terminal layer can draw (none: every image is its placeholder
    line); they take at most ``image_rows`` rows of cells of ``cell`` pixels.
    """

    def __init__(
        self,
        *,
        width: int = 80,
        color: bool = True,
        language: str = "",
        light: bool = False,
        images: frozenset[str] = frozenset(),
        image_rows: int = 20,
        cell: tuple[int, int] = (10, 20),
    ) -> None:
        self.width = max(20, width)
        self.color = color
        self.language = language
        self.light = light  # a light background: peer colours from the dark palette
        self.images = images
        self.image_rows = image_rows
        self.cell = cell
        self._keys = count(1)

    # -- styling helpers ---------------------------------------------------
    def paint(self, sgr: str, text: str) -> str:
        return f"{sgr}{text}{RESET}" if self.color else text

    def clean(self, text: str, *, stream: bool = False) -> str:
        """Sanitise untrusted text; drop colours too when colour is off.

        Carriage returns are resolved here (a ``\\r`` reaching the terminal
        could overwrite a gutter or a label), except in stream text, whose
        ``\\r`` the transcript resolves across messages.
        """
        if not stream and len(text) > MAX_TEXT:
            text = self.elide(text)
        text = sanitize(text)
        if not stream and "\r" in text:
            text = resolve_cr(text).rstrip("\r")
        return text if self.color else strip_sgr(text)

    def elide(self, text: str, limit: int = MAX_TEXT) -> str:
        """Keep the head and tail of one giant text; a notice line says what was cut."""
        if len(text) <= limit:
            return text
        half = limit // 2
        head_end = text.rfind("\n", 0, half) + 1 or half
        tail_start = text.find("\n", len(text) - half) + 1 or len(text) - half
        middle = text[head_end:tail_start]
        note = self.notice(
            f"… {middle.count(chr(10)):,} lines ({len(middle) / 2**20:.1f} MB) of one message "
            "not shown"
        )
        return f"{text[:head_end]}{note}\n{text[tail_start:]}"

    def peer_sgr(self, peer: Peer) -> str:
        if self.light:  # a light background: darker colours of their own
            code = _LIGHT_PALETTE[zlib.crc32(peer.session.encode()) % len(_LIGHT_PALETTE)]
            return f"\x1b[{code}m"
        return f"\x1b[{peer_colour(peer)}m"

    def gutter(self, peer: Peer, stderr: bool = False) -> str:
        """The left margin that marks a peer's lines.

        Uncoloured on purpose: it is on every line of a 2,000,000-line flood,
        and the peer's colour is already on the header above (a new header
        comes whenever another peer's output interleaves).
        """
        return "┆ " if stderr and not self.color else "│ "

    def header(self, peer: Peer, count: int | None, cont: bool = False) -> str:
        label = self.clean(peer.label)
        text = f"┌ {label}"
        if count is not None:
            text += f"  In [{count}]"
        if cont:
            text += " …"
        return self.paint(self.peer_sgr(peer) + _BOLD, text)

    def own_header(self, count: int | None) -> str:
        """Your own cell's context again, when its output resumes below another's."""
        return self.paint(_GREEN, f"In [{count if count is not None else ' '}] …")

    def out_prompt(self, count: int | None) -> str:
        return self.paint(_RED, f"Out[{count if count is not None else ' '}]: ")

    def stderr_sgr(self) -> str:
        return _RED if self.color else ""

    def notice(self, text: str) -> str:
        """A line ipymirror itself says (restart, elided output...)."""
        return self.paint(_DIM, f"» {strip_sgr(self.clean(text))}")  # may quote a peer

    # -- content -----------------------------------------------------------
    def code(self, code: str) -> list[str]:
        # Colour codes inside source are not colours to keep: the lexer would
        # turn their ESC into an error token and leave "[1m" visible.
        code = strip_sgr(self.clean(code)).rstrip("\n")
        lexer = lexer_for(self.language) if self.color else None
        if lexer is None or len(code) > HIGHLIGHT_LIMIT:
            return code.split("\n")
        from pygments import highlight
        from pygments.formatters import TerminalFormatter

        return highlight(code, lexer, TerminalFormatter()).rstrip("\n").split("\n")

    def result(self, data: Mapping[str, Any], count: int | None) -> list[str]:
        """An ``execute_result``: ``Out[n]: value``, the prompt alone on its line if multi-line."""
        lines = self.mime(data)
        if not lines:
            return []
        prompt = self.out_prompt(count)
        return [prompt + lines[0]] if len(lines) == 1 else [prompt, *lines]

    def picture(self, data: Mapping[str, Any], metadata: Mapping[str, Any]) -> Picture | None:
        """The image of ``data`` to draw, sized in cells; None: text (or its placeholder)."""
        mime = pick_mime(data)
        if mime is None or mime not in self.images:
            return None
        value = data[mime]
        if not isinstance(value, str) or len(value) > MAX_BYTES:
            return None
        dims = image_dims(mime, value)
        if dims is None or dims[0] < 1 or dims[1] < 1 or too_many_pixels(mime, dims):
            return None
        shown = display_dims(mime, dims, metadata)
        cols, rows = cell_geometry(
            *shown, max_cols=self.width, max_rows=self.image_rows, cell=self.cell
        )
        fallback = self.paint(_DIM, self.clean(image_summary(mime, value, metadata)))
        return Picture(next(self._keys), mime, value, dims[0], dims[1], cols, rows, fallback)

    def display(self, data: Mapping[str, Any], metadata: Mapping[str, Any]) -> list[Line]:
        """A ``display_data``: its picture if it has one to draw, else its text lines."""
        pic = self.picture(data, metadata)
        return [pic] if pic is not None else list(self.mime(data, metadata))

    def result_lines(
        self, data: Mapping[str, Any], metadata: Mapping[str, Any], count: int | None
    ) -> list[Line]:
        """An ``execute_result`` with its picture below ``Out[n]:`` when it has one."""
        pic = self.picture(data, metadata)
        if pic is None:
            return list(self.result(data, count))
        return [self.out_prompt(count), pic]

    def traceback(self, ename: str, evalue: str, traceback: tuple[str, ...]) -> list[str]:
        text = "\n".join(traceback) if traceback else f"{ename}: {evalue}" if evalue else ename
        return self.clean(text).rstrip("\n").split("\n")

    def mime(self, data: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> list[str]:
        mime = pick_mime(data, self.language.lower() not in _PYTHON_LEXERS)
        if mime is None:
            return []
        value = data[mime]
        if mime.startswith("image/"):
            return [self.paint(_DIM, self.clean(image_summary(mime, value, metadata or {})))]
        if mime == "application/json":
            return self._json(value)
        if isinstance(value, list):
            value = "".join(v for v in value if isinstance(v, str))
        text = value if isinstance(value, str) else str(value)
        if mime == "text/markdown" and len(text) <= RICH_LIMIT:
            return self._markdown(text)
        if mime not in ("text/plain", "text/markdown", "text/latex"):
            kinds = self.clean(", ".join(str(m) for m in data))
            return [self.paint(_DIM, f"[{kinds}: {human_size(len(text))}, no text form]")]
        return self.clean(text).rstrip("\n").split("\n")

    def _rich(self, renderable: Any) -> list[str]:
        from rich.console import Console

        buf = io.StringIO()
        console = Console(
            file=buf,
            width=self.width,
            force_terminal=self.color,
            no_color=not self.color,
            color_system="256" if self.color else None,
            highlight=False,
            emoji=False,
            markup=False,
        )
        console.print(renderable)
        # Sanitised again: Markdown decodes entities (``&#x202E;`` is a bidi
        # override) and JSON its escapes, after the input was sanitised.
        return sanitize(buf.getvalue()).rstrip("\n").split("\n")

    def _markdown(self, text: str) -> list[str]:
        from rich.markdown import Markdown

        return self._rich(Markdown(strip_sgr(sanitize(text)), hyperlinks=False))

    def _json(self, value: Any) -> list[str]:
        import json

        try:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        except (TypeError, ValueError, RecursionError):
            try:
                text = repr(value)
            except RecursionError:  # valid JSON, nested deeper than Python recurses
                return [self.paint(_DIM, "[application/json: nested too deeply to show]")]
        if len(text) > RICH_LIMIT or not self.color:
            return self.clean(text).split("\n")
        from rich.json import JSON

        try:  # sanitising can break the JSON (a C1 control inside a string starts an OSC)
            renderable = JSON(strip_sgr(sanitize(text)))
        except ValueError:
            return self.clean(text).split("\n")
        return self._rich(renderable)
