"""A Jupyter Server over HTTP: its REST API and the kernel's websocket, errors in one line each.

The token goes in the ``Authorization`` header only (never in a URL that could
be logged, never in a message).  ``https`` is checked against the system's
certificates; ``insecure=True`` (``--insecure``) is the only way to skip that.
Every failure becomes a :class:`MirrorError` with its own exit status:

=====================  ==========================================================
SERVER_UNREACHABLE     refused, timed out, DNS, TLS
NOT_JUPYTER            an answer that is not a Jupyter Server's ``api`` (HTML, a redirect)
TOKEN                  ``api/me`` refuses us: the token is wrong or missing
FORBIDDEN              the token is good but this action is not allowed (403)
NOT_FOUND              no such kernel / notebook (404)
=====================  ==========================================================
"""

from __future__ import annotations

import glob
import json
import os
import socket
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.transports.server.framing import SUBPROTOCOL
from ipymirror.transports.server.urls import ServerTarget

__all__ = ["ServerAPI", "ServerKernel", "find_token", "nodelay_socket"]

TOKEN_ENV = ("JUPYTER_TOKEN", "JUPYTERHUB_API_TOKEN")
PING = 10.0  # seconds between our websocket pings (a dead connection is noticed)
MAX_FRAME = 256 * 1024 * 1024  # bytes of one websocket message (big images are fine)


def find_token(
    target: ServerTarget,
    explicit: str | None,
    env: Mapping[str, str],
    runtime_dir: str | None,
) -> tuple[str, str]:
    """(token, where it came from): ``--token``, ``?token=``, the environment, then
    the runtime files of local servers (``jpserver-*.json``, as ``jupyter server list``)."""
    if explicit:
        return explicit, "--token"
    if target.token:
        return target.token, "the URL"
    for name in TOKEN_ENV:
        if env.get(name):
            return env[name], name
    if runtime_dir:
        for path in sorted(glob.glob(os.path.join(runtime_dir, "jpserver-*.json"))):
            try:
                with open(path) as f:
                    info = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(info, dict) and _same_server(str(info.get("url", "")), target.base):
                token = info.get("token")
                if isinstance(token, str) and token:
                    return token, os.path.basename(path)
    return "", ""


def _same_server(url: str, base: str) -> bool:
    a, b = urlsplit(url), urlsplit(base)
    loopback = {"localhost", "127.0.0.1", "::1"}
    host_a, host_b = a.hostname or "", b.hostname or ""
    same_host = host_a == host_b or (host_a in loopback and host_b in loopback)
    return same_host and a.port == b.port and a.path.rstrip("/") == b.path.rstrip("/")


