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
  no conversion.
* Bounded: a cell keeps at most ``max_outputs`` outputs and ``max_chars``
  characters of output (merged stream text included); what does not fit is
  counted in ``Cell.dropped`` (outputs) and ``Cell.dropped_chars`` (the cut
  end of a stream), for the caller to announce.  At most ``MAX_DISPLAYS``
  display ids are tracked for updates (the oldest are forgotten), each in at
  most ``MAX_DISPLAY_OUTPUTS`` outputs.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
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
MAX_CELL_CHARS = 32 * 1024 * 1024  # characters of output one cell keeps
MAX_DISPLAYS = 10_000
MAX_DISPLAY_OUTPUTS = 100


@dataclass
class Cell:
    code: str
    execution_count: int | None
    peer: Peer
    start: float  # time of its execute_input
    end: float  # time of the last event it owns
    outputs: list[dict[str, Any]] = field(default_factory=list)
    dropped: int = 0  # outputs not kept (over a cap)
    dropped_chars: int = 0  # characters of stream text not kept
    clear_pending: bool = False
    size: int = 0  # characters of output held


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
            try:
                out[mime] = json.dumps(value, default=str)
            except (RecursionError, ValueError):
                out[mime] = f"[{mime}: nested too deeply to keep]"
    return out


class CellBuilder:
    """Feed ``(time, event)`` pairs in arrival order; read :attr:`cells`."""

    def __init__(self, max_outputs: int = MAX_OUTPUTS, max_chars: int = MAX_CELL_CHARS) -> None:
        self.cells: list[Cell] = []
        self.max_outputs = max_outputs
        self.max_chars = max_chars
        self._by_id: dict[str, Cell] = {}
        # display_id -> outputs showing it, oldest id first
        self._displays: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()

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
                _clear(owner)
        elif isinstance(ev, Display) and ev.update:
            for out in self._displays.get(ev.display_id or "", []):
                out["data"], out["metadata"] = bundle(ev.data), dict(ev.metadata)
        elif isinstance(ev, Display):
            out = {"output_type": "display_data", "data": bundle(ev.data)}
            out["metadata"] = dict(ev.metadata)
            if self._add(owner, out) and ev.display_id:
                self._track(ev.display_id, out)
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
        kept_displays = ((k, [o for o in v if id(o) in outs]) for k, v in self._displays.items())
        self._displays = OrderedDict((k, v) for k, v in kept_displays if v)
        return gone

    def _track(self, display_id: str, out: dict[str, Any]) -> None:
        outs = self._displays.setdefault(display_id, [])
        self._displays.move_to_end(display_id)
        if len(outs) < MAX_DISPLAY_OUTPUTS:
            outs.append(out)
        if len(self._displays) > MAX_DISPLAYS:
            self._displays.popitem(last=False)

    def _add(self, cell: Cell, out: dict[str, Any]) -> bool:
        if cell.clear_pending:
            _clear(cell)
        room = self.max_chars - cell.size
        if out["output_type"] == "stream":
            text = out["text"]
            if len(text) > room:
                cell.dropped_chars += len(text) - max(room, 0)
                text = out["text"] = text[: max(room, 0)]
            if not text:
                return False
            cell.size += len(text)
            last = cell.outputs[-1] if cell.outputs else None
            if last is not None and last["output_type"] == "stream" and last["name"] == out["name"]:
                last["text"] += text  # merged, as a notebook shows consecutive writes
                return True
        else:
            size = _size(out)
            if size > room:
                cell.dropped += 1
                return False
            cell.size += size
        if len(cell.outputs) >= self.max_outputs:
            cell.dropped += 1
            return False
        cell.outputs.append(out)
        return True


def _clear(cell: Cell) -> None:
    cell.outputs.clear()
    cell.size = 0
    cell.clear_pending = False


def _size(out: Mapping[str, Any]) -> int:
    """Characters an output holds, roughly: its strings (MIME values, a traceback)."""
    n = 0
    for value in (*out.get("data", {}).values(), *out.get("traceback", ()), out.get("evalue")):
        if isinstance(value, str) or value is None:
            n += len(value or "")
            continue
        try:  # a JSON value, kept as it is: its size as a notebook will write it
            n += len(json.dumps(value, default=str))
        except (RecursionError, ValueError):  # cannot be written at all: never fits
            return 1 << 62
    return n


def cells_of(timed: Iterable[tuple[float, Event | None]]) -> list[Cell]:
    """The executions of a stream of ``(time, event)`` pairs, in order."""
    builder = CellBuilder()
    for t, ev in timed:
        if ev is not None:
            builder.feed(t, ev)
    return builder.cells
