"""Typed events: what happened on the kernel, and who caused it.

A raw Jupyter message never travels past :mod:`ipymirror.core.protocol`; everything
downstream (renderer, transcript, status line, recorder) sees these frozen
dataclasses instead.  Every event carries the :class:`Peer` whose request caused
it (from ``parent_header.session``) and that request's ``msg_id`` (``cell``), so
output can be attributed even when no ``execute_input`` was ever broadcast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ClearOutput",
    "Display",
    "Error",
    "Event",
    "ExecuteInput",
    "KernelBack",
    "KernelGone",
    "KernelRestart",
    "KernelRestarted",
    "OutputDropped",
    "Peer",
    "Result",
    "Status",
    "Stream",
    "Submitted",
    "Tick",
    "is_tool",
    "tool_session",
]

#: Session ids of ipymirror's own tools (watch, record, share, replay) start with
#: this, so every ipymirror can tell people from tools: ``ipym-<role>-<uuid>``.
TOOL_PREFIX = "ipym-"


def tool_session(role: str, unique: str) -> str:
    """The session id a tool connects with (``role``: watch, record, share, replay)."""
    return f"{TOOL_PREFIX}{role}-{unique}"


def is_tool(session: str) -> bool:
    return session.startswith(TOOL_PREFIX)


@dataclass(frozen=True, slots=True)
class Peer:
    """A client of the kernel, identified by its session id.

    ``session`` is the requester's ``parent_header.session``; the empty string
    stands for the kernel itself (messages with no parent).
    """

    session: str
    username: str = ""

    @property
    def tag(self) -> str:
        """Short, stable tag that tells two sessions of one user apart."""
        session = self.session
        if session.startswith(TOOL_PREFIX):  # ipym-watch-<uuid>: tag the unique part
            session = session.split("-", 2)[-1]
        return session.replace("-", "")[:4] or "----"

    @property
    def label(self) -> str:
        """``name·tag``, on one line whatever the peer sent as its name."""
        if not self.session:
            return "kernel"
        name = " ".join(self.username.split()) or "anonymous"
        return f"{name}·{self.tag}"


KERNEL = Peer("", "kernel")


@dataclass(frozen=True, slots=True)
class Event:
    """Base: ``peer`` caused it, ``cell`` is the parent request's msg_id ('' if none)."""

    peer: Peer
    cell: str


@dataclass(frozen=True, slots=True)
class ExecuteInput(Event):
    code: str
    execution_count: int | None = None


@dataclass(frozen=True, slots=True)
class Stream(Event):
    name: str  # "stdout" or "stderr"
    text: str


@dataclass(frozen=True, slots=True)
class Result(Event):
    """An ``execute_result``: a MIME bundle shown as ``Out[n]``."""

    data: Mapping[str, Any]
    execution_count: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Display(Event):
    """``display_data`` or, with ``update=True``, ``update_display_data``."""

    data: Mapping[str, Any]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    display_id: str | None = None
    update: bool = False


@dataclass(frozen=True, slots=True)
class ClearOutput(Event):
    wait: bool = False


@dataclass(frozen=True, slots=True)
class Error(Event):
    ename: str
    evalue: str
    traceback: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Status(Event):
    """Kernel execution state; ``request`` is the parent's msg_type.

    Status covers *every* request (kernel_info, complete, ...), so consumers
    decide by ``request`` whether it means "a cell is running".
    """

    state: str
    request: str = ""


@dataclass(frozen=True, slots=True)
class KernelRestart(Event):
    """A ``shutdown_reply`` broadcast on IOPub (``restart`` tells which kind).

    Only a claim: a peer can make the kernel publish anything.  What happened is
    told by :class:`KernelRestarted` (a new kernel seen) and :class:`KernelGone`.
    A Jupyter Server also says so itself, with a ``status`` of ``restarting`` (it
    restarted a kernel that died: ``reason="died"``) or ``dead`` (that restart
    failed: ``reason="dead"``); those come from the server, not from a peer.
    """

    restart: bool = False
    reason: str = ""


# -- synthetic events: made by the pipeline or the edges, never by a message --


@dataclass(frozen=True, slots=True)
class KernelRestarted(Event):
    """A new kernel process is seen (its ``header.session`` changed, or it said
    ``starting``).  ``peer`` is who asked for it; :data:`KERNEL` when unknown.
    ``told``: the server already said it restarted the kernel (no second notice)."""

    session: str = ""
    told: bool = False


@dataclass(frozen=True, slots=True)
class KernelGone(Event):
    """The heartbeat stopped.  ``for_good``: long enough (or after a shutdown
    that the silence confirms; ``peer`` then asked for it) that it will not come
    back by itself."""

    for_good: bool = False


@dataclass(frozen=True, slots=True)
class KernelBack(Event):
    """The kernel answers (at connect, or again after :class:`KernelGone`);
    ``session`` is its ``header.session`` ('' when unknown)."""

    session: str = ""


@dataclass(frozen=True, slots=True)
class Submitted(Event):
    """Your own cell, sent: running (``code`` its first line) from now, before the
    kernel's busy says so, until its idle or the kernel's end."""

    code: str = ""


@dataclass(frozen=True, slots=True)
class Tick(Event):
    """The time at the edge (seconds, any origin): the core keeps no clock."""

    now: float = 0.0


@dataclass(frozen=True, slots=True)
class OutputDropped(Event):
    """A Jupyter Server stopped relaying a cell's IOPub: its rate limit was hit.

    ``limit`` is "message rate" or "data rate"; ``setting`` is the server option
    that raises it.  The server sends this as a stderr ``stream`` of its own text,
    which is never shown as the peer's stderr.
    """

    limit: str
    setting: str
