"""The browser page's state: events in, HTML update operations out.  Pure.

``share --web`` keeps one :class:`LivePage` for all its viewers.  Cells come
from the one reducer (:class:`~ipymirror.core.cells.CellBuilder`), HTML from the
one renderer (:class:`~ipymirror.core.html.HtmlRenderer`); this module only
decides which fragments changed, so the page's script applies updates and
never interprets a Jupyter message.

Rules it keeps:

* :meth:`LivePage.flush` returns the operations since the last flush, in
  order; applied to the result of :meth:`LivePage.snapshot` taken just after
  the previous flush, they give the page as the next snapshot would.
  Operations (JSON arrays): ``["cell", id, html]`` a new cell;
  ``["outs", id, html]`` a cell's outputs replaced (``clear_output``);
  ``["out", oid, html]`` one output replaced (``update_display_data``);
  ``["add", id, html]`` outputs appended; ``["app", oid, html]`` whole lines
  appended to a stream; ``["tail", oid, html]`` a stream's unfinished line
  (a ``\\r`` progress bar) replaced; ``["note", html]`` a notice;
  ``["status", html]`` the status line; ``["reset", html]`` the whole page.
* Whole lines of a stream are final (a ``\\r`` only rewrites the last line):
  they are sent once, as appended text; only the last line is resent.
* Bounded: the last ``cells`` cells are kept (the relay backlog's policy),
  each with at most ``MAX_OUTPUTS`` outputs and ``MAX_CELL_CHARS`` characters
  (the builder counts what does not fit), each stream output's text to
  ``2 * MAX_STREAM`` characters (what was sent already is cut from the front),
  notices to ``MAX_NOTICES``.
* Element ids are ours (``c<n>``, ``c<n>-<i>``), never from a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ipymirror.core.cells import Cell, CellBuilder
from ipymirror.core.events import Display, Event, KernelRestart
from ipymirror.core.html import MAX_STREAM, HtmlRenderer, split_stream
from ipymirror.core.presence import Presence

__all__ = ["LivePage", "Op"]

Op = list[str]
MAX_NOTICES = 20
MAX_OUTPUTS = 500  # per cell on the page (later ones are counted, as in the export)
MAX_CELL_CHARS = 4 * 1024 * 1024  # characters of output a cell holds (images included)


@dataclass
class _Shown:
    """What the page shows of one cell: the outputs (held, so identity is reliable)."""

    cid: str
    outs: list[dict[str, Any]] = field(default_factory=list)
    data: list[Any] = field(default_factory=list)  # each output's data dict, as shown
    done: list[int] = field(default_factory=list)  # stream: characters sent as whole lines
    tails: list[str] = field(default_factory=list)  # stream: the unfinished line shown
    dropped: tuple[int, int] = (0, 0)  # the cell's (outputs, characters) not kept


class LivePage:
    """One page for every viewer: feed events, flush operations, snapshot for joiners."""

    def __init__(self, language: str = "", cells: int = 20) -> None:
        self.html = HtmlRenderer(language)
        self.builder = CellBuilder(max_outputs=MAX_OUTPUTS, max_chars=MAX_CELL_CHARS)
        self.presence = Presence()
        self.cells = max(1, cells)
        self.extra = ""  # said after the status line ("kernel not answering")
        self._shown: dict[int, _Shown] = {}  # id(cell) -> state; cells are held by builder
        self._dirty: dict[int, Cell] = {}
        self._all_dirty = False
        self._notices: list[tuple[int, str]] = []  # (cells started before it, html)
        self._ops: list[Op] = []
        self._status = ""
        self._started = 0  # cells ever started (numbers the ids)

    # -- input -------------------------------------------------------------
    def feed(self, ev: Event) -> None:
        self.presence.feed(ev)
        if isinstance(ev, KernelRestart):
            self._flush_cells()  # the notice goes after what came before it
            what = "restarted" if ev.restart else "shut down"
            note = self.html.notice(f"kernel {what} by {ev.peer.label}")
            self._notices = [*self._notices[-(MAX_NOTICES - 1) :], (self._started, note)]
            self._ops.append(["note", note])
            return
        cell = self.builder.feed(0.0, ev)
        if cell is not None:
            self._dirty[id(cell)] = cell
        if isinstance(ev, Display) and ev.update:
            self._all_dirty = True  # the display may be shown in any cell

    # -- output ------------------------------------------------------------
    def flush(self) -> list[Op]:
        """The operations since the last flush (empty: nothing changed)."""
        self._flush_cells()
        status = self.html.status(self.presence, self.extra)
        if status != self._status:
            self._status = status
            self._ops.append(["status", status])
        ops, self._ops = self._ops, []
        return ops

    def snapshot(self) -> list[Op]:
        """The page as of the last flush, for a viewer that joins now."""
        first = self._started - len(self.builder.cells)
        parts = [note for n, note in self._notices if n <= first]
        for k, cell in enumerate(self.builder.cells):
            parts.append(self.html.cell(cell, self._shown[id(cell)].cid))
            parts += [note for n, note in self._notices if n == first + k + 1]
        return [["reset", "".join(parts)], ["status", self._status]]

    # -- internals ---------------------------------------------------------
    def _flush_cells(self) -> None:
        if self._all_dirty:
            for cell in self.builder.cells:
                self._dirty.setdefault(id(cell), cell)
            self._all_dirty = False
        dirty, self._dirty = self._dirty, {}
        for cell in dirty.values():
            shown = self._shown.get(id(cell))
            if shown is None:
                self._started += 1
                shown = self._shown[id(cell)] = _Shown(f"c{self._started}")
                self._ops.append(["cell", shown.cid, self.html.cell(cell, shown.cid)])
                self._record(cell, shown)
            else:
                self._diff(cell, shown)
            self._trim(cell, shown)
        for gone in self.builder.keep_last(self.cells):
            self._shown.pop(id(gone), None)

    def _record(self, cell: Cell, shown: _Shown) -> None:
        shown.outs = list(cell.outputs)
        shown.data = [out.get("data") for out in cell.outputs]
        shown.done, shown.tails = [], []
        for out in cell.outputs:
            done, tail = split_stream(out.get("text", "")) if _is_stream(out) else ("", "")
            shown.done.append(len(done))
            shown.tails.append(tail)
        shown.dropped = (cell.dropped, cell.dropped_chars)

    def _diff(self, cell: Cell, shown: _Shown) -> None:
        outs, old, html, cid = cell.outputs, shown.outs, self.html, shown.cid
        if (
            len(outs) < len(old)
            or any(a is not b for a, b in zip(outs, old, strict=False))
            or (cell.dropped, cell.dropped_chars) != shown.dropped
        ):
            self._ops.append(["outs", cid, html.outputs(cell, cid)])  # cleared: all anew
            self._record(cell, shown)
            return
        for i, out in enumerate(old):
            oid = f"{cid}-{i}"
            if _is_stream(out):
                text = out.get("text", "")
                done, tail = split_stream(text)
                if len(done) > shown.done[i]:
                    self._ops.append(["app", oid, html.stream_text(done[shown.done[i] :])])
                    shown.done[i] = len(done)
                if tail != shown.tails[i]:
                    self._ops.append(["tail", oid, html.stream_text(tail)])
                    shown.tails[i] = tail
            elif out.get("data") is not shown.data[i]:
                self._ops.append(["out", oid, html.output(out, oid)])
                shown.data[i] = out.get("data")
        if len(outs) > len(old):
            new = range(len(old), len(outs))
            self._ops.append(["add", cid, "".join(html.output(outs[i], f"{cid}-{i}") for i in new)])
            self._record(cell, shown)

    @staticmethod
    def _trim(cell: Cell, shown: _Shown) -> None:
        """Cut what the page has already been sent from the front of huge stream outputs."""
        for i, out in enumerate(shown.outs):
            text = out.get("text", "") if _is_stream(out) else ""
            if len(text) > 2 * MAX_STREAM:
                cut = text.find("\n", len(text) - MAX_STREAM, shown.done[i]) + 1
                if cut > 0:
                    out["text"] = text[cut:]
                    shown.done[i] -= cut
                    cell.size -= cut  # the builder's budget for the cell: what it still holds


def _is_stream(out: dict[str, Any]) -> bool:
    return out.get("output_type") == "stream"
