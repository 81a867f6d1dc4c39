"""The event stream as a terminal transcript: committed lines + a live region.

Pure state machine, fed events, read by frontends.  Its rules:

1. Committed text is final: it goes to the scrollback once and never changes.
   Frontends drain it with :meth:`Transcript.take` (chunks of whole lines).
2. What may still change is *live*: the unfinished last line of a stream (a
   ``\\r`` progress bar), a display that has a ``display_id``, and all output
   of a cell after it called ``clear_output``.  :meth:`Transcript.live` returns
   it; a frontend redraws it in place, so 1,000 updates cost one line.
3. A cell's live output is committed when the cell ends (its ``idle``), when
   the newline arrives, or when too many cells are open (oldest first).
4. Peers' lines carry a gutter, under a header in the peer's colour whenever the speaker
   changes; your own cells look like a plain IPython console, and when your output
   resumes after anyone else's lines it is under your own ``In [n] …`` again.
   A cell is its requester's session *and* request id, so nobody's output can
   land in another's cell.
5. Everything is bounded: a partial line, a cell's live block, the number of
   open cells.  Whatever is dropped is announced by a notice line with a count.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from ipymirror.core.events import (
    ClearOutput,
    Display,
    Error,
    Event,
    ExecuteInput,
    Peer,
    Result,
    Status,
    Stream,
)
from ipymirror.core.images import Picture
from ipymirror.core.notices import LIFE_EVENTS, Notices, Told
from ipymirror.core.render import MAX_TEXT, RESET, Line, Renderer, resolve_cr, wrap_cells

__all__ = ["Chunk", "Transcript", "plain"]

#: What the transcript commits: text ending in a newline, or a picture (whole rows).
Chunk = str | Picture


def plain(chunks: Iterable[Line]) -> list[str]:
    """Chunks or lines as text only: each picture as its placeholder line."""
    out: list[str] = []
    for chunk in chunks:
        if isinstance(chunk, Picture):
            out.extend(line + "\n" for line in chunk.lines())
        else:
            out.append(chunk)
    return out


MAX_OPEN_CELLS = 64
MAX_LIVE_LINES = 400  # per cell; older live lines are counted, then dropped
MAX_PARTIAL = 64 * 1024  # characters of an unfinished line kept live
MAX_STREAM_TEXT = MAX_TEXT  # characters of one stream message shown; the middle is elided


@dataclass
class _Item:
    display_id: str | None
    lines: list[Line]


@dataclass
class _Cell:
    peer: Peer
    count: int | None = None
    partial: dict[str, str] = field(default_factory=dict)  # stream name -> unfinished line
    live: bool = False  # after clear_output or a display_id: hold all output live
    items: list[_Item] = field(default_factory=list)
    clear_pending: bool = False
    dropped: int = 0  # live lines dropped to stay bounded
    cut_chars: int = 0  # characters cut from the front of an endless partial line
    progress: set[str] = field(default_factory=set)  # streams whose partial line used \r

    def live_line_count(self) -> int:
        return sum(len(item.lines) for item in self.items)


def _key(ev: Event) -> str:
    """A cell is its requester's session and request id: a peer who reuses your
    msg_id never writes into your cell (nor you into theirs)."""
    return f"{ev.peer.session}\x00{ev.cell}"


class Transcript:
    """Feeds on events; yields committed chunks and the current live lines."""

    def __init__(self, renderer: Renderer, me: str = "") -> None:
        self.r = renderer
        self.me = me
        self._out: list[Chunk] = []
        self._cells: OrderedDict[str, _Cell] = OrderedDict()
        self._displays: dict[str, str] = {}  # live display_id -> cell msg_id
        self._speaker: tuple[str, str] | None = None  # (session, cell) of last committed line
        self.version = 0  # bumps whenever live() would change
        self._wide_width = -1
        self._wide = re.compile("")
        self.notices = Notices()  # the kernel's life, the server's limits

    # -- reading -------------------------------------------------------------
    def take(self) -> list[str]:
        """Committed chunks since the last call; each ends with a newline.

        Pictures come as their placeholder lines: :meth:`take_chunks` keeps them.
        """
        return plain(self.take_chunks())

    def take_chunks(self) -> list[Chunk]:
        """Committed text chunks and pictures since the last call, in order."""
        out, self._out = self._out, []
        return out

    def pending(self) -> bool:
        return bool(self._out)

    def live(self) -> list[str]:
        """Lines that may still change, oldest cell first (pictures as placeholders)."""
        return [line.rstrip("\n") for line in plain(self.live_lines())]

    def live_lines(self) -> list[Line]:
        """Lines and pictures that may still change, oldest cell first."""
        lines: list[Line] = []
        for cell_id, cell in self._cells.items():
            body: list[Line] = []
            if cell.dropped:
                body.append(self.r.notice(f"… {cell.dropped:,} earlier lines not kept"))
            for item in cell.items:
                body.extend(item.lines)
            partials = [(name, p.rstrip("\r")) for name, p in cell.partial.items()]
            partials = [(name, p) for name, p in partials if p]
            if not body and not partials:
                continue
            if not self._mine(cell.peer) and self._speaker != (cell.peer.session, cell_id):
                lines.append(self.r.header(cell.peer, cell.count))
            lines.extend(self._decorate(cell.peer, body, False))
            for name, text in partials:
                err = name == "stderr" and name not in cell.progress
                lines.extend(self._decorate(cell.peer, [text], err))
        return lines

    # -- feeding -------------------------------------------------------------
    def feed(self, ev: Event) -> None:
        if isinstance(ev, Stream):
            self._stream(ev)
        elif isinstance(ev, ExecuteInput):
            self._execute_input(ev)
        elif isinstance(ev, Result):
            self._output(ev, self.r.result_lines(ev.data, ev.metadata, ev.execution_count))
        elif isinstance(ev, Display):
            self._display(ev)
        elif isinstance(ev, Error):
            self._output(ev, self.r.traceback(ev.ename, ev.evalue, ev.traceback))
        elif isinstance(ev, ClearOutput):
            self._clear(ev)
        elif isinstance(ev, Status):
            if ev.state == "idle" and _key(ev) in self._cells:
                self._finish(_key(ev))
        elif isinstance(ev, LIFE_EVENTS):
            self._tell(self.notices.feed(ev))

    def _tell(self, told: Told) -> None:
        if told.end_cells:
            self.finish_all()
        for line in told.lines:
            self.notice(line)

    def notice(self, text: str) -> None:
        """Commit a line of ipymirror's own (never attributed to a peer)."""
        self._speaker = None
        self._out.append(self.r.notice(text) + "\n")

    def finish_all(self) -> None:
        """Commit everything still live (end of a replay, of a watch)."""
        for cell_id in list(self._cells):
            self._finish(cell_id)

    # -- internals -----------------------------------------------------------
    def _mine(self, peer: Peer) -> bool:
        return bool(self.me) and peer.session == self.me

    def _cell(self, ev: Event) -> _Cell:
        cell = self._cells.get(_key(ev))
        if cell is None:
            cell = self._cells[_key(ev)] = _Cell(ev.peer)
            if len(self._cells) > MAX_OPEN_CELLS:
                self._finish(next(iter(self._cells)))
        return cell

    def _decorate(self, peer: Peer, lines: Sequence[Line], stderr: bool) -> list[Line]:
        """Add the gutter (peers) and stderr colour; reset colours at line end."""
        err = self.r.stderr_sgr() if stderr else ""
        mine = self._mine(peer)
        gutter = "" if mine else self.r.gutter(peer, stderr)
        width = self.r.width  # the terminal's columns less the gutter
        out: list[Line] = []
        for line in lines:
            if isinstance(line, Picture):
                out.append(replace(line, gutter=gutter))
            elif mine:
                out.append(f"{err}{line}{RESET}" if (err or "\x1b" in line) else line)
            else:
                for row in wrap_cells(line, width):  # the gutter starts every row, wrapped too
                    if err or ("\x1b" in row and not row.endswith(RESET)):
                        out.append(f"{gutter}{err}{row}{RESET}")
                    else:
                        out.append(gutter + row)
        return out

    def _commit(
        self, peer: Peer, cell_id: str, lines: Sequence[Line], stderr: bool = False
    ) -> None:
        self._speak(peer, cell_id)
        run: list[str] = []
        for line in self._decorate(peer, lines, stderr):
            if isinstance(line, Picture):
                if run:
                    self._out.append("\n".join(run) + "\n")
                    run = []
                self._out.append(line)
            else:
                run.append(line)
        if run:
            self._out.append("\n".join(run) + "\n")

    def _speak(self, peer: Peer, cell_id: str) -> None:
        """Emit a header when a different cell takes the floor: a peer's header,
        or your own ``In [n] …`` when your output resumes after someone else's."""
        who = (peer.session, cell_id)
        if self._speaker == who:
            return
        before, self._speaker = self._speaker, who
        cell = self._cells.get(cell_id)
        count = cell.count if cell else None
        if not self._mine(peer):
            self._out.append(self.r.header(peer, count, cont=True) + "\n")
        elif before is not None and count is not None:  # after someone else's lines
            self._out.append(self.r.own_header(count) + "\n")

    def _commit_stream_text(self, peer: Peer, cell_id: str, text: str, stderr: bool) -> None:
        """Hot path: whole lines of plain text, decorated at C speed."""
        body = text[:-1]
        if "\x1b" in body or (not self._mine(peer) and self._too_wide(body)):
            self._commit(peer, cell_id, body.split("\n"), stderr)
            return
        self._speak(peer, cell_id)
        gutter = "" if self._mine(peer) else self.r.gutter(peer, stderr)
        if stderr and self.r.color:
            start, end = gutter + self.r.stderr_sgr(), RESET
        else:
            start, end = gutter, ""
        self._out.append(start + body.replace("\n", end + "\n" + start) + end + "\n")

    def _too_wide(self, body: str) -> bool:
        """Whether a line of ``body`` may not fit beside the gutter (then it is wrapped)."""
        width = self.r.width
        if not body.isascii():
            return len(body) * 2 > width  # cheap bound: at most 2 cells a character
        if self._wide_width != width:
            # anchored at line starts: each line is scanned once
            self._wide_width = width
            self._wide = re.compile(f"^[^\n]{{{width + 1}}}", re.M)
        return self._wide.search(body) is not None

    def _stream(self, ev: Stream) -> None:
        cell = self._cell(ev)
        stderr = ev.name == "stderr"
        raw = self.r.elide(ev.text, MAX_STREAM_TEXT)
        text = self.r.clean(raw, stream=True)
        if cell.clear_pending:
            self._do_clear(cell)
        if cell.live:
            self._live_text(cell, ev.name, text)
            return
        buf = resolve_cr(cell.partial.get(ev.name, "") + text)
        cut = buf.rfind("\n")
        if stderr and ("\r" in text or "stderr" in cell.progress):
            self._progress_stderr(ev, cell, text, buf, cut)
            return
        if cut >= 0:
            self._announce_cut(cell, _key(ev))
            self._commit_stream_text(ev.peer, _key(ev), buf[: cut + 1], stderr)
            buf = buf[cut + 1 :]
        self._set_partial(cell, ev.name, buf)

    def _progress_stderr(self, ev: Stream, cell: _Cell, text: str, buf: str, cut: int) -> None:
        """stderr lines made only of ``\r`` rewrites (tqdm's bars) are progress,
        shown like stdout; any other stderr line stays an error's colour."""
        segments = text.replace("\r\n", "\n").split("\n")
        flags = ["\r" in seg for seg in segments]
        flags[0] = flags[0] or "stderr" in cell.progress
        if cut >= 0:
            self._announce_cut(cell, _key(ev))
            lines = buf[:cut].split("\n")
            start = 0
            for i in range(1, len(lines) + 1):  # runs of lines with one style each
                if i == len(lines) or flags[min(i, len(flags) - 1)] != flags[start]:
                    chunk = "\n".join(lines[start:i]) + "\n"
                    self._commit_stream_text(ev.peer, _key(ev), chunk, not flags[start])
                    start = i
            buf = buf[cut + 1 :]
        if flags[-1] if cut >= 0 or len(flags) > 1 else flags[0]:
            cell.progress.add("stderr")
        else:
            cell.progress.discard("stderr")
        self._set_partial(cell, ev.name, buf)

    def _set_partial(self, cell: _Cell, name: str, buf: str) -> None:
        if len(buf) > MAX_PARTIAL:
            cell.cut_chars += len(buf) - MAX_PARTIAL
            buf = buf[-MAX_PARTIAL:]
        if cell.partial.get(name, "") != buf:
            cell.partial[name] = buf
            self.version += 1

    def _live_text(self, cell: _Cell, name: str, text: str) -> None:
        """Stream text of a cell in live mode: appended to its live block."""
        buf = resolve_cr(cell.partial.get(name, "") + text)
        *whole, rest = buf.split("\n")
        if whole:
            self._add_live(cell, None, whole, stderr=name == "stderr")
        self._set_partial(cell, name, rest)
        self.version += 1

    def _add_live(
        self, cell: _Cell, display_id: str | None, lines: Sequence[Line], stderr: bool = False
    ) -> None:
        if stderr and self.r.color:
            lines = [f"{self.r.stderr_sgr()}{line}{RESET}" for line in lines]
        last = cell.items[-1] if cell.items else None
        if display_id is None and last is not None and last.display_id is None:
            last.lines.extend(lines)
        else:
            cell.items.append(_Item(display_id, list(lines)))
        self._trim(cell)
        self.version += 1

    def _trim(self, cell: _Cell) -> None:
        """At most MAX_LIVE_LINES live lines and items (empty displays count): oldest go."""
        excess = cell.live_line_count() - MAX_LIVE_LINES
        while cell.items and (excess > 0 or len(cell.items) > MAX_LIVE_LINES):
            first = cell.items[0]
            cut = min(max(excess, 0), len(first.lines))
            if len(cell.items) > MAX_LIVE_LINES:
                cut = len(first.lines)
            del first.lines[:cut]
            cell.dropped += cut
            excess -= cut
            if not first.lines:
                cell.items.pop(0)
                if first.display_id is not None:
                    self._displays.pop(first.display_id, None)

    def _announce_cut(self, cell: _Cell, cell_id: str) -> None:
        if cell.cut_chars:
            note = self.r.notice(f"… {cell.cut_chars:,} characters of a long line not kept")
            self._commit(cell.peer, cell_id, [note])
            cell.cut_chars = 0

    def _flush_partials(self, cell: _Cell, cell_id: str) -> None:
        self._announce_cut(cell, cell_id)
        for name, text in list(cell.partial.items()):
            text = text.rstrip("\r")
            if text:
                err = name == "stderr" and name not in cell.progress
                self._commit(cell.peer, cell_id, [text], err)
        cell.partial.clear()
        cell.progress.clear()

    def _output(self, ev: Event, lines: Sequence[Line]) -> None:
        if not lines:
            return
        cell = self._cell(ev)
        if cell.clear_pending:
            self._do_clear(cell)
        if cell.live:
            self._add_live(cell, None, lines)
            return
        self._flush_partials(cell, _key(ev))
        self._commit(ev.peer, _key(ev), lines)

    def _execute_input(self, ev: ExecuteInput) -> None:
        cell = self._cell(ev)
        cell.count = ev.execution_count
        if self._mine(ev.peer):
            self._speaker = (ev.peer.session, _key(ev))  # under the prompt you typed it at
            return
        self._speaker = (ev.peer.session, _key(ev))
        self._out.append(self.r.header(ev.peer, ev.execution_count) + "\n")
        self._commit(ev.peer, _key(ev), self.r.code(ev.code))

    def _display(self, ev: Display) -> None:
        lines = self.r.display(ev.data, ev.metadata)
        if ev.display_id is None:
            if not ev.update:
                self._output(ev, lines)
            return
        owner_id = self._displays.get(ev.display_id)
        owner = self._cells.get(owner_id) if owner_id is not None else None
        if owner is not None:
            for item in owner.items:
                if item.display_id == ev.display_id:
                    item.lines = lines
                    self._trim(owner)
                    self.version += 1
                    return
        if ev.update:  # the display was committed already: show the update live
            lines = [self.r.notice(f"display {ev.display_id[:8]} updated:"), *lines]
        cell = self._cell(ev)
        if cell.clear_pending:
            self._do_clear(cell)
        if not cell.live:
            self._flush_partials(cell, _key(ev))
            cell.live = True
        self._add_live(cell, ev.display_id, lines)
        self._displays[ev.display_id] = _key(ev)

    def _clear(self, ev: ClearOutput) -> None:
        cell = self._cell(ev)
        if not cell.live:
            self._flush_partials(cell, _key(ev))
            cell.live = True
        if ev.wait:
            cell.clear_pending = True
        else:
            self._do_clear(cell)

    def _do_clear(self, cell: _Cell) -> None:
        for item in cell.items:
            if item.display_id is not None:
                self._displays.pop(item.display_id, None)
        cell.items.clear()
        cell.partial.clear()
        cell.dropped = 0
        cell.clear_pending = False
        self.version += 1

    def _finish(self, cell_id: str) -> None:
        cell = self._cells.get(cell_id)
        if cell is None:
            return
        if cell.dropped:
            self._commit(cell.peer, cell_id, [self.r.notice(f"… {cell.dropped:,} lines not kept")])
        lines = [line for item in cell.items for line in item.lines]
        if lines:
            self._commit(cell.peer, cell_id, lines)
        for item in cell.items:
            if item.display_id is not None:
                self._displays.pop(item.display_id, None)
        self._flush_partials(cell, cell_id)
        del self._cells[cell_id]
        self.version += 1
