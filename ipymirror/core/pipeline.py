"""The one pipeline: messages in, events through, transcript, room and sinks out.

Transports (ZMQ today; a server websocket, the relay or a recording later)
call :meth:`Mirror.feed` with batches of messages; frontends read the
transcript's live lines and the room's state; sinks (the recorder) see every
raw message before anything else does.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

from ipymirror.core.events import Event
from ipymirror.core.presence import Room
from ipymirror.core.protocol import to_event
from ipymirror.core.render import Renderer
from ipymirror.core.transcript import Transcript
from ipymirror.terminal.writer import Screen

__all__ = ["Mirror"]

Message = dict[str, Any]


class Mirror:
    def __init__(
        self,
        renderer: Renderer,
        screen: Screen,
        me: str = "",
        transcript: Transcript | None = None,
    ) -> None:
        self.renderer = renderer
        self.screen = screen
        self.transcript = transcript if transcript is not None else Transcript(renderer, me)
        self.room = Room(me)
        self.sinks: list[Callable[[Message], None]] = []
        self.listeners: list[Callable[[Event], None]] = []
        self._seen = (-1, -1)

    def feed(self, msgs: Iterable[Message]) -> None:
        """Handle a batch of messages: one screen frame, one redraw at most."""
        transcript, room, sinks, listeners = self.transcript, self.room, self.sinks, self.listeners
        for msg in msgs:
            for sink in sinks:
                sink(msg)
            ev = to_event(msg)
            if ev is not None:
                room.feed(ev)
                transcript.feed(ev)
                for listener in listeners:
                    listener(ev)
        self.flush()

    def notice(self, text: str) -> None:
        self.transcript.notice(text)
        self.flush()

    def flush(self) -> None:
        self.screen.push(self.transcript.take())
        seen = (self.transcript.version, self.room.version)
        if seen != self._seen:
            self._seen = seen
            self.screen.refresh()

    async def run(self, batches: AsyncIterable[list[Message]]) -> None:
        async for batch in batches:
            self.feed(batch)