def nodelay_socket(addr_info: Any) -> socket.socket:
    """aiohttp's socket factory: TCP_NODELAY from the first byte (no Nagle delay on cells)."""
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family=family, type=type_, proto=proto)
    sock.setblocking(False)
    if family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class ServerAPI:
    """REST calls on one server (``target.base``), authenticated by ``token``."""

    def __init__(
        self, target: ServerTarget, token: str, *, insecure: bool = False, timeout: float = 10
    ) -> None:
        self.target = target
        self.base = target.base
        self.token = token
        self.insecure = insecure
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            tls: ssl.SSLContext | bool = False if self.insecure else ssl.create_default_context()
            connector = aiohttp.TCPConnector(ssl=tls, socket_factory=nodelay_socket)
            self._http = aiohttp.ClientSession(
                connector=connector,
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout),
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- calls -----------------------------------------------------------------
    async def call(self, method: str, path: str, body: Any = None, *, what: str = "") -> Any:
        """One request; the JSON answer (None for 204).  Errors as :class:`MirrorError`."""
        url = self.base + path
        try:
            async with self.http.request(
                method,
                url,
                json=body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                text = await resp.text(errors="replace")
                status, ctype = resp.status, resp.headers.get("Content-Type", "")
        except aiohttp.ClientConnectorCertificateError as exc:
            raise MirrorError(
                f"the TLS certificate of {self.target.display} is not trusted "
                f"({exc.certificate_error}); --insecure skips the check",
                ExitStatus.SERVER_UNREACHABLE,
            ) from None
        except aiohttp.ClientSSLError as exc:
            raise MirrorError(
                f"TLS with {self.target.display} failed: {exc}", ExitStatus.SERVER_UNREACHABLE
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise self._unreachable(exc) from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise MirrorError(
                f"the Jupyter server at {self.target.display} did not answer within "
                f"{self.timeout:g} s",
                ExitStatus.SERVER_UNREACHABLE,
            ) from None
        except aiohttp.ClientError as exc:
            raise MirrorError(
                f"talking to {self.target.display} failed: {type(exc).__name__}: {exc}",
                ExitStatus.SERVER_UNREACHABLE,
            ) from None
        return self._answer(status, ctype, text, what or path)

    def _unreachable(self, exc: aiohttp.ClientConnectorError) -> MirrorError:
        """Refused, DNS, a dead host: the same line for a REST call and the websocket."""
        reason = exc.os_error.strerror or exc.os_error
        return MirrorError(
            f"cannot reach the Jupyter server at {self.target.display}: {reason}",
            ExitStatus.SERVER_UNREACHABLE,
        )

    def _answer(self, status: int, ctype: str, text: str, what: str) -> Any:
        if status in (401, 403):
            raise MirrorError(
                f"the server refused {what} (HTTP {status}): this token may not do that",
                ExitStatus.FORBIDDEN,
            )
        if status == 404:
            raise MirrorError(f"not found on {self.base}: {what}", ExitStatus.NOT_FOUND)
        if 300 <= status < 400:
            raise MirrorError(
                f"{self.base} redirects {what} elsewhere (HTTP {status}): not a Jupyter "
                "server's API (for a JupyterHub, is your server running?)",
                ExitStatus.NOT_JUPYTER,
            )
        if status >= 400:
            raise MirrorError(
                f"the server failed {what}: HTTP {status} {_reason(text)}", ExitStatus.ERROR
            )
        if status == 204 or not text:
            return None
        if "json" not in ctype:
            raise MirrorError(
                f"{self.base} is not a Jupyter server (its {what} answered {ctype or 'text'})",
                ExitStatus.NOT_JUPYTER,
            )
        try:
            return json.loads(text)
        except ValueError:
            raise MirrorError(
                f"{self.base} is not a Jupyter server (bad JSON from {what})",
                ExitStatus.NOT_JUPYTER,
            ) from None

    async def check(self) -> str:
        """The server's version; then that the token is accepted (``api/me``, or ``api/status``)."""
        info = await self.call("GET", "api", what="its version (api)")
        if not isinstance(info, dict) or not isinstance(info.get("version"), str):
            raise MirrorError(
                f"{self.base} is not a Jupyter server (no version in its api)",
                ExitStatus.NOT_JUPYTER,
            )
        try:
            await self.call("GET", "api/status", what="api/status")
        except MirrorError as exc:
            if exc.status != ExitStatus.FORBIDDEN:
                raise
            given = "the token" if self.token else "no token was given and the server wants one"
            hint = "" if self.token else " (use ?token=, --token or JUPYTER_TOKEN)"
            raise MirrorError(
                f"{self.target.display} refused {given}{hint}", ExitStatus.TOKEN
            ) from None
        return info["version"]

    async def kernels(self) -> list[dict[str, Any]]:
        found = await self.call("GET", "api/kernels", what="the kernel list")
        return [k for k in found if isinstance(k, dict)] if isinstance(found, list) else []

    async def sessions(self) -> list[dict[str, Any]]:
        found = await self.call("GET", "api/sessions", what="the session list")
        return [s for s in found if isinstance(s, dict)] if isinstance(found, list) else []

    async def kernel(self, kernel_id: str) -> dict[str, Any]:
        found = await self.call(
            "GET", f"api/kernels/{quote(kernel_id)}", what=f"kernel {kernel_id}"
        )
        return found if isinstance(found, dict) else {}

    async def start_kernel(self, name: str) -> dict[str, Any]:
        try:
            found = await self.call("POST", "api/kernels", {"name": name}, what="a new kernel")
        except MirrorError as exc:
            if exc.status == ExitStatus.ERROR:  # jupyter_server: 500 for an unknown kernelspec
                raise MirrorError(
                    f"the server could not start a {name!r} kernel: {exc}", ExitStatus.KERNELSPEC
                ) from None
            raise
        return found if isinstance(found, dict) else {}

    async def interrupt(self, kernel_id: str) -> None:
        await self.call("POST", f"api/kernels/{quote(kernel_id)}/interrupt", what="interrupt")

    async def restart(self, kernel_id: str) -> None:
        await self.call("POST", f"api/kernels/{quote(kernel_id)}/restart", what="restart")

    async def shutdown(self, kernel_id: str) -> None:
        await self.call("DELETE", f"api/kernels/{quote(kernel_id)}", what="shutdown")

    async def open_channels(
        self, kernel_id: str, session_id: str
    ) -> aiohttp.ClientWebSocketResponse:
        """The kernel's websocket (every channel on one), for ``session_id``."""
        url = self.channels_url(kernel_id, session_id)
        try:
            return await self.http.ws_connect(
                url,
                protocols=(SUBPROTOCOL,),
                heartbeat=PING,
                max_msg_size=MAX_FRAME,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
            )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 404:
                raise MirrorError(
                    f"not found on {self.base}: kernel {kernel_id}", ExitStatus.NOT_FOUND
                ) from None
            if exc.status in (401, 403):
                raise MirrorError(
                    f"the server refused the kernel's websocket (HTTP {exc.status})",
                    ExitStatus.FORBIDDEN,
                ) from None
            raise MirrorError(
                f"the server refused the kernel's websocket (HTTP {exc.status} {exc.message})",
                ExitStatus.NOT_JUPYTER,
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise self._unreachable(exc) from None
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise MirrorError(
                f"the kernel's websocket on {self.base} failed: {type(exc).__name__}",
                ExitStatus.SERVER_UNREACHABLE,
            ) from None

    def channels_url(self, kernel_id: str, session_id: str) -> str:
        ws = "wss" if self.base.startswith("https") else "ws"
        return (
            f"{ws}{self.base[self.base.index(':') :]}api/kernels/{quote(kernel_id)}/channels"
            f"?session_id={quote(session_id)}"
        )


class ServerKernel:
    """What ``manager`` is for a kernel this process started on a server."""

    def __init__(self, api: ServerAPI, kernel_id: str, kernel_name: str) -> None:
        self.api, self.kernel_id, self.kernel_name = api, kernel_id, kernel_name

    async def is_alive(self) -> bool:
        try:
            model = await self.api.kernel(self.kernel_id)
        except MirrorError:
            return False
        return model.get("execution_state") != "dead"

    async def shutdown_kernel(self) -> None:
        await self.api.shutdown(self.kernel_id)


def _reason(text: str) -> str:
    try:
        body = json.loads(text)
    except ValueError:
        return ""
    if isinstance(body, dict):
        message = body.get("message") or body.get("reason") or ""
        return " ".join(str(message).split())[:200]
    return ""
