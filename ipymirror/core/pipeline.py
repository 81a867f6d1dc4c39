"""The one pipeline: messages in, events through, transcript and presence out.

Pure: it never writes.  Transports hand :meth:`Pipeline.feed` batches of raw
messages; edges (the heartbeat, a relay's viewer) hand :meth:`Pipeline.feed_events`
synthetic events (:class:`~ipymirror.core.events.KernelGone`, ``KernelBack``,
``KernelRestarted``, ``Tick``); :class:`~ipymirror.core.lifecycle.Lifecycle` adds
the restarts nobody announced.  Presence and transcript change only by events fed
here, every event under its peer's one name.  Sinks (the recorder, the relay)
see every raw message first; the pipeline returns an :class:`Update` saying what
changed, and whoever shows it decides what to do with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from ipymirror.core.events import KERNEL, Event, Tick
from ipymirror.core.lifecycle import Lifecycle
from ipymirror.core.presence import Presence
from ipymirror.core.protocol import kernel_session_of, to_event
from ipymirror.core.render import Renderer
from ipymirror.core.transcript import Chunk, Transcript

__all__ = ["Message", "Pipeline", "Update"]

Message = dict[str, Any]


@dataclass(frozen=True)
class Update:
    """What a batch changed: committed text (and pictures) to append, and whether to redraw."""

    lines: list[Chunk]
    redraw: bool


class Pipeline:
    """message -> event -> (presence, transcript, listeners); sinks see raw messages."""

    def __init__(
        self, renderer: Renderer, me: str = "", transcript: Transcript | None = None
    ) -> None:
        self.renderer = renderer
        self.transcript = transcript if transcript is not None else Transcript(renderer, me)
        self.presence = Presence(me)
        self.lifecycle = Lifecycle()
        self.sinks: list[Callable[[Message], None]] = []
        self.listeners: list[Callable[[Event], None]] = []
        self._seen = (-1, -1)
        self.unshown = 0  # events whose rendering failed (announced one by one)

    def feed(self, msgs: Iterable[Message], now: float | None = None) -> Update:
        """Handle a batch of messages (that arrived at ``now``, if the edge says)."""
        if now is not None:
            self._dispatch(Tick(KERNEL, "", now))
        sinks, lifecycle, dispatch = self.sinks, self.lifecycle, self._dispatch
        for msg in msgs:
            for sink in sinks:
                sink(msg)
            ev = to_event(msg)
            for synthetic in lifecycle.before(kernel_session_of(msg), ev):
                dispatch(synthetic)
            if ev is not None:
                dispatch(ev)
        return self.update()

    def feed_events(self, events: Iterable[Event]) -> Update:
        """Events from an edge: the heartbeat's, a relay's, the clock's."""
        for ev in events:
            for out in self.lifecycle.edge(ev):
                self._dispatch(out)
        return self.update()

    def _dispatch(self, ev: Event) -> None:
        try:
            presence = self.presence
            presence.feed(ev)
            known = presence.peers.get(ev.peer.session)
            if known is not None and known != ev.peer:
                ev = replace(ev, peer=known)
            self.transcript.feed(ev)
            for listener in self.listeners:
                listener(ev)
        except Exception as exc:  # one odd message (valid, signed) never stops the mirror
            self.unshown += 1
            self.transcript.notice(
                f"a {type(ev).__name__.lower()} message from {ev.peer.label} could not be "
                f"shown ({type(exc).__name__})"
            )

    def notice(self, text: str) -> Update:
        self.transcript.notice(text)
        return self.update()

    def update(self) -> Update:
        """Committed text since the last update, and whether live/status state moved."""
        lines = self.transcript.take_chunks()
        seen = (self.transcript.version, self.presence.version)
        redraw = seen != self._seen
        self._seen = seen
        return Update(lines, redraw)
