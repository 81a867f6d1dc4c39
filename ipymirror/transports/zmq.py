"""The ZMQ transport: find, start or join a kernel; read IOPub; ask and await replies.

Everything here is I/O and lives at the edge.  Lookups, sessions, signatures and
kernel processes are jupyter_client's; this module only adds what a mirror
needs on top: batched IOPub reads (one wake-up per burst, not per message),
replies routed to whoever awaits them by ``msg_id``, bad signatures counted
instead of raised, and errors turned into one-line :class:`MirrorError`s.

Every IOPub subscription is lossless (no high-water mark on our side): a
subscriber that falls behind catches up instead of losing messages silently.
What may drop says how many: the terminal writer (a slow terminal) and, for a
display that falls far behind the kernel, the :class:`Shedder` (whole lines).

A message that fails :meth:`KernelLink.decode` is one of two things, told
apart and counted apart: *unauthenticated* (no, a wrong or a replayed
signature: ignored) or *malformed* (signed with the kernel's key, but not a
message: a null header, JSON nested deeper than Python parses).  A malformed
message is still delivered, its unreadable parts kept as text under ``raw``,
so a recorder keeps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import zmq
from jupyter_client import find_connection_file
from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.session import new_id
from jupyter_core.paths import jupyter_runtime_dir

from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.transports.base import KernelInfo
from ipymirror.transports.fast_decode import deserialize
from ipymirror.transports.kernel_files import remove_if_harmless
from ipymirror.transports.own_kernel import OwnKernel, died_at_start, start_kernel
from ipymirror.transports.salvage import is_signed, raw_message
from ipymirror.transports.shedding import BACKLOG, Shedder

__all__ = ["KernelLink", "default_username", "resolve_connection_file"]

BATCH = 512  # IOPub messages handled per wake-up, at most


def resolve_connection_file(spec: str | None) -> str:
    """Path of a connection file: a path, a name in the runtime dir, or the newest."""
    try:
        if spec is None:
            return find_connection_file()
        if os.path.isfile(spec):
            return os.path.abspath(spec)
        return find_connection_file(spec)
    except OSError:
        where = jupyter_runtime_dir()
        if spec is None:
            raise MirrorError(
                f"no running kernel found in {where} (start one, or pass a connection file)",
                ExitStatus.CONNECTION_FILE,
            ) from None
        raise MirrorError(
            f"connection file not found: {spec} (looked here and in {where})",
            ExitStatus.CONNECTION_FILE,
        ) from None


def default_username() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "anonymous"


class KernelLink(KernelInfo):
    """One client connection to a kernel, with reply routing and IOPub batches.

    ``manager`` is set when ipymirror started the kernel itself (then it may
    interrupt it by signal and shuts it down on exit).
    """

    def __init__(self, client: AsyncKernelClient, manager: Any = None, where: str = "") -> None:
        self.client = client
        self.manager = manager
        self.where = where or client.connection_file
        self.bad_signatures = 0
        self.malformed = 0
        #: False: IOPub ``content`` is left as the signed JSON bytes, unparsed (the
        #: relay passes it on as it is: less work per message than the kernel did).
        self.parse_content = True
        #: Set by a display (console, watch): drop whole stream lines when this process
        #: falls ``BACKLOG`` messages behind, and tell how many (see shedding).
        self.shedder: Shedder | None = None
        self.state_at_connect = "unknown"
        self.kernel_info: dict[str, Any] = {}
        self.kernel_session = ""  # header.session of the kernel_info_reply: which kernel process
        self._early: list[dict[str, Any]] = []  # IOPub read while connecting
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._own: OwnKernel | None = None  # the kernel we started, with its log
        self._keep_running = False  # keep_running(): close() leaves it for the others
        self.on_stdin: Callable[[dict[str, Any]], None] | None = None
        #: Called once, on the first message that fails its signature check.
        self.on_bad_message: Callable[[], None] | None = None
        #: Called once, on the first signed message that is malformed (with what is wrong).
        self.on_malformed: Callable[[str], None] | None = None
        self.on_notice: Callable[[str], None] | None = None  # unused: ZMQ has nothing to add

    # -- construction ------------------------------------------------------
    @classmethod
    def join(
        cls,
        connection_file: str,
        username: str,
        *,
        ssh: str | None = None,
        sshkey: str | None = None,
        ip: str | None = None,
    ) -> KernelLink:
        """A client for an existing kernel, from its connection file."""
        client = AsyncKernelClient(connection_file=connection_file)
        try:
            client.load_connection_file()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise MirrorError(
                f"cannot read connection file {connection_file}: {reason}",
                ExitStatus.CONNECTION_FILE,
            ) from None
        except Exception as exc:  # traitlets validation of wrong field types
            raise MirrorError(
                f"malformed connection file {connection_file}: {exc}", ExitStatus.CONNECTION_FILE
            ) from None
        if ip:
            client.ip = ip  # jupyter console's --ip: the kernel's host, whatever the file says
        if ssh:
            _tunnel(client, connection_file, ssh, sshkey)
        client.session.username = username
        return cls(client, where=connection_file)

    @classmethod
    async def start(cls, kernel_name: str, username: str, *, ip: str | None = None) -> KernelLink:
        """Start a kernel of ``kernel_name`` whose connection file peers can join."""
        own = await start_kernel(kernel_name, ip=ip)
        client = own.manager.client()
        client.session.session = new_id()  # our own identity, not the manager's
        client.session.username = username
        link = cls(client, own.manager, own.manager.connection_file)
        link._own = own
        return link

    # -- lifecycle ---------------------------------------------------------
    async def connect(self, timeout: float, *, stdin: bool = True, control: bool = True) -> None:
        """Open channels and wait for ``kernel_info_reply`` (fails after ``timeout``)."""
        self.lossless()
        self.client.start_channels(shell=True, iopub=True, stdin=stdin, hb=True, control=control)
        self._tasks.append(asyncio.ensure_future(self._route(self.client.shell_channel)))
        if stdin:
            self._tasks.append(asyncio.ensure_future(self._route(self.client.stdin_channel)))
        try:
            reply = await self._unless_it_dies(self.request(self.client.kernel_info(), timeout))
        except TimeoutError:
            # A kernel whose heartbeat answers but whose shell ignores us drops
            # our requests: their signature is wrong, so our key is.
            if self.bad_signatures or await self._heart_answers():
                raise MirrorError(
                    f"the kernel's replies fail the signature check: is the key in "
                    f"{self.where} the kernel's?",
                    ExitStatus.CONNECTION_FILE,
                ) from None
            raise MirrorError(
                f"kernel did not answer within {timeout:g} s: {self.where}", ExitStatus.UNREACHABLE
            ) from None
        self.kernel_info = reply.get("content") or {}
        header = reply.get("header") or {}
        session = str(header.get("session") or "") if isinstance(header, dict) else ""
        self.kernel_session = "" if session == self.session_id else session  # IRkernel: ours
        # The shell answered, so no cell was running on it just now.
        self.state_at_connect = "idle"
        await self._await_iopub(timeout)

    async def _unless_it_dies(self, reply: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """Await ``reply``; if the kernel we started exits first, raise how it ended."""
        if self._own is None:
            return await reply
        answer = asyncio.ensure_future(reply)
        death = asyncio.ensure_future(died_at_start(self._own))
        try:
            await asyncio.wait([answer, death], return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when we are cancelled (Ctrl-C while connecting)
            for task in (answer, death):
                if not task.done():
                    task.cancel()
        if answer.done() and not answer.cancelled():
            return answer.result()
        raise death.result()

    async def _await_iopub(self, timeout: float) -> None:
        """Return once IOPub delivers: until the kernel has our subscription, its
        broadcasts are lost (ZMQ's slow joiner), a fresh kernel's for up to a second.

        ``kernel_info`` is asked again meanwhile, since its busy/idle come on IOPub;
        what arrives is kept for :meth:`iopub_batches`.
        """
        socket = self.client.iopub_channel.socket
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._early:
            if await socket.poll(50):
                msg = self.decode(await socket.recv_multipart())
                if msg is not None:
                    self._early.append(msg)
            elif loop.time() > deadline:
                raise MirrorError(
                    f"no broadcast from the kernel within {timeout:g} s: {self.where}",
                    ExitStatus.UNREACHABLE,
                )
            else:
                self.client.kernel_info()

    async def close(self, shutdown: bool | None = None) -> None:
        """Stop channels; shut the kernel down if we started it (or if asked)."""
        for task in self._tasks:
            task.cancel()
        if shutdown is None:
            shutdown = self.manager is not None and not self._keep_running
        if shutdown and self.manager is not None:
            with contextlib.suppress(Exception):
                await self.manager.shutdown_kernel()
        elif self.manager is not None:
            # Left running for the others: its connection file is how they (and
            # you) rejoin, so the manager must not remove it when it is collected.
            self.manager._connection_file_written = False
        self.client.stop_channels()
        if self._own is not None:
            self._own.log.close()
            if shutdown:  # the kernel is gone: a log with nothing to say goes too
                remove_if_harmless(self._own.log.name)

    def keep_running(self) -> None:
        """Leave a kernel we started running when we close (others still use it)."""
        self._keep_running = True

    # -- requests ----------------------------------------------------------
    @property
    def session_id(self) -> str:
        return str(self.client.session.session)

    @session_id.setter
    def session_id(self, session: str) -> None:
        """Our identity on the kernel (set before :meth:`connect`)."""
        self.client.session.session = session

    @property
    def kernel_name(self) -> str:
        """The kernelspec name: the manager's, or the connection file's ``kernel_name``."""
        if self.manager is not None:
            return str(getattr(self.manager, "kernel_name", "") or "")
        try:
            with open(self.where) as f:
                name = json.load(f).get("kernel_name")  # this field only: never the key
        except (OSError, ValueError, AttributeError):
            return ""
        return name if isinstance(name, str) else ""

    def lossless(self) -> None:
        """Let IOPub queue without limit on our side, so a slow moment never drops a message.

        ZMQ's default high-water mark (1,000 messages) makes a subscriber that falls
        behind lose messages silently; every subscriber must catch up instead.
        :meth:`connect` calls it (the option applies to new sockets).
        """
        self.client.context.setsockopt(zmq.RCVHWM, 0)

    def expect(self, msg_id: str) -> asyncio.Future[dict[str, Any]]:
        """A future for the reply (shell, control) to ``msg_id``."""
        fut = self._waiting.get(msg_id)
        if fut is None:
            fut = self._waiting[msg_id] = asyncio.get_running_loop().create_future()
        return fut

    async def request(self, msg_id: str, timeout: float | None = None) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.expect(msg_id), timeout)
        finally:
            self._waiting.pop(msg_id, None)

    @property
    def username(self) -> str:
        return str(self.client.session.username)

    @username.setter
    def username(self, name: str) -> None:
        self.client.session.username = name

    def execute(self, code: str, *, allow_stdin: bool = True, stop_on_error: bool = True) -> str:
        """Send ``execute_request``; returns its msg_id (await the reply with :meth:`request`)."""
        return str(self.client.execute(code, allow_stdin=allow_stdin, stop_on_error=stop_on_error))

    def probe(self) -> str:
        """Send ``kernel_info_request`` (no code runs); returns its msg_id."""
        return str(self.client.kernel_info())

    def complete(self, code: str, cursor_pos: int) -> str:
        return str(self.client.complete(code, cursor_pos))

    def is_complete(self, code: str) -> str:
        return str(self.client.is_complete(code))

    def inspect(self, code: str, cursor_pos: int, detail_level: int = 0) -> str:
        return str(self.client.inspect(code, cursor_pos, detail_level))

    def history(self, **kwargs: Any) -> str:
        """Send ``history_request`` (jupyter_client's arguments); returns its msg_id."""
        return str(self.client.history(**kwargs))

    def input(self, value: str) -> None:
        """Answer the kernel's ``input_request`` on stdin."""
        self.client.input(value)

    async def pending_iopub(self) -> list[dict[str, Any]]:
        """Whatever IOPub messages are already waiting, without blocking (end of a recording)."""
        socket = self.client.iopub_channel.socket
        batch: list[dict[str, Any]] = []
        while True:
            try:
                msg = self.decode(await socket.recv_multipart(flags=zmq.NOBLOCK))
            except zmq.Again:
                return batch
            if msg is not None:
                batch.append(msg)

    async def interrupt(self) -> None:
        """Interrupt the kernel: by the manager if ours, else interrupt_request on control."""
        if self.manager is not None:
            await self.manager.interrupt_kernel()
            return
        msg = self.client.session.msg("interrupt_request", {})
        self.client.control_channel.send(msg)

    async def restart(self) -> None:
        """Restart a kernel we own (same ports and key: peers stay connected)."""
        if self.manager is not None:
            await self.manager.restart_kernel(now=True)

    async def _heart_answers(self, wait: float = 0.5) -> bool:
        """One heartbeat ping of our own (the channel's first verdict takes a second)."""
        c = self.client
        url = f"tcp://{c.ip}:{c.hb_port}" if c.transport == "tcp" else f"ipc://{c.ip}-{c.hb_port}"
        sock = c.context.socket(zmq.REQ)
        sock.linger = 0
        try:
            sock.connect(url)
            await sock.send(b"ping")
            return bool(await sock.poll(int(wait * 1000)))
        finally:
            sock.close()

    def is_beating(self) -> bool:
        hb = self.client.hb_channel
        return hb is None or hb.is_beating()

    async def _route(self, channel: Any) -> None:
        """Deliver replies on ``channel`` to the futures awaiting them."""
        while True:
            msg = await self._recv(channel.socket)
            if msg is None:
                continue
            if msg.get("msg_type") == "input_request":
                if self.on_stdin is not None:
                    self.on_stdin(msg)
                continue
            parent = (msg.get("parent_header") or {}).get("msg_id")
            fut = self._waiting.get(parent) if isinstance(parent, str) else None
            if fut is not None and not fut.done():
                fut.set_result(msg)

    def shed_when_behind(self) -> None:
        """For a display: drop whole stream lines, counted, rather than let a backlog grow."""
        self.shedder = Shedder()

    async def _recv(self, socket: zmq.asyncio.Socket) -> dict[str, Any] | None:
        return self.decode(await socket.recv_multipart())

    def decode(self, frames: list[bytes]) -> dict[str, Any] | None:
        """Deserialize one message; never raises.

        Unauthenticated ones are counted and dropped (None); signed but
        malformed ones are counted and returned with their unreadable parts
        under ``raw`` (see the module's docstring).
        """
        session = self.client.session
        try:
            _, parts = session.feed_identities(frames)
        except Exception:  # no delimiter: nothing here can be authenticated
            self._unauthenticated()
            return None
        try:
            return deserialize(session, parts, content=self.parse_content)
        except Exception as exc:  # anything a sender can make deserialize raise
            if not is_signed(session, parts) or str(exc).startswith("Duplicate Signature"):
                self._unauthenticated()
                return None
            msg, why = raw_message(parts)
            self.malformed += 1
            if self.malformed == 1 and self.on_malformed is not None:
                self.on_malformed(why)
            return msg

    def _unauthenticated(self) -> None:
        self.bad_signatures += 1
        if self.bad_signatures == 1 and self.on_bad_message is not None:
            self.on_bad_message()

    async def iopub_batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield IOPub messages in arrival order, as many per batch as are waiting."""
        socket = self.client.iopub_channel.socket
        if self._early:
            early, self._early = self._early, []
            yield early
        shedder = self.shedder
        while shedder is None:  # record, share, a pipe: every message, decoded as read
            batch: list[dict[str, Any]] = []
            msg = await self._recv(socket)
            if msg is not None:
                batch.append(msg)
            while len(batch) < BATCH:
                try:
                    msg = self.decode(await socket.recv_multipart(flags=zmq.NOBLOCK))
                except zmq.Again:
                    break
                if msg is not None:
                    batch.append(msg)
            if batch:
                yield batch
        waiting: deque[list[bytes]] = deque()  # read out of ZMQ, not yet decoded
        while True:  # a screen: keep what waits read out of ZMQ; far behind, shed
            if not waiting:
                waiting.append(await socket.recv_multipart())
            while len(waiting) < BACKLOG:  # (between two batches: ZMQ holds little)
                try:
                    waiting.append(await socket.recv_multipart(flags=zmq.NOBLOCK))
                except zmq.Again:
                    break
            behind = len(waiting) >= BACKLOG
            chunk = [waiting.popleft() for _ in range(min(BATCH, len(waiting)))]
            batch = self._decode_all(chunk, shedder, behind)
            if batch:
                yield batch
            if shedder.lines and (not behind or shedder.lines >= BACKLOG):
                notice = shedder.notice()  # once caught up, or every BACKLOG lines
                if notice and self.on_notice is not None:
                    self.on_notice(notice)

    def _decode_all(
        self, frames: list[list[bytes]], shedder: Shedder, behind: bool
    ) -> list[dict[str, Any]]:
        """Decode ``frames`` in order; when ``behind``, drop what ``shedder`` sheds."""
        batch = []
        session = self.client.session
        for one in frames:
            if behind:
                with contextlib.suppress(ValueError):  # no delimiter: decode() counts it
                    if shedder.sheds(session.feed_identities(one)[1]):
                        continue
            msg = self.decode(one)
            if msg is not None:
                batch.append(msg)
                shedder.saw(msg)
        return batch


def _tunnel(
    client: AsyncKernelClient, connection_file: str, server: str, sshkey: str | None = None
) -> None:
    """Forward the kernel's ports through ``ssh server`` like ``jupyter console --ssh``."""
    from jupyter_client import tunnel_to_kernel

    with open(connection_file) as f:
        info = json.load(f)
    try:
        ports = tunnel_to_kernel(info, server, sshkey)
    except Exception as exc:  # paramiko/pexpect failures vary
        raise MirrorError(f"ssh tunnel to {server} failed: {exc}", ExitStatus.UNREACHABLE) from None
    client.shell_port, client.iopub_port, client.stdin_port, client.hb_port, client.control_port = (
        ports
    )
    client.ip = "127.0.0.1"
