"""``ipymirror export``: a recording as a notebook, an asciicast, HTML or Markdown.

Two views of a recording, both pure functions of its records:

* **cells** (ipynb, Markdown): one cell per ``execute_input``, in recorded
  order, with the outputs whose parent is that execution — streams merged,
  ``clear_output`` and ``update_display_data`` applied as a notebook would.
  Output of executions that never broadcast their input (silent ones, or
  cells begun before the recording) has no cell and is left out.
* **the terminal** (asciicast): the transcript exactly as ``watch``
  and ``replay`` draw it — same :class:`~ipymirror.core.transcript.Transcript`
  and :class:`~ipymirror.core.render.Renderer`, colours on.

HTML is the cells drawn by :class:`~ipymirror.core.html.HtmlRenderer`, the
renderer of the ``share --web`` page: it looks like the notebook.

Export never gives up on a recording for one message: a corrupt line, a
message recorded raw, an output nbformat rejects (a lone surrogate, an
``execution_count`` of -1, a missing field) is left out, and one warning names
the first such line and how many there were (:class:`Problems`).  What reaches
a terminal is sanitised (Markdown), or escaped where JSON allows it (ipynb and
asciicast: lone surrogates, C1 controls and bidi overrides as ``\\uXXXX``,
which reads back as the same text).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import posixpath
import re
import sys
import urllib.parse
from argparse import Namespace
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ipymirror.core.cells import Cell, CellBuilder
from ipymirror.core.html import HtmlRenderer
from ipymirror.core.protocol import to_event
from ipymirror.core.render import Renderer, pick_mime, resolve_cr
from ipymirror.core.sanitize import sanitize, strip_sgr
from ipymirror.core.transcript import Transcript
from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.recording.files import read_recording
from ipymirror.recording.format import Header, Record, iopub
from ipymirror.terminal.writer import output_error

__all__ = [
    "Problems",
    "default_output",
    "notebook_cells",
    "run_export",
    "to_asciicast",
    "to_html",
    "to_markdown",
    "to_notebook",
    "transcript_text",
]

WIDTH, HEIGHT = 100, 30  # the terminal an asciicast / HTML page is drawn for
FRAME = 1 / 30  # records this close together form one asciicast frame
EXTENSIONS = {"ipynb": ".ipynb", "asciicast": ".cast", "html": ".html", "markdown": ".md"}

# ---------------------------------------------------------------------- cells


class Problems:
    """What an export left out, said once: the first line and how many in all.

    ``line`` tells the line number of the record being read (0: unknown);
    ``where`` remembers the line of each cell and output built.
    """

    def __init__(self, path: str = "", line: Callable[[], int] = lambda: 0) -> None:
        self.path = path
        self.line = line
        self.count = 0
        self.first: tuple[int, str] | None = None
        self.where: dict[int, int] = {}  # id(cell or output dict) -> line number

    def add(self, line: int, why: str) -> None:
        self.count += 1
        if self.first is None:
            self.first = (line, why)

    def warning(self) -> str | None:
        if self.first is None:
            return None
        line, why = self.first
        where = f"line {line}: " if line else ""
        more = f" ({self.count:,} left out in all)" if self.count > 1 else ""
        return f"{self.path}: {where}{why}: left out of the export{more}"


def notebook_cells(records: Iterable[Record], problems: Problems | None = None) -> list[Cell]:
    """The recorded executions with their outputs, in recorded order."""
    problems = problems if problems is not None else Problems()
    builder = CellBuilder()
    for record in records:
        if "raw" in record.msg:
            problems.add(problems.line(), f"a {record.msg_type or 'message'} recorded raw")
            continue
        ev = to_event(record.msg)
        if ev is None:
            continue
        cell = builder.feed(record.t, ev)
        if cell is not None:
            line = problems.line()
            problems.where.setdefault(id(cell), line)
            if cell.outputs and id(cell.outputs[-1]) not in problems.where:
                problems.where[id(cell.outputs[-1])] = line
    for cell in builder.cells:
        if cell.dropped or cell.dropped_chars:
            problems.add(problems.where.get(id(cell), 0), "output over a cell's cap")
    return builder.cells


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _outputs(cell: Cell, problems: Problems) -> list[Any]:
    """The cell's outputs nbformat accepts; the others counted in ``problems``."""
    import nbformat
    from nbformat.v4.nbbase import validate

    kept = []
    for out in cell.outputs:
        node = nbformat.from_dict(out)
        line = problems.where.get(id(out), problems.where.get(id(cell), 0))
        if "execution_count" in node and _count(node["execution_count"]) is None:
            if node["execution_count"] is not None:
                problems.add(line, f"execution_count {node['execution_count']!r} (kept as none)")
            node["execution_count"] = None
        try:
            validate(node, "output")
        except nbformat.ValidationError as exc:
            problems.add(line, f"an invalid {out.get('output_type')} output ({exc.message})")
            continue
        kept.append(node)
    return kept


