"""The status line: kernel state, who runs what, who has been seen.  Pure."""

from __future__ import annotations

from ipymirror.core.events import Peer
from ipymirror.core.presence import Presence
from ipymirror.core.render import Renderer

__all__ = ["status_line"]

_STATE_SGR = {"idle": "\x1b[32m", "busy": "\x1b[33m", "dead": "\x1b[31m", "restarting": "\x1b[31m"}
MAX_RUNNING_SHOWN = 3
MAX_PEERS_SHOWN = 8


def status_line(room: Presence, r: Renderer, me: Peer | None = None) -> str:
    """One line of text (with colours when ``r.color``) describing the room."""
    parts = [r.paint(_STATE_SGR.get(room.state, ""), f"● {room.state}")]
    running = list(room.running.values())
    for run in running[:MAX_RUNNING_SHOWN]:
        who = "you" if me is not None and run.peer.session == me.session else run.peer.label
        text = f"▶ {r.clean(who)}"
        if run.count is not None:
            text += f" [{run.count}]"
        if run.code:
            text += f" {r.clean(run.code)[:40]}"
        parts.append(r.paint(r.peer_sgr(run.peer), text))
    if len(running) > MAX_RUNNING_SHOWN:
        parts.append(f"+{len(running) - MAX_RUNNING_SHOWN} running")
    peers = [p for p in room.peers.values() if p.session]
    if peers:
        shown = " ".join(r.paint(r.peer_sgr(p), r.clean(p.label)) for p in peers[:MAX_PEERS_SHOWN])
        more = f" +{len(peers) - MAX_PEERS_SHOWN}" if len(peers) > MAX_PEERS_SHOWN else ""
        parts.append(f"peers: {shown}{more}")
    else:
        parts.append("no peers yet")
    if me is not None:
        parts.append(f"you: {r.clean(me.label)}")
    return " │ ".join(parts)
