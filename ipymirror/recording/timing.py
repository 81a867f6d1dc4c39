"""Playback time as a chain of small pure generators over ``(time, item)`` pairs.

As in asciinema 2.x's ``events.py``::

    recorded times -> relative delays -> idle capped -> absolute -> speed

so ``--idle-limit`` caps the *recorded* pauses and ``--speed`` then divides
everything (idle limit 2 at speed 2 = pauses of at most 1 s).  No clock here:
the player that sleeps lives with the replay command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from ipymirror.core.events import ExecuteInput
from ipymirror.core.protocol import to_event
from ipymirror.recording.format import Record, iopub

__all__ = [
    "adjust_speed",
    "cap_idle",
    "is_cell",
    "schedule",
    "start_at",
    "to_absolute",
    "to_relative",
]

T = TypeVar("T")


def to_relative(events: Iterable[tuple[float, T]]) -> Iterator[tuple[float, T]]:
    """Absolute times -> delays since the previous event (never negative)."""
    prev = 0.0
    for time, item in events:
        yield max(0.0, time - prev), item
        prev = max(prev, time)


def cap_idle(events: Iterable[tuple[float, T]], limit: float | None) -> Iterator[tuple[float, T]]:
    """Delays longer than ``limit`` become ``limit`` (None: unchanged)."""
    if limit is None:
        yield from events
        return
    for delay, item in events:
        yield min(delay, limit), item


def to_absolute(events: Iterable[tuple[float, T]]) -> Iterator[tuple[float, T]]:
    """Delays -> times since the start."""
    time = 0.0
    for delay, item in events:
        time += delay
        yield time, item


def adjust_speed(events: Iterable[tuple[float, T]], speed: float) -> Iterator[tuple[float, T]]:
    """Times (or delays) divided by ``speed``."""
    for time, item in events:
        yield time / speed, item


def start_at(
    events: Iterable[tuple[float, T]], first: Callable[[T], bool]
) -> Iterator[tuple[float, T]]:
    """Drop events before the first for which ``first(item)``; that one is at time 0."""
    it = iter(events)
    for time, item in it:
        if first(item):
            origin = time
            yield 0.0, item
            break
    else:
        return
    for time, item in it:
        yield max(0.0, time - origin), item


def is_cell(count: int) -> Callable[[Record], bool]:
    def check(record: Record) -> bool:
        ev = to_event(record.msg) if record.msg_type == "execute_input" else None
        return isinstance(ev, ExecuteInput) and ev.execution_count == count

    return check


def schedule(
    records: Iterable[Record],
    *,
    speed: float = 1.0,
    idle_limit: float | None = None,
    from_cell: int | None = None,
) -> Iterator[tuple[float, Record]]:
    """When to show each record, in seconds since the playback started."""
    timed: Iterator[tuple[float, Record]] = ((r.t, r) for r in iopub(records))
    if from_cell is not None:
        timed = start_at(timed, is_cell(from_cell))
    return adjust_speed(to_absolute(cap_idle(to_relative(timed), idle_limit)), speed)
