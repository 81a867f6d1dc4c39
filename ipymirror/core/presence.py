"""Who is in the room and what is running: the state behind the status line.

Changed only by :meth:`Presence.feed`; everything else here is a query.  Rules:

* A cell is *running* from the ``busy`` whose parent is an ``execute_request``
  (your own: from its :class:`Submitted`) until the ``idle`` with the same
  parent msg_id (status covers every request, so kernel_info/complete traffic
  never counts as running).  A new kernel
  (:class:`KernelRestarted`) or a silent one (:class:`KernelGone`) ends them all.
* One session has one name: the ``username`` of its first person's request
  (below; until then, of its first message: a server nudges with the browser's
  session id under its own name), whatever it sends later.  The pipeline gives it
  to every event (:meth:`Presence.canonical`), so the header, the status line and
  the notices agree; an empty one is ``anonymous`` (:attr:`Peer.label`) in all.
* *People* are sessions that did what a person does: ran code, asked for a
  completion or help.  A session that only asks ``kernel_info`` (a server's
  nudge, a client's start-up) or ``shutdown`` (a manager) is not a person, nor
  is any of ipymirror's own tools (:func:`is_tool`), nor you.
* A person is *active* for ``active_for`` seconds after their last such request;
  time comes from :class:`Tick` events (the edge's clock), never from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipymirror.core.events import (
    Event,
    ExecuteInput,
    KernelBack,
    KernelGone,
    KernelRestart,
    KernelRestarted,
    Peer,
    Status,
    Submitted,
    Tick,
    is_tool,
)

__all__ = ["ACTIVE_FOR", "Presence", "Running"]

MAX_PEERS = 256
MAX_RUNNING = 64
ACTIVE_FOR = 600.0  # seconds a person stays in the peer list after their last request
#: Requests only a person (or their editor, as they type) sends.
PERSON_REQUESTS = frozenset(
    {"execute_request", "complete_request", "inspect_request", "is_complete_request"}
)

_NOT_ANSWERING = frozenset({"dead", "unknown", "starting", "restarting", "shutting down"})
#: Requests whose busy/idle a kernel claimed to be restarting or shutting down still
#: publishes in its last moments: the ``shutdown_request``'s own idle (always sent
#: after the reply) and any client's ``kernel_info``.  They say nothing of the next
#: kernel, so the claim's state holds and the heartbeat goes on asking which kernel
#: answers: after a restart a Jupyter Server may relay nothing of the new kernel
#: (its IOPub subscription came back after the kernel's first messages).
_LAST_WORDS = frozenset({"shutdown_request", "kernel_info_request"})


@dataclass
class Running:
    peer: Peer
    count: int | None = None
    code: str = ""


class Presence:
    def __init__(self, me: str = "", *, active_for: float = ACTIVE_FOR) -> None:
        self.me = me
        self.active_for = active_for
        self.state = "unknown"
        self.running: dict[str, Running] = {}
        self.peers: dict[str, Peer] = {}  # every session seen but mine: canonical names
        self.seen: dict[str, float] = {}  # person -> time of their last request
        self.now = 0.0
        self.execution_count = 0
        self.version = 0

    # -- queries ---------------------------------------------------------------
    def canonical(self, peer: Peer) -> Peer:
        """``peer`` under the one name its session goes by everywhere."""
        known = self.peers.get(peer.session)
        return known if known is not None else peer

    def others(self) -> list[Peer]:
        """The people present other than me, most recently active first.

        Active people only (a request within ``active_for`` of the last
        :class:`Tick`); never a tool, a server's or manager's session, or me.
        """
        horizon = self.now - self.active_for
        recent = [s for s, t in reversed(self.seen.items()) if t >= horizon]
        return [self.peers.get(s, Peer(s)) for s in recent]

    def next_count(self) -> int:
        return self.execution_count + 1

    # -- feeding ---------------------------------------------------------------
    def feed(self, ev: Event) -> None:
        peer = ev.peer
        if peer.session and peer.session != self.me:
            person = isinstance(ev, ExecuteInput) or (
                isinstance(ev, Status) and ev.request in PERSON_REQUESTS
            )
            self._learn(peer, person)
        if isinstance(ev, Status):
            self._status(ev)
        elif isinstance(ev, ExecuteInput):
            self._active(peer)
            if ev.execution_count is not None:  # the latest, not the max: kernels restart
                self.execution_count = ev.execution_count
            run = self.running.get(ev.cell)
            if run is not None:
                run.count = ev.execution_count
                run.code = ev.code.strip().split("\n", 1)[0]
                self.version += 1
        elif isinstance(ev, Tick):
            self._tick(ev.now)
        elif isinstance(ev, Submitted):
            self.running.setdefault(ev.cell, Running(peer, None, ev.code))
            self.version += 1
        elif isinstance(ev, KernelRestart):  # a claim: the heartbeat and the next kernel tell
            self._set_state("restarting" if ev.restart else "shutting down")
        elif isinstance(ev, KernelRestarted):
            self.running.clear()
            self.execution_count = 0
            self._set_state("starting", force=True)
        elif isinstance(ev, KernelGone):
            self.running.clear()
            self._set_state("dead", force=True)
        elif isinstance(ev, KernelBack) and self.state in _NOT_ANSWERING:
            self._set_state("busy" if self.running else "idle")

    def _learn(self, peer: Peer, person: bool) -> None:
        session = peer.session
        if session not in self.peers:
            if len(self.peers) >= MAX_PEERS:
                return
            self.peers[session] = peer
            self.version += 1
        elif person and session not in self.seen and self.peers[session] != peer:
            self.peers[session] = peer  # named by their first own request, once
            self.version += 1

    def _active(self, peer: Peer) -> None:
        session = peer.session
        if not session or session == self.me or is_tool(session) or session not in self.peers:
            return
        last = next(reversed(self.seen), None)
        if last != session or self.seen[session] != self.now:
            self.seen.pop(session, None)  # the dict is kept in order of activity
            self.seen[session] = self.now
            self.version += 1

    def _tick(self, now: float) -> None:
        horizon = now - self.active_for
        before = sum(1 for t in self.seen.values() if t >= self.now - self.active_for)
        self.now = now
        after = sum(1 for t in self.seen.values() if t >= horizon)
        if before != after:
            self.version += 1
        if len(self.seen) > MAX_PEERS:  # long gone: forget them
            for session in [s for s, t in self.seen.items() if t < horizon]:
                del self.seen[session]

    def _status(self, ev: Status) -> None:
        if ev.request in PERSON_REQUESTS and ev.state == "busy":
            self._active(ev.peer)
        if ev.state == "starting":
            self.running.clear()
            self.execution_count = 0
        if ev.request == "execute_request":
            if ev.state == "busy":
                self.running.setdefault(ev.cell, Running(self.canonical(ev.peer)))
                if len(self.running) > MAX_RUNNING:  # idles lost: forget the oldest
                    del self.running[next(iter(self.running))]
            elif ev.state == "idle":
                self.running.pop(ev.cell, None)
        if ev.state == "starting":
            self.state = "starting"
        elif ev.state in ("busy", "idle") and not (
            self.state in ("restarting", "shutting down") and ev.request in _LAST_WORDS
        ):  # kernel_info's busy/idle: not "a cell runs"
            self.state = "busy" if self.running else "idle"
        self.version += 1

    def _set_state(self, state: str, force: bool = False) -> None:
        if state != self.state or force:
            self.state = state
            self.version += 1
