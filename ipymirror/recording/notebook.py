"""A recording as notebook cells, and as an nbformat notebook.

One cell per ``execute_input``, in recorded order, with the outputs whose
parent is that execution -- streams merged, ``clear_output`` and
``update_display_data`` applied as a notebook would (the one reducer,
:class:`~ipymirror.core.cells.CellBuilder`).  Output of executions that never
broadcast their input (silent ones, or cells begun before the recording) has no
cell and is left out.  Nothing is given up for one message: what nbformat
rejects (a lone surrogate, an ``execution_count`` of -1, a missing field) is
left out and counted in :class:`Problems`, which says it once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from ipymirror.core.cells import Cell, CellBuilder
from ipymirror.core.protocol import to_event
from ipymirror.errors import MirrorError
from ipymirror.recording.format import Header, Record

__all__ = ["Problems", "json_safe", "notebook_cells", "to_notebook"]


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


_JSON_UNSAFE = re.compile("[\ud800-\udfff\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def json_safe(text: str) -> str:
    """JSON text with what a terminal must not see, and UTF-8 cannot hold, escaped.

    Such characters can only stand inside JSON strings, where ``\\uXXXX`` means
    the very same character: the document reads back unchanged.
    """
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
