"""Events grouped into cells: the one place that decides which output belongs where.

Export (notebook, Markdown), replay into a kernel and the relay's backlog all
need "the executions, in order, each with its outputs"; they all use
:class:`CellBuilder`.  Rules it keeps (those of a notebook):

* A cell starts at each ``execute_input`` and owns every later event whose
  parent is that request (``Event.cell``).  Output of an execution that never
  broadcast its input (silent, or begun before the recording) has no cell.
* Consecutive writes to one stream merge into one output.
* ``clear_output`` empties the cell now, or (``wait=True``) just before its
  next output arrives.
* ``update_display_data`` changes every output showing that ``display_id``,
  in whichever cell it is.
* Outputs are nbformat v4 output dicts (JSON types only), so a notebook needs
  no conversion.  Caps: at most ``max_outputs`` outputs per cell (later ones
  are counted in ``Cell.dropped``), so a flood cannot grow a cell without bound.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ipymirror.core.events import (
    ClearOutput,
    Display,
    Error,
    Event,
    ExecuteInput,
    Peer,
    Result,
    Stream,
)

__all__ = ["Cell", "CellBuilder", "bundle", "cells_of"]

_JSON_MIME = re.compile(r"^application/(.*\+)?json$")
MAX_OUTPUTS = 10_000


@dataclass
class Cell:
    code: str
    execution_count: int | None
    peer: Peer
    start: float  # time of its execute_input
    end: float  # time of the last event it owns
    outputs: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0
    clear_pending: bool = False


def bundle(data: Mapping[str, Any]) -> dict[str, Any]:
    """A MIME bundle nbformat accepts: JSON types as they are, the rest as text."""
    out: dict[str, Any] = {}
    for mime, value in data.items():
        if not isinstance(mime, str):
            continue
        if _JSON_MIME.match(mime) or isinstance(value, str):
            out[mime] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[mime] = "".join(value)
        else:
            out[mime] = json.dumps(value, default=str)
    return out


class CellBuilder:
    """Feed ``(time, event)`` pairs in arrival order; read :attr:`cells`."""

    def __init__(self, max_outputs: int = MAX_OUTPUTS) -> None:
        self.cells: list[Cell] = []
        self.max_outputs = max_outputs
        self._by_id: dict[str, Cell] = {}
        self._displays: dict[str, list[dict[str, Any]]] = {}  # display_id -> outputs

    def feed(self, t: float, ev: Event) -> Cell | None:
        """Apply one event; returns the cell it belongs to (None: no cell)."""
        if isinstance(ev, ExecuteInput):
            cell = Cell(ev.code, ev.execution_count, ev.peer, t, t)
            self.cells.append(cell)
            self._by_id[ev.cell] = cell
            return cell
        owner = self._by_id.get(ev.cell)
        if owner is None:
            return None
        owner.end = t
        if isinstance(ev, Stream):
            self._add(owner, {"output_type": "stream", "name": ev.name, "text": ev.text})
        elif isinstance(ev, ClearOutput):
            if ev.wait:
                owner.clear_pending = True
            else:
                owner.outputs.clear()
        elif isinstance(ev, Display) and ev.update:
            for out in self._displays.get(ev.display_id or "", []):
                out["data"], out["metadata"] = bundle(ev.data), dict(ev.metadata)
        elif isinstance(ev, Display):
            out = {"output_type": "display_data", "data": bundle(ev.data)}
            out["metadata"] = dict(ev.metadata)
            if self._add(owner, out) and ev.display_id:
                self._displays.setdefault(ev.display_id, []).append(out)
        elif isinstance(ev, Result):
            self._add(
                owner,
                {
                    "output_type": "execute_result",
                    "data": bundle(ev.data),
                    "metadata": dict(ev.metadata),
                    "execution_count": owner.execution_count,
                },
            )
        elif isinstance(ev, Error):
            self._add(
                owner,
                {
                    "output_type": "error",
                    "ename": ev.ename,
                    "evalue": ev.evalue,
                    "traceback": list(ev.traceback),
                },
            )
        return owner

    def keep_last(self, n: int) -> list[Cell]:
        """Forget all but the last ``n`` cells (a live view's bound); returns the forgotten."""
        if len(self.cells) <= n:
            return []
        gone, self.cells = self.cells[: len(self.cells) - n], self.cells[len(self.cells) - n :]
        kept = {id(c) for c in self.cells}
        self._by_id = {k: c for k, c in self._by_id.items() if id(c) in kept}
        outs = {id(o) for c in self.cells for o in c.outputs}
        self._displays = {
            k: live for k, v in self._displays.items() if (live := [o for o in v if id(o) in outs])
        }
        return gone

    def _add(self, cell: Cell, out: dict[str, Any]) -> bool:
        if cell.clear_pending:
            cell.outputs.clear()
            cell.clear_pending = False
        last = cell.outputs[-1] if cell.outputs else None
        if (
            out["output_type"] == "stream"
            and last is not None
            and last["output_type"] == "stream"
            and last["name"] == out["name"]
        ):
            last["text"] += out["text"]  # merged, as a notebook shows consecutive writes
            return True
        if len(cell.outputs) >= self.max_outputs:
            cell.dropped += 1
            return False
        cell.outputs.append(out)
        return True


def cells_of(timed: Iterable[tuple[float, Event | None]]) -> list[Cell]:
    """The executions of a stream of ``(time, event)`` pairs, in order."""
    builder = CellBuilder()
    for t, ev in timed:
        if ev is not None:
            builder.feed(t, ev)
    return builder.cells
