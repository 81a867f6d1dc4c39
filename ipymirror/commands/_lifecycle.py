"""Wiring for the commands: a transport, the pipeline, and one frontend each."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from argparse import Namespace
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol

from ipymirror.core.events import (
    KERNEL,
    Event,
    KernelBack,
    KernelGone,
    KernelRestart,
    KernelRestarted,
    Peer,
    Status,
    Tick,
    tool_session,
)
from ipymirror.core.presence import Presence
from ipymirror.core.render import Renderer
from ipymirror.terminal.graphics import detect
from ipymirror.terminal.images import ImagePainter, drawable_types
from ipymirror.terminal.mirror import Mirror
from ipymirror.terminal.watch_view import WatchView
from ipymirror.terminal.writer import TerminalWriter
from ipymirror.transports.base import KernelTransport
from ipymirror.transports.own_kernel import DiedAtStart
from ipymirror.transports.server.urls import is_server_url
from ipymirror.transports.zmq import KernelLink, default_username, resolve_connection_file

__all__ = [
    "background",
    "connected",
    "heartbeat",
    "listening",
    "make_mirror",
    "mirror_for_link",
    "on_signals",
    "open_link",
    "probe",
    "until_stopped",
    "watch_stream",
]

HEARTBEAT_PERIOD = 1.0  # seconds between heartbeat checks (liveness, not messages)
DEAD_AFTER = 4  # missed checks in a row: the kernel is gone (a quick restart is not a death)
GONE_FOR_GOOD = 10.0  # seconds of silence after which it will not come back (restarts take ~2)
PROBE_TIMEOUT = 2.0  # seconds to wait for the kernel_info that tells which kernel answers
IOPUB_WAIT = 0.25  # seconds to wait for a probe's status on IOPub before asking again
IOPUB_DEADLINE = 5.0  # seconds after which an answering kernel is believed without it


def is_terminal(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def use_color(args: Namespace, stream: Any) -> bool:
    if getattr(args, "no_color", False) or os.environ.get("NO_COLOR"):
        return False
    return is_terminal(stream)


def terminal_width(stream: Any) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 80


async def open_link(
    args: Namespace, *, join_only: bool = False, name: str = "", role: str = ""
) -> KernelTransport:
    """Join ``--existing`` (or, unless ``join_only``, start a kernel) as ``--name``
    (else ``name``, else the login name).  A server URL goes to the websocket transport.

    ``role`` marks one of ipymirror's own tools (watch, record, share, replay):
    its session id says so (:func:`tool_session`), and no ipymirror lists it
    among the people in the room.
    """
    username = args.name or name or default_username()
    ip = getattr(args, "ip", "") or None
    link: KernelTransport
    if is_server_url(args.existing) or getattr(args, "server", None):
        from ipymirror.commands.server import open_server_link

        link = await open_server_link(args, username, join_only=join_only)
    elif args.existing is not None or join_only:
        path = resolve_connection_file(args.existing or None)
        sshkey = getattr(args, "sshkey", "") or None
        link = KernelLink.join(path, username, ssh=args.ssh, sshkey=sshkey, ip=ip)
    else:
        link = await KernelLink.start(args.kernel, username, ip=ip)
    if role:
        link.session_id = tool_session(role, uuid.uuid4().hex)
    return link


@contextlib.asynccontextmanager
async def connected(
    args: Namespace,
    *,
    passive: bool = False,
    name: str = "",
    role: str = "",
) -> AsyncIterator[KernelTransport]:
    """The one lifecycle: open the transport, connect, hand it over, always close.

    ``passive`` (watch, record, share): join only, no stdin or control channel,
    never shut the kernel down; ``role`` names such a tool (:func:`open_link`).
    A kernel this process started is shut down on close, and started once more,
    on new ports, if it died at start because something took one of its ports
    (:mod:`~ipymirror.transports.own_kernel`).  Every transport is lossless: a
    broadcast is never dropped on our side.
    """
    link = await open_link(args, join_only=passive, name=name, role=role)
    try:
        try:
            await link.connect(args.timeout, stdin=not passive, control=not passive)
        except DiedAtStart as died:
            if not died.port_clash:
                raise
            # Something took one of its ports before it bound them: new ports, once.
            await link.close()
            link = await open_link(args, name=name, role=role)
            await link.connect(args.timeout)
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
    """The pipeline every viewing frontend uses, drawing on ``stream``.

    Images: detected (or as ``--images`` says) here, before any prompt exists.
    """
    color = use_color(args, stream)
    graphics = detect(getattr(args, "images", "auto") if color else "off", stdout=stream)
    painter = None
    if graphics.on:
        painter = ImagePainter(graphics.protocol, graphics.cell, tmux=graphics.tmux)
    rows = getattr(args, "image_rows", 20)
    with contextlib.suppress(AttributeError, OSError, ValueError):
        rows = max(1, min(rows, os.get_terminal_size(stream.fileno()).lines - 3))
    renderer = Renderer(
        width=terminal_width(stream) - 2,
        color=color,
        language=language,
        light=getattr(args, "colors", "") == "LightBG",
        images=drawable_types() if painter is not None else frozenset(),
        image_rows=rows,
        cell=(1, 2) if graphics.protocol == "blocks" else graphics.cell,  # a pixel per half-cell
    )
    writer = TerminalWriter(stream, notice=renderer.notice, painter=painter)
    if painter is not None:
        loop = asyncio.get_running_loop()

        def redraw() -> None:  # called on the painter's thread; the loop may be gone (exit)
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(writer.refresh)

        painter.on_ready = redraw  # (its worker process starts with the first picture)
    return Mirror(renderer, writer, me=me)


def mirror_for_link(link: KernelTransport, args: Namespace, stream: Any) -> Mirror:
    mirror = make_mirror(args, stream, language=link.language, me=link.session_id)
    if link.state_at_connect == "idle":  # the shell answered kernel_info: it runs, idle
        mirror.feed_events([KernelBack(KERNEL, "", link.kernel_session)])
    link.on_bad_message = lambda: mirror.notice(
        "ignoring messages that fail the signature check (a client with the wrong key?)"
    )
    link.on_malformed = lambda why: mirror.notice(
        f"the kernel sent a malformed message ({why}); not shown, and any more will not be"
    )
    link.on_notice = mirror.notice
    # A screen would rather show fewer lines, counted, than grow without bound; a pipe
    # blocks and loses nothing, and a recording (--record) keeps every message.
    if is_terminal(stream) and not getattr(args, "record", None):
        link.shed_when_behind()
    return mirror


class Shows(Protocol):
    """What the heartbeat tells: a terminal Mirror, or a bare Pipeline (record)."""

    @property
    def presence(self) -> Presence: ...

    @property
    def listeners(self) -> list[Callable[[Event], None]]: ...

    def notice(self, text: str) -> object: ...

    def feed_events(self, events: list[Event]) -> object: ...


@contextlib.contextmanager
def listening(shows: Shows | None, listener: Callable[[Event], None]) -> Iterator[None]:
    """``listener`` hears the pipeline's events for the block only: waiting for one
    costs nothing on the way of every other event, before or after."""
    if shows is None:
        yield
        return
    shows.listeners.append(listener)
    try:
        yield
    finally:
        shows.listeners.remove(listener)


async def probe(link: KernelTransport, shows: Shows | None = None) -> str | None:
    """Ask ``kernel_info``: the session of the kernel that answers (None: no answer).

    With ``shows``, answer only once IOPub has carried the status of a probe too.
    After a restart each ZMQ socket reconnects on its own timer (0.1-0.2 s, later
    under load), so the shell may answer while IOPub is still away: a cell run
    then would show nothing (its broadcasts are lost to us, ZMQ's slow joiner).
    So the probe is asked again until IOPub delivers, for up to ``IOPUB_DEADLINE``
    seconds (a kernel that publishes no status for it is believed after that).
    """
    asked: set[str] = set()
    delivered = asyncio.Event()

    def on_event(ev: Event) -> None:
        if isinstance(ev, Status) and ev.cell in asked:
            delivered.set()

    loop = asyncio.get_running_loop()
    deadline = loop.time() + IOPUB_DEADLINE
    with listening(shows, on_event):
        while True:
            msg_id = link.probe()
            asked.add(msg_id)
            try:
                reply = await link.request(msg_id, PROBE_TIMEOUT)
            except TimeoutError:
                return None
            if shows is None or loop.time() >= deadline:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(delivered.wait(), IOPUB_WAIT)
                break
    header = reply.get("header")
    session = header.get("session") if isinstance(header, dict) else None
    if not isinstance(session, str) or session == link.session_id:  # IRkernel echoes ours
        return ""
    return session


#: Kernel states in which the heartbeat asks ``kernel_info`` which kernel answers.
PROBE_STATES = ("starting", "unknown", "restarting", "shutting down")


async def heartbeat(
    link: KernelTransport,
    mirror: Shows,
    dead: asyncio.Event,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Tell the pipeline, as events, what the heartbeat and the clock say.

    A :class:`Tick` every check; :class:`KernelGone` after ``DEAD_AFTER`` missed
    checks, ``for_good`` after ``GONE_FOR_GOOD`` s; :class:`KernelBack` when it
    beats again, with the session of the kernel that answers ``kernel_info``
    (another one: it was restarted meanwhile).  A kernel we started is restarted
    for everyone when it dies.  Any miss, and a kernel still ``starting`` or
    claimed to be restarting (a server may relay nothing of the new kernel until
    asked), is followed by a probe, so a restart between two checks is seen too.
    """
    misses = 0
    silent_since: float | None = None
    for_good = False

    def follow(ev: Event) -> None:  # ``dead`` says what the events said, whoever saw it first
        if isinstance(ev, KernelGone):
            dead.set()
        elif isinstance(ev, KernelBack | KernelRestarted):
            dead.clear()

    mirror.listeners.append(follow)
    while True:
        await asyncio.sleep(HEARTBEAT_PERIOD)
        now = clock()
        mirror.feed_events([Tick(KERNEL, "", now)])
        if not link.is_beating():
            misses += 1
            silent_since = now if silent_since is None else silent_since
            if misses == DEAD_AFTER and not dead.is_set():
                dead.set()
                mirror.feed_events([KernelGone(KERNEL, "")])
                if await _restart_own(link, mirror):
                    dead.clear()
                    misses, silent_since = 0, None
            elif dead.is_set() and not for_good and now - silent_since >= GONE_FOR_GOOD:
                for_good = True
                mirror.feed_events([KernelGone(KERNEL, "", for_good=True)])
            continue
        missed, misses, silent_since, for_good = misses, 0, None, False
        if missed or dead.is_set() or mirror.presence.state in PROBE_STATES:
            session = await probe(link, mirror)
            if session is not None or dead.is_set():
                dead.clear()
                mirror.feed_events([KernelBack(KERNEL, "", session or "")])


async def _restart_own(link: KernelTransport, mirror: Shows) -> bool:
    """Restart a kernel we started that died; True if it is back.

    The restart is told as a claim of ours first, so that the new kernel, however
    it is first seen (its IOPub, or our probe), is one restart, named after us.
    """
    if link.manager is None or await link.manager.is_alive():
        return False
    mirror.notice("the kernel died; restarting it (same connection file)")
    mirror.feed_events([KernelRestart(Peer(link.session_id, link.username), "", restart=True)])
    try:
        await link.restart()
    except Exception as exc:  # keep watching: a peer may bring it back
        mirror.notice(f"restarting the kernel failed: {exc}")
        return False
    session = await probe(link, mirror) or ""
    mirror.feed_events([KernelBack(KERNEL, "", session)])
    return True


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


async def watch_stream(mirror: Mirror, batches: AsyncIterable[list[Any]], what: str) -> bool:
    """Show ``batches`` read-only until the user quits, a signal, or the kernel is
    gone for good (then True); commit the rest."""
    interactive = sys.stdout.isatty() and sys.stdin.isatty()
    if interactive:
        mirror.notice(f"watching {what} (read-only)")
    task = asyncio.ensure_future(mirror.run(batches))
    ended: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def on_event(ev: Event) -> None:
        if isinstance(ev, KernelGone) and ev.for_good and not ended.done():
            ended.set_result("gone")

    mirror.pipeline.listeners.append(on_event)
    try:
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
    mirror.finish()
    return ended.done() and ended.result() == "gone"
