"""The status line: kernel state, who runs what, who is here.  Pure.

It is always one line: every part is cut to fit ``width`` terminal cells
(wide characters count two), the least useful first: code snippets, then the
names of people (a count stays), then who you are, then whatever is left is
cut with an ellipsis.  Colours are added after the cut, so none is ever split.
"""

from __future__ import annotations

from wcwidth import wcswidth, wcwidth

from ipymirror.core.events import Peer
from ipymirror.core.presence import Presence
from ipymirror.core.render import Renderer

__all__ = ["cut_to_width", "status_line", "text_width"]

_STATE_SGR = {
    "idle": "\x1b[32m",
    "busy": "\x1b[33m",
    "dead": "\x1b[31m",
    "restarting": "\x1b[31m",
    "shutting down": "\x1b[31m",
}
MAX_RUNNING_SHOWN = 3
MAX_PEERS_SHOWN = 8
CODE_SHOWN = 40
SEP = " │ "

Part = list[tuple[str, str]]  # (sgr, plain text) pieces of one part of the line


def text_width(text: str) -> int:
    """Terminal cells ``text`` takes (no escape sequences in it)."""
    width = wcswidth(text)
    if width >= 0:
        return width
    return sum(max(0, wcwidth(ch)) for ch in text)


def cut_to_width(text: str, width: int) -> str:
    """The longest start of ``text`` that fits in ``width`` cells."""
    if text_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = max(0, wcwidth(ch))
        if used + w > width:
            break
        out.append(ch)
        used += w
    return "".join(out)


def _width(parts: list[Part]) -> int:
    return sum(text_width(t) for part in parts for _, t in part) + len(SEP) * (len(parts) - 1)


def status_line(room: Presence, r: Renderer, me: Peer | None = None, width: int = 0) -> str:
    """One line describing the room, at most ``width`` cells (default: the
    renderer's width plus its 2-cell margin), with colours when ``r.color``."""
    width = width or r.width + 2
    state: Part = [(_STATE_SGR.get(room.state, ""), f"● {room.state}")]
    running = list(room.running.values())

    def runs(code: int, shown: int = MAX_RUNNING_SHOWN) -> list[Part]:
        out: list[Part] = []
        for run in running[:shown]:
            who = "you" if me is not None and run.peer.session == me.session else run.peer.label
            text = f"▶ {r.clean(who)}"
            if run.count is not None:
                text += f" [{run.count}]"
            if run.code and code:
                text += f" {cut_to_width(r.clean(run.code), code)}"
            out.append([(r.peer_sgr(run.peer), text)])
        if len(running) > shown:
            out.append([("", f"{'+' if shown else ''}{len(running) - shown} running")])
        return out

    people = room.others()

    def peers(names: int) -> Part:
        if not people:
            return [("", "no peers active" if room.seen else "no peers yet")]
        if not names:
            return [("", f"{len(people)} peer{'s' if len(people) != 1 else ''}")]
        part: Part = [("", "peers:")]
        for p in people[:names]:
            part.append(("", " "))
            part.append((r.peer_sgr(p), r.clean(p.label)))
        if len(people) > names:
            part.append(("", f" +{len(people) - names}"))
        return part

    you: list[Part] = [[("", f"you: {r.clean(me.label)}")]] if me is not None else []
    names = min(MAX_PEERS_SHOWN, len(people))
    candidates = [
        [state, *runs(CODE_SHOWN), peers(names), *you],
        [state, *runs(12), peers(names), *you],
        [state, *runs(0), peers(names), *you],
        *([state, *runs(0), peers(n), *you] for n in range(names - 1, 0, -1)),
        [state, *runs(0), peers(0), *you],
        [state, *runs(0, 1), peers(0), *you],
        [state, *runs(0, 0), peers(0), *you],
        [state, *runs(0, 0), peers(0)],
    ]
    parts = next((c for c in candidates if _width(c) <= width), candidates[-1])
    return _paint(parts, r, width)


def _paint(parts: list[Part], r: Renderer, width: int) -> str:
    """Join and colour ``parts``, cutting the plain text at ``width`` cells."""
    out: list[str] = []
    left = width
    for i, part in enumerate(parts):
        pieces = ([("", SEP)] if i else []) + part
        for sgr, text in pieces:
            w = text_width(text)
            if w > left:
                cut = cut_to_width(text, max(0, left - 1)) + "…"
                out.append(r.paint(sgr, cut) if sgr else cut)
                return "".join(out)
            out.append(r.paint(sgr, text) if sgr else text)
            left -= w
    return "".join(out)
