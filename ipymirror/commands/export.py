"""``ipymirror export``: a recording as a notebook, an asciicast, HTML or Markdown.

The conversions are pure functions of the records
(:mod:`ipymirror.recording.notebook`, :mod:`ipymirror.recording.documents`);
this command reads the recording, writes the result whole (an error leaves no
half file), and warns once about what was left out.  ipynb and asciicast escape
what a terminal must not see where JSON allows it (lone surrogates, C1 controls
and bidi overrides as ``\\uXXXX``, which reads back as the same text).
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from collections.abc import Iterator, Mapping

from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.recording.documents import to_asciicast, to_html, to_markdown
from ipymirror.recording.files import read_recording
from ipymirror.recording.format import Header, Record, iopub
from ipymirror.recording.notebook import Problems, json_safe, notebook_cells, to_notebook
from ipymirror.terminal.writer import output_error

__all__ = ["default_output", "run_export"]

EXTENSIONS = {"ipynb": ".ipynb", "asciicast": ".cast", "html": ".html", "markdown": ".md"}


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
