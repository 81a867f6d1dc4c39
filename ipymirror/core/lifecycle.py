"""The kernel's life told as events: restarts nobody announced, shutdowns nobody proved.

Pure (no clock, no sockets): :class:`~ipymirror.core.pipeline.Pipeline` asks it,
for every message and every event from an edge (the heartbeat, a relay), which
synthetic events to feed.  Rules:

* A kernel process is its ``header.session``.  Messages from a new one mean the
  kernel was restarted, however it happened (``restart_kernel(now=True)``, a
  crash a manager restarted, a kill): one :class:`KernelRestarted`, fed before
  the new kernel's first event, so that cell is shown whole.  A ``starting``
  status from a kernel that sends no session is a restart too.
* A ``shutdown_reply`` is only a claim (a peer can make the kernel publish
  anything).  Its peer is named as who restarted the kernel when a new kernel
  follows before the old one says anything else; otherwise the restart is by
  ``unknown`` (:data:`KERNEL`), never by a wrong name.
* A :class:`KernelGone` after a shutdown claim (``restart: false``) is for good,
  and its peer is who asked: the silence confirms it (whenever it began).  A claim the kernel
  contradicts ends nothing.  Answering ``kernel_info`` (its busy/idle) does not
  contradict one: a kernel shutting down still answers it in its last moments,
  and any client asks it (a server's nudge; every mirror's heartbeat probes a
  kernel claimed to be shutting down).  Taken as "it speaks on", one answer let
  a real shutdown be told as "gone, no heartbeat", ten seconds late and unnamed.
  Nor does output in such a request's cell, or of no request: a kernel that dies
  while answering one prints its last words there (ipykernel: "Task was destroyed
  but it is pending!").
* A :class:`KernelBack` from a kernel of another session is a restart:
  :class:`KernelRestarted` first, then the :class:`KernelBack`.
* An edge that restarts the kernel itself (ipymirror restarting the kernel it
  started) says so first with a :class:`KernelRestart` claim of its own: the new
  kernel is then that restart, however it is first seen.
* A server that says it restarted a kernel that died (its ``restarting``
  status) has told that restart: the next new kernel is it (``told``).
* Kernels that tell no session of their own (IRkernel echoes the requester's)
  are seen restarted when an ``execute_input`` counts lower than the last one.
"""

from __future__ import annotations

from collections import deque

from ipymirror.core.events import (
    KERNEL,
    Event,
    ExecuteInput,
    KernelBack,
    KernelGone,
    KernelRestart,
    KernelRestarted,
    Status,
)

__all__ = ["Lifecycle"]

MAX_PROBES = 64  # kernel_info requests remembered (their cells' output is last words)


class Lifecycle:
    def __init__(self) -> None:
        self.session = ""  # the kernel process we know ('' until one is seen)
        self._claim: KernelRestart | None = None  # the last shutdown_reply, not yet kept
        self._count = 0  # the last execution count seen
        self._told = False  # the server said it restarted the kernel: the next one is that
        self._probes: deque[str] = deque(maxlen=MAX_PROBES)  # cells of kernel_info requests

    def before(self, session: str, ev: Event | None) -> list[Event]:
        """Synthetic events to feed before ``ev``, the event of a message whose
        ``header.session`` is ``session``."""
        out: list[Event] = []
        if session and session != self.session:
            if self.session:
                out.append(self._restarted(session))
            self.session = session
        elif not session and self._new_kernel_without_session(ev):
            out.append(self._restarted(""))
        elif (
            self._claim is not None
            and ev is not None
            and ev.cell != self._claim.cell
            and not self._last_words(ev)
        ):
            self._claim = None  # the old kernel speaks on: the claim was not kept
        probe = isinstance(ev, Status) and ev.request == "kernel_info_request"
        if probe and ev is not None and ev.cell and ev.cell not in self._probes:
            self._probes.append(ev.cell)
        if isinstance(ev, KernelRestart):
            self._claim = ev
            self._told = self._told or ev.reason == "died"
        elif isinstance(ev, ExecuteInput) and ev.execution_count is not None:
            self._count = ev.execution_count
        return out

    def edge(self, ev: Event) -> list[Event]:
        """What an event from an edge becomes."""
        if isinstance(ev, KernelBack) and ev.session:
            if self.session and ev.session != self.session:
                restarted = self._restarted(ev.session)
                self.session = ev.session
                return [restarted, ev]
            self.session = ev.session
        elif isinstance(ev, KernelGone) and self._claim is not None and not self._claim.restart:
            # confirmed: named, also when the heartbeat had missed before the claim came
            # (a server too busy to answer REST in a flood) and only the clock ends it
            return [KernelGone(self._claim.peer, self._claim.cell, for_good=True)]
        elif isinstance(ev, KernelRestart):  # the edge restarts it: the new kernel is this
            self._claim = ev
        return [ev]

    def _last_words(self, ev: Event) -> bool:
        """The busy/idle around a ``kernel_info`` answer, output in its cell, or
        output of no request at all: no sign of a kernel going on."""
        if isinstance(ev, Status) and ev.request == "kernel_info_request":
            return True
        return not ev.cell or ev.cell in self._probes

    def _new_kernel_without_session(self, ev: Event | None) -> bool:
        if isinstance(ev, Status):
            return ev.state == "starting"
        return (
            isinstance(ev, ExecuteInput)
            and not self.session
            and ev.execution_count is not None
            and 0 < ev.execution_count < self._count
        )

    def _restarted(self, session: str) -> KernelRestarted:
        claim, self._claim = self._claim, None
        told, self._told = self._told, False
        self._count = 0
        if claim is not None and claim.restart:
            return KernelRestarted(claim.peer, claim.cell, session, told)
        return KernelRestarted(KERNEL, "", session, told)