def to_notebook(header: Header, cells: list[Cell], problems: Problems | None = None) -> Any:
    """An nbformat v4 notebook of the cells nbformat accepts; raises MirrorError
    only if the notebook as a whole would not validate."""
    import nbformat
    from nbformat import v4

    problems = problems if problems is not None else Problems()

    nb = v4.new_notebook()
    name = str(header.kernel.get("name") or header.language or "")
    if name:
        nb.metadata["kernelspec"] = {
            "name": name,
            "display_name": name,
            "language": header.language,
        }
    if header.language_info:
        nb.metadata["language_info"] = dict(header.language_info)
    nb.metadata["ipymirror"] = {"recorded": header.started, "version": header.version}
    for cell in cells:
        count = _count(cell.execution_count)
        if count is None and cell.execution_count is not None:
            line = problems.where.get(id(cell), 0)
            problems.add(line, f"execution_count {cell.execution_count!r} (kept as none)")
        nb.cells.append(
            v4.new_code_cell(
                source=cell.code,
                execution_count=count,
                outputs=_outputs(cell, problems),
                metadata={
                    "ipymirror": {
                        "peer": cell.peer.username,
                        "session": cell.peer.session,
                        "t": round(cell.start, 3),
                    }
                },
            )
        )
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        raise MirrorError(f"the notebook would not be valid: {exc.message}") from None
    return nb


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
_JSON_UNSAFE = re.compile("[\ud800-\udfff\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def json_safe(text: str) -> str:
    """JSON text with what a terminal must not see, and UTF-8 cannot hold, escaped.

    Such characters can only stand inside JSON strings, where ``\\uXXXX`` means
    the very same character: the document reads back unchanged.
    """
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


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


# ------------------------------------------------------------------- terminal


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


# -------------------------------------------------------------------- command


def default_output(path: str, fmt: str) -> str:
    """IN with the format's extension: session.ipym(.gz) -> session.ipynb."""
    base = path[:-3] if path.endswith(".gz") else path
    root, _ = os.path.splitext(base)
    return root + EXTENSIONS[fmt]


def _render(
    fmt: str,
    header: Header,
    records: Iterator[Record],
    problems: Problems,
    files: dict[str, bytes] | None = None,
    folder: str = "",
) -> Iterator[str]:
    if fmt == "ipynb":
        import nbformat

        nb = to_notebook(header, notebook_cells(records, problems), problems)
        yield json_safe(nbformat.writes(nb))
    elif fmt == "markdown":
        yield to_markdown(header, notebook_cells(records, problems), files, folder)
    elif fmt == "html":
        yield to_html(header, notebook_cells(records, problems))
    else:
        for line in to_asciicast(header, records, problems=problems):
            yield json_safe(line) + "\n"


def _write_files(where: str, files: Mapping[str, bytes]) -> None:
    """Write ``files`` (relative names chosen by :func:`to_markdown`, never by a peer)."""
    for name, data in files.items():
        path = os.path.join(where, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


async def run_export(args: Namespace) -> ExitStatus:
    out = args.output or default_output(args.input, args.to)
    if out != "-" and os.path.abspath(out) == os.path.abspath(args.input):
        raise MirrorError(f"{out} is the recording itself; choose another -o", ExitStatus.USAGE)
    warnings: list[str] = []
    problems = Problems(args.input)
    header, records = read_recording(args.input, warn=warnings.append, skip=problems.add)
    problems.line = lambda: records.line
    # Markdown to a file: images go to OUT's "name_files/" folder, as nbconvert does.
    files: dict[str, bytes] | None = {} if args.to == "markdown" and out != "-" else None
    folder = os.path.splitext(os.path.basename(out))[0] + "_files"
    with records:  # whole: errors leave no half file
        text = "".join(_render(args.to, header, iopub(records), problems, files, folder))
    if (left_out := problems.warning()) is not None:
        warnings.insert(0, left_out)
    for warning in warnings:
        print(f"ipymirror: warning: {warning}", file=sys.stderr)
    if out == "-":
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except OSError as exc:
            raise output_error(sys.stdout, exc) from None
        return ExitStatus.OK
    try:
        if files:
            _write_files(os.path.dirname(out), files)
        with open(out, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise MirrorError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"wrote {out}" + (f" and {len(files)} images in {folder}/" if files else ""))
    return ExitStatus.OK
