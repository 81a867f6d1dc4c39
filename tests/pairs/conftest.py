"""What the in-memory pairs share: waiting for a state, driven by events.

Every pair runs both of its real parts on one asyncio loop.  A test waits for
the state that proves what it claims (``await changes.until(pred, what)``):
each part calls ``changes()`` whenever something it holds moved (a message
arrived, a buffer changed, a counter ticked), and the predicate is checked
again then.  The timeout only turns a hang into a failure; it never decides
that something did not happen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

WAIT = 30.0  # seconds before a wait that never comes true fails the test


class Changes:
    """A pulse that any part sets when its state moved, and waits on predicates."""

    def __init__(self) -> None:
        self._moved = asyncio.Event()

    def __call__(self, *_: Any) -> None:
        self._moved.set()

    async def until(self, pred: Callable[[], T], what: str, timeout: float = WAIT) -> T:
        """``pred()`` once it is true; an AssertionError naming ``what`` at the deadline."""

        async def wait() -> T:
            while True:
                self._moved.clear()
                if result := pred():
                    return result
                await self._moved.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, T]], T]:
    """``run(coro)``: the pair's scenario on a fresh loop, failing rather than hanging."""

    def runner(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run(asyncio.wait_for(coro, 4 * WAIT))

    return runner


@pytest.fixture
def changes() -> Changes:
    """A fresh :class:`Changes` for the test's loop."""
    return Changes()
