"""Wiring for the commands: a transport, the pipeline, and one frontend each."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from argparse import Namespace
from collections.abc import AsyncIterable
from typing import Any

from ipymirror.core.events import Peer
from ipymirror.core.pipeline import Mirror
from ipymirror.core.render import Renderer
from ipymirror.errors import ExitStatus
from ipymirror.terminal.writer import Screen
from ipymirror.transports.zmq import KernelLink, default_username, resolve_connection_file

__all__ = ["run_console", "run_watch"]

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


async def open_link(args: Namespace) -> KernelLink:
    """Join ``--existing`` (or start a kernel) and set up the client identity."""
    username = args.name or default_username()
    if args.existing is not None or getattr(args, "join_only", False):
        path = resolve_connection_file(args.existing or None)
        return KernelLink.join(path, username, ssh=args.ssh)
    return await KernelLink.start(args.kernel, username)


def make_mirror(args: Namespace, stream: Any, *, language: str, me: str = "") -> Mirror:
    """The pipeline every viewing frontend uses, drawing on ``stream``."""
    renderer = Renderer(
        width=terminal_width(stream) - 2, color=use_color(args, stream), language=language
    )
    return Mirror(renderer, Screen(stream, notice=renderer.notice), me=me)


def mirror_for_link(link: KernelLink, args: Namespace, stream: Any) -> Mirror:
    mirror = make_mirror(args, stream, language=link.language, me=link.session_id)
    mirror.room.set_state(link.state_at_connect)
    link.on_bad_message = lambda: mirror.notice(
        "ignoring messages that fail the signature check (a client with the wrong key?)"
    )
    return mirror


async def heartbeat(link: KernelLink, mirror: Mirror, dead: asyncio.Event) -> None:
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
            mirror.room.set_state("dead")
            if link.manager is not None and not await link.manager.is_alive():
                mirror.notice("the kernel died; restarting it (same connection file)")
                try:
                    await link.restart()
                    mirror.room.execution_count = 0
                except Exception as exc:  # keep watching: a peer may bring it back
                    mirror.notice(f"restarting the kernel failed: {exc}")
            else:
                mirror.notice("the kernel stopped answering (no heartbeat)")
        elif beating and dead.is_set():
            dead.clear()
            mirror.room.set_state("idle")
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


async def run_console(args: Namespace) -> ExitStatus:
    from jupyter_core.paths import jupyter_data_dir

    from ipymirror.commands.console import Console

    link = await open_link(args)
    tasks: list[asyncio.Task[Any]] = []
    recorder = None
    if getattr(args, "record", None):
        from ipymirror.commands.record import Recorder

        link.lossless()  # a recording must not lose what a slow moment would drop
    try:
        await link.connect(args.timeout)
        stream = sys.stdout
        mirror = mirror_for_link(link, args, stream)
        me = Peer(link.session_id, link.client.session.username)
        history = os.path.join(jupyter_data_dir(), "ipymirror", "history")
        console = Console(link, mirror, me, history)
        mirror.listeners.append(console.on_event)
        if getattr(args, "record", None):
            recorder = Recorder.for_link(args.record, link, on_error=mirror.notice)
            mirror.sinks.append(recorder.write)
            mirror.notice(f"recording to {args.record}")
        if link.manager is not None:
            mirror.notice(
                f"started a {link.description}; peers join with: "
                f"ipymirror --existing {link.where}  (jupyter console --existing works too)"
            )
        else:
            mirror.notice(f"joined the {link.description} of {link.where} as {me.label}")
        tasks.append(asyncio.ensure_future(mirror.run(link.iopub_batches())))
        tasks.append(asyncio.ensure_future(heartbeat(link, mirror, console.dead)))
        ended: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        on_signals(asyncio.get_running_loop(), ended)
        run = asyncio.ensure_future(console.run())
        await asyncio.wait([run, ended], return_when=asyncio.FIRST_COMPLETED)
        if not run.done():
            run.cancel()
        if link.bad_signatures:
            mirror.notice(f"{link.bad_signatures} messages failed the signature check in all")
        mirror.screen.flush_now()
        return ExitStatus.OK
    finally:
        for task in tasks:
            task.cancel()
        if recorder is not None:
            recorder.close()
        await link.close()


async def watch_stream(mirror: Mirror, batches: AsyncIterable[list[Any]], what: str) -> None:
    """Show ``batches`` read-only until the user quits or a signal; then commit the rest."""
    from ipymirror.terminal.watch_view import Watch

    interactive = sys.stdout.isatty() and sys.stdin.isatty()
    if interactive:
        mirror.notice(f"watching {what} (read-only)")
    task = asyncio.ensure_future(mirror.run(batches))
    try:
        ended: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        on_signals(asyncio.get_running_loop(), ended, sigint=not interactive)
        await Watch(mirror, interactive=interactive).run(ended)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    mirror.transcript.finish_all()
    mirror.flush()
    mirror.screen.flush_now()


async def run_watch(args: Namespace) -> ExitStatus:

    if getattr(args, "ticket", None) or getattr(args, "ticket_file", None):
        from ipymirror.transports.share.viewer import (
            run_watch_relay,  # a relay's viewer: no kernel, no key
        )

        return await run_watch_relay(args)
    args.join_only = True
    link = await open_link(args)
    tasks: list[asyncio.Task[Any]] = []
    try:
        await link.connect(args.timeout, stdin=False, control=False)
        mirror = mirror_for_link(link, args, sys.stdout)
        tasks.append(asyncio.ensure_future(heartbeat(link, mirror, asyncio.Event())))
        what = f"the {link.description} of {link.where}"
        await watch_stream(mirror, link.iopub_batches(), what)
        return ExitStatus.OK
    finally:
        for task in tasks:
            task.cancel()
        await link.close(shutdown=False)
