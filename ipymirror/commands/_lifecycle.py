"""Wiring for the commands: a transport, the pipeline, and one frontend each."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from argparse import Namespace
from collections.abc import AsyncIterable, AsyncIterator, Awaitable
from typing import Any, Protocol

from ipymirror.core.presence import Presence
from ipymirror.core.render import Renderer
from ipymirror.terminal.mirror import Mirror
from ipymirror.terminal.watch_view import WatchView
from ipymirror.terminal.writer import TerminalWriter
from ipymirror.transports.base import KernelTransport
from ipymirror.transports.zmq import KernelLink, default_username, resolve_connection_file

__all__ = [
    "background",
    "connected",
    "heartbeat",
    "make_mirror",
    "mirror_for_link",
    "on_signals",
    "open_link",
    "until_stopped",
    "watch_stream",
]

HEARTBEAT_PERIOD = 2.0  # seconds between heartbeat checks (liveness, not messages)


def use_color(args: Namespace, stream: Any) -> bool:
    if getattr(args, "no_color", False) or os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def terminal_width(stream: Any) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 80


async def open_link(args: Namespace, *, join_only: bool = False, name: str = "") -> KernelTransport:
    """Join ``--existing`` (or, unless ``join_only``, start a kernel) as ``--name``
    (else ``name``, else the login name)."""
    username = args.name or name or default_username()
    if args.existing is not None or join_only:
        path = resolve_connection_file(args.existing or None)
        return KernelLink.join(path, username, ssh=args.ssh)
    return await KernelLink.start(args.kernel, username)


@contextlib.asynccontextmanager
async def connected(
    args: Namespace,
    *,
    passive: bool = False,
    name: str = "",
) -> AsyncIterator[KernelTransport]:
    """The one lifecycle: open the transport, connect, hand it over, always close.

    ``passive`` (watch, record, share): join only, no stdin or control channel,
    never shut the kernel down.  A kernel this process started is shut down on
    close.  Every transport is lossless: a broadcast is never dropped on our side.
    """
    link = await open_link(args, join_only=passive, name=name)
    try:
        await link.connect(args.timeout, stdin=not passive, control=not passive)
        yield link
    finally:
        await link.close(shutdown=False if passive else None)


@contextlib.asynccontextmanager
async def background(*coros: Awaitable[Any]) -> AsyncIterator[list[asyncio.Task[Any]]]:
    """Run ``coros`` as tasks for the duration of the block; cancel and reap them after."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def until_stopped(
    work: asyncio.Future[Any], *, sigint: bool = True, ended: asyncio.Future[Any] | None = None
) -> asyncio.Future[Any]:
    """Wait for ``work`` or a stop (SIGTERM/SIGHUP, SIGINT when ``sigint``, or ``ended``);
    re-raise what ``work`` failed with; cancel it otherwise.  Returns ``ended``."""
    loop = asyncio.get_running_loop()
    if ended is None:
        ended = loop.create_future()
    on_signals(loop, ended, sigint=sigint)
    await asyncio.wait([work, ended], return_when=asyncio.FIRST_COMPLETED)
    if work.done() and not work.cancelled():
        work.result()  # an error in the work is raised here
    work.cancel()
    await asyncio.gather(work, return_exceptions=True)
    return ended


def make_mirror(args: Namespace, stream: Any, *, language: str, me: str = "") -> Mirror:
    """The pipeline every viewing frontend uses, drawing on ``stream``."""
    renderer = Renderer(
        width=terminal_width(stream) - 2, color=use_color(args, stream), language=language
    )
    return Mirror(renderer, TerminalWriter(stream, notice=renderer.notice), me=me)


def mirror_for_link(link: KernelTransport, args: Namespace, stream: Any) -> Mirror:
    mirror = make_mirror(args, stream, language=link.language, me=link.session_id)
    mirror.presence.set_state(link.state_at_connect)
    link.on_bad_message = lambda: mirror.notice(
        "ignoring messages that fail the signature check (a client with the wrong key?)"
    )
    link.on_malformed = lambda why: mirror.notice(
        f"the kernel sent a malformed message ({why}); not shown, and any more will not be"
    )
    return mirror


class Shows(Protocol):
    """What the heartbeat tells: a terminal Mirror, or a bare Pipeline (record)."""

    @property
    def presence(self) -> Presence: ...

    def notice(self, text: str) -> object: ...


async def heartbeat(link: KernelTransport, mirror: Shows, dead: asyncio.Event) -> None:
    """Announce once when the kernel stops answering, and once when it is back.

    Two missed checks in a row count as dead, so a quick restart by a peer is
    not reported as a death.  A kernel we started is restarted for everyone.
    """
    misses = 0
    while True:
        await asyncio.sleep(HEARTBEAT_PERIOD)
        beating = link.is_beating()
        misses = 0 if beating else misses + 1
        if misses == 2 and not dead.is_set():
            dead.set()
            mirror.presence.set_state("dead")
            if link.manager is not None and not await link.manager.is_alive():
                mirror.notice("the kernel died; restarting it (same connection file)")
                try:
                    await link.restart()
                    mirror.presence.execution_count = 0
                except Exception as exc:  # keep watching: a peer may bring it back
                    mirror.notice(f"restarting the kernel failed: {exc}")
            else:
                mirror.notice("the kernel stopped answering (no heartbeat)")
        elif beating and dead.is_set():
            dead.clear()
            mirror.presence.set_state("idle")
            mirror.notice("the kernel is answering again")


def on_signals(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], *, sigint: bool = False
) -> None:
    """Resolve ``future`` on SIGTERM/SIGHUP (and SIGINT when no app handles Ctrl-C)."""

    def stop() -> None:
        if not future.done():
            future.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGHUP, *([signal.SIGINT] if sigint else [])):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop)


async def watch_stream(mirror: Mirror, batches: AsyncIterable[list[Any]], what: str) -> None:
    """Show ``batches`` read-only until the user quits or a signal; then commit the rest."""
    interactive = sys.stdout.isatty() and sys.stdin.isatty()
    if interactive:
        mirror.notice(f"watching {what} (read-only)")
    task = asyncio.ensure_future(mirror.run(batches))
    try:
        ended: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        on_signals(asyncio.get_running_loop(), ended, sigint=not interactive)

        def stop(_: object) -> None:  # the output failed, or the stream did
            if not ended.done():
                ended.set_result(None)

        mirror.writer.on_error = stop
        task.add_done_callback(stop)
        await WatchView(mirror, interactive=interactive).run(ended)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    if mirror.writer.error is not None:
        raise mirror.writer.error
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    mirror.transcript.finish_all()
    mirror.flush()
    mirror.writer.flush_now()
