"""The pipeline drawn on a terminal: what every viewing frontend holds.

:class:`Mirror` owns no logic of its own: it hands each batch to the pure
:class:`~ipymirror.core.pipeline.Pipeline` and each resulting update to the
:class:`~ipymirror.terminal.writer.TerminalWriter`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, Callable, Iterable, Iterator

from ipymirror.core.events import Event
from ipymirror.core.pipeline import Message, Pipeline, Update
from ipymirror.core.presence import Presence
from ipymirror.core.render import Renderer
from ipymirror.core.transcript import Transcript
from ipymirror.terminal.writer import TerminalWriter

__all__ = ["Mirror"]

SLICE = 0.02  # seconds of message handling between two turns of the event loop


class Mirror:
    def __init__(
        self,
        renderer: Renderer,
        writer: TerminalWriter,
        me: str = "",
        transcript: Transcript | None = None,
    ) -> None:
        self.pipeline = Pipeline(renderer, me, transcript)
        self.writer = writer

    @property
    def renderer(self) -> Renderer:
        return self.pipeline.renderer

    @property
    def transcript(self) -> Transcript:
        return self.pipeline.transcript

    @property
    def presence(self) -> Presence:
        return self.pipeline.presence

    @property
    def listeners(self) -> list[Callable[[Event], None]]:
        return self.pipeline.listeners

    def show(self, update: Update) -> None:
        self.writer.push(update.lines)
        if update.redraw:
            self.writer.refresh()

    def feed(self, msgs: Iterable[Message], now: float | None = None) -> None:
        """Handle a batch of messages: one frame, one redraw at most."""
        self.show(self.pipeline.feed(msgs, now))

    def feed_events(self, events: Iterable[Event]) -> None:
        """Events from an edge (heartbeat, relay, clock): see Pipeline.feed_events."""
        self.show(self.pipeline.feed_events(events))

    def notice(self, text: str) -> None:
        self.show(self.pipeline.notice(text))

    def flush(self) -> None:
        self.show(self.pipeline.update())

    def finish(self) -> None:
        """At the end: what was still live is final, everything is written, then close."""
        self.pipeline.transcript.finish_all()
        self.flush()
        try:
            self.writer.flush_now()
        finally:
            self.close()

    def close(self) -> None:
        """Stop drawing images (pending ones are dropped): exit is not held up by them."""
        if self.writer.painter is not None:
            self.writer.painter.close()

    async def run(self, batches: AsyncIterable[list[Message]]) -> None:
        """Feed every batch; a batch that takes long is fed in slices of ~``SLICE``
        seconds, with a turn of the event loop between them (keys are echoed)."""
        async for batch in batches:
            now = time.monotonic()  # arrival time: who is active
            msgs = iter(batch)
            more = [True]
            while more[0]:
                self.feed(_slice(msgs, more), now)
                if more[0]:
                    await asyncio.sleep(0)


def _slice(msgs: Iterator[Message], more: list[bool]) -> Iterator[Message]:
    """Messages from ``msgs`` for about SLICE seconds; ``more[0]`` says if any are left."""
    end = time.monotonic() + SLICE
    for msg in msgs:
        yield msg
        if time.monotonic() > end:
            return
    more[0] = False
