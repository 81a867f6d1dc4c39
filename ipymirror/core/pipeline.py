"""The one pipeline: messages in, events through, transcript and presence out.

Pure: it never writes.  Transports hand :meth:`Pipeline.feed` batches of raw
messages; sinks (the recorder, the relay) see every raw message first; the
pipeline returns an :class:`Update` saying what changed, and whoever shows it
(the terminal's :class:`~ipymirror.terminal.mirror.Mirror`, a recorder that
shows nothing) decides what to do with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ipymirror.core.events import Event
from ipymirror.core.presence import Presence
from ipymirror.core.protocol import to_event
from ipymirror.core.render import Renderer
from ipymirror.core.transcript import Transcript

__all__ = ["Message", "Pipeline", "Update"]

Message = dict[str, Any]


@dataclass(frozen=True)
class Update:
    """What a batch changed: committed text to append, and whether to redraw."""

    lines: list[str]
    redraw: bool


class Pipeline:
    """message -> event -> (presence, transcript, listeners); sinks see raw messages."""

    def __init__(
        self, renderer: Renderer, me: str = "", transcript: Transcript | None = None
    ) -> None:
        self.renderer = renderer
        self.transcript = transcript if transcript is not None else Transcript(renderer, me)
        self.presence = Presence(me)
        self.sinks: list[Callable[[Message], None]] = []
        self.listeners: list[Callable[[Event], None]] = []
        self._seen = (-1, -1)
        self.unshown = 0  # events whose rendering failed (announced one by one)

    def feed(self, msgs: Iterable[Message]) -> Update:
        """Handle a batch of messages; one :class:`Update` for the whole batch."""
        transcript, presence, sinks, listeners = (
            self.transcript,
            self.presence,
            self.sinks,
            self.listeners,
        )
        for msg in msgs:
            for sink in sinks:
                sink(msg)
            ev = to_event(msg)
            if ev is None:
                continue
            try:
                presence.feed(ev)
                transcript.feed(ev)
                for listener in listeners:
                    listener(ev)
            except Exception as exc:  # one odd message (valid, signed) never stops the mirror
                self.unshown += 1
                transcript.notice(
                    f"a {type(ev).__name__.lower()} message from {ev.peer.label} could not be "
                    f"shown ({type(exc).__name__})"
                )
        return self.update()

    def notice(self, text: str) -> Update:
        self.transcript.notice(text)
        return self.update()

    def update(self) -> Update:
        """Committed text since the last update, and whether live/status state moved."""
        lines = self.transcript.take()
        seen = (self.transcript.version, self.presence.version)
        redraw = seen != self._seen
        self._seen = seen
        return Update(lines, redraw)
