"""What a command needs from a kernel connection, whatever carries it.

:class:`~ipymirror.transports.zmq.KernelLink` (ZMQ, a connection file) is one
implementation; a Jupyter Server's kernel websocket is another.  Commands use
only what this protocol names, so every command works over every transport.
Requests return the request's ``msg_id``; :meth:`request` awaits its reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from ipymirror.core.protocol import kernel_description, kernel_language

__all__ = ["KernelInfo", "KernelTransport"]


class KernelInfo:
    """What every transport derives from the kernel's ``kernel_info_reply``."""

    kernel_info: dict[str, Any]

    @property
    def language(self) -> str:
        return kernel_language(self.kernel_info)

    @property
    def description(self) -> str:
        return kernel_description(self.kernel_info)


class KernelTransport(Protocol):
    where: str  # what the user named: a connection file, a URL
    kernel_info: dict[str, Any]
    kernel_session: str  # header.session of the kernel that answered connect ('' unknown)
    state_at_connect: str
    bad_signatures: int  # messages that failed authentication (dropped)
    malformed: int  # signed messages that are not valid messages (delivered raw)
    parse_content: bool  # False: IOPub content stays the signed JSON bytes (the relay)
    manager: Any  # set when this process started the kernel (it may then restart it)
    on_stdin: Callable[[dict[str, Any]], None] | None
    on_bad_message: Callable[[], None] | None
    on_malformed: Callable[[str], None] | None
    on_notice: Callable[[str], None] | None  # what the transport itself has to say

    @property
    def session_id(self) -> str: ...
    @session_id.setter
    def session_id(self, session: str) -> None: ...
    @property
    def username(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def description(self) -> str: ...
    @property
    def kernel_name(self) -> str: ...

    async def connect(
        self, timeout: float, *, stdin: bool = True, control: bool = True
    ) -> None: ...
    async def close(self, shutdown: bool | None = None) -> None: ...
    def keep_running(self) -> None: ...  # a kernel we started: close() leaves it running
    def shed_when_behind(self) -> None: ...  # a display: whole lines may go, counted
    def is_beating(self) -> bool: ...
    def iopub_batches(self) -> AsyncIterator[list[dict[str, Any]]]: ...
    async def pending_iopub(self) -> list[dict[str, Any]]: ...

    def execute(
        self, code: str, *, allow_stdin: bool = True, stop_on_error: bool = True
    ) -> str: ...
    def probe(self) -> str: ...  # kernel_info_request; its reply says which kernel answers
    def complete(self, code: str, cursor_pos: int) -> str: ...
    def is_complete(self, code: str) -> str: ...
    def inspect(self, code: str, cursor_pos: int, detail_level: int = 0) -> str: ...
    def history(self, **kwargs: Any) -> str: ...
    def input(self, value: str) -> None: ...
    def expect(self, msg_id: str) -> asyncio.Future[dict[str, Any]]: ...
    async def request(self, msg_id: str, timeout: float | None = None) -> dict[str, Any]: ...
    async def interrupt(self) -> None: ...
    async def restart(self) -> None: ...
