"""Who is in the room and what is running: the state behind the status line.

Rules: a cell is *running* from the ``busy`` whose parent is an
``execute_request`` until the ``idle`` with the same parent msg_id (status
covers every request, so kernel_info/complete traffic never counts as running).
Any session that sends the kernel a request is a peer we have *seen*.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipymirror.core.events import Event, ExecuteInput, KernelRestart, Peer, Status

__all__ = ["Presence", "Running"]

MAX_PEERS = 256
MAX_RUNNING = 64


@dataclass
class Running:
    peer: Peer
    count: int | None = None
    code: str = ""


class Presence:
    def __init__(self, me: str = "") -> None:
        self.me = me
        self.state = "unknown"
        self.running: dict[str, Running] = {}
        self.peers: dict[str, Peer] = {}
        self.execution_count = 0
        self.version = 0

    def feed(self, ev: Event) -> None:
        peer = ev.peer
        if peer.session and peer.session != self.me and len(self.peers) < MAX_PEERS:
            known = self.peers.get(peer.session)
            if known is None or (peer.username and known.username != peer.username):
                self.peers[peer.session] = peer
                self.version += 1
        if isinstance(ev, Status):
            self._status(ev)
        elif isinstance(ev, ExecuteInput):
            if ev.execution_count is not None:  # the latest, not the max: kernels restart
                self.execution_count = ev.execution_count
            run = self.running.get(ev.cell)
            if run is not None:
                run.count = ev.execution_count
                run.code = ev.code.strip().split("\n", 1)[0]
                self.version += 1
        elif isinstance(ev, KernelRestart):
            self.running.clear()
            self.state = "restarting" if ev.restart else "dead"
            if ev.restart:
                self.execution_count = 0
            self.version += 1

    def _status(self, ev: Status) -> None:
        if ev.state == "starting":
            self.running.clear()
            self.execution_count = 0
        if ev.request == "execute_request":
            if ev.state == "busy":
                self.running.setdefault(ev.cell, Running(ev.peer))
                if len(self.running) > MAX_RUNNING:  # idles lost: forget the oldest
                    del self.running[next(iter(self.running))]
            elif ev.state == "idle":
                self.running.pop(ev.cell, None)
        if ev.state == "starting":
            self.state = "starting"
        else:  # busy/idle of completions and kernel_info is not "the kernel is busy"
            self.state = "busy" if self.running else "idle"
        self.version += 1

    def set_state(self, state: str) -> None:
        """Set by the transport (e.g. "dead" when the heartbeat stops)."""
        if state != self.state:
            self.state = state
            if state == "dead":
                self.running.clear()
            self.version += 1

    def others_present(self) -> list[Peer]:
        """Who else is here: the peers seen on this kernel, not you, not the kernel.

        (A stand-in until the room's own query of who is present lands.)
        """
        return [p for p in self.peers.values() if p.session and p.session != self.me]

    def next_count(self) -> int:
        return self.execution_count + 1
