"""The kernel's life and the server's limits as notice lines: each change told once.

Pure: fed the lifecycle events (:mod:`ipymirror.core.lifecycle` made them
trustworthy) and the server's :class:`OutputDropped`; says which lines of
ipymirror's own to commit, and whether the cells still open belong to a kernel
that is gone (then the transcript ends them first).
"""

from __future__ import annotations

from dataclasses import dataclass

from ipymirror.core.events import (
    Event,
    KernelBack,
    KernelGone,
    KernelRestart,
    KernelRestarted,
    OutputDropped,
)

__all__ = ["LIFE_EVENTS", "Notices", "Told"]

#: The events :meth:`Notices.feed` speaks about.
LIFE_EVENTS = (KernelRestart, KernelRestarted, KernelGone, KernelBack, OutputDropped)
MAX_TOLD_CELLS = 64  # cells whose dropped output was told, remembered to tell it once
_LIMIT_WORD = {"message rate": "rate limit", "data rate": "data rate limit"}


@dataclass(frozen=True)
class Told:
    """What an event means on screen: end the open cells first?  Then these lines."""

    end_cells: bool = False
    lines: tuple[str, ...] = ()


class Notices:
    def __init__(self) -> None:
        self._gone = False  # the heartbeat stopped and nothing came back yet
        self._gone_for_good = False
        self._dropped: set[tuple[str, str]] = set()  # (cell, limit) already told

    def feed(self, ev: Event) -> Told:
        if isinstance(ev, OutputDropped):
            return self._dropped_output(ev)
        who = ev.peer.label if ev.peer.session else "unknown"
        if isinstance(ev, KernelRestart) and ev.reason:  # the server's own word: no claim
            if ev.reason == "died":
                return Told(True, ("the kernel died; the server restarted it",))
            return Told(True, ("the kernel died and the server could not restart it",))
        if isinstance(ev, KernelRestart):  # a claim: the kernel may still answer
            return Told(lines=() if ev.restart else (f"{who} asked the kernel to shut down",))
        if isinstance(ev, KernelBack):
            back, self._gone = self._gone, False
            return Told(lines=("the kernel is answering again",) if back else ())
        if isinstance(ev, KernelRestarted):
            again = "the kernel is answering again; " if self._gone else ""
            self._gone = False
            if ev.told:  # the server said so already
                return Told(True)
            return Told(
                True, (f"{again}kernel restarted by {who} (a new kernel: its variables are gone)",)
            )
        if isinstance(ev, KernelGone):
            if ev.for_good and not self._gone_for_good:
                self._gone = self._gone_for_good = True
                if ev.peer.session:
                    return Told(True, (f"the kernel shut down (asked by {who})",))
                return Told(True, ("the kernel is gone (no heartbeat for a while)",))
            if not self._gone:
                self._gone = True
                return Told(True, ("the kernel stopped answering (no heartbeat)",))
            return Told(True)
        return Told()

    def _dropped_output(self, ev: OutputDropped) -> Told:
        """Once per cell and limit: the server may say it once per rate window."""
        if (ev.cell, ev.limit) in self._dropped:
            return Told()
        if len(self._dropped) >= MAX_TOLD_CELLS:
            self._dropped.clear()
        self._dropped.add((ev.cell, ev.limit))
        word = _LIMIT_WORD.get(ev.limit, ev.limit)
        return Told(lines=(f"the server dropped output: {word}; raise {ev.setting}",))
