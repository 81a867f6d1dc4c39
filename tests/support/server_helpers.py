"""A real Jupyter Server for tests, and a websocket peer that behaves like JupyterLab.

The server is ``python -m jupyter_server`` on 127.0.0.1 with a token and a
JupyterHub-like ``base_url``; it inherits the sandboxed Jupyter dirs of the
``jupyter_dirs`` fixture (its runtime file ``jpserver-PID.json`` lands there).
Start-up is waited for on its log line, not by sleeping.

The peer speaks the ``v1.kernel.websocket.jupyter.org`` framing with
jupyter_server's own (de)serialisers and jupyter_client's Session, so it is
independent of ipymirror's framing module: one real client, one under test.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websocket
from jupyter_client.session import Session
from jupyter_server.services.kernels.connection.base import (
    deserialize_msg_from_ws_v1,
    serialize_msg_to_ws_v1,
)

V1 = "v1.kernel.websocket.jupyter.org"

__all__ = ["LabPeer", "RunningServer", "start_jupyter_server"]


@dataclass
class RunningServer:
    proc: subprocess.Popen
    port: int
    base_url: str  # "/user/alice/"
    token: str
    root: Path
    log: list[str]
    drain: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's root URL, without the token."""
        return f"http://127.0.0.1:{self.port}{self.base_url}"

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        """One REST call (``path`` relative to the base_url, e.g. "api/sessions")."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"token {token or self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def new_notebook_session(self, path: str = "work/analysis.ipynb") -> dict[str, Any]:
        """What JupyterLab does when a notebook is opened: POST api/sessions."""
        (self.root / path).parent.mkdir(parents=True, exist_ok=True)
        (self.root / path).write_text(
            json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
        )
        body = {
            "path": path,
            "name": Path(path).name,
            "type": "notebook",
            "kernel": {"name": "python3"},
        }
        return self.api("POST", "api/sessions", body)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.drain is not None:
            self.drain.join(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def start_jupyter_server(
    root: Path,
    token: str = "s3cret-token",
    base_url: str = "/user/alice/",
    *extra: str,
    timeout: float = 60,
    scheme: str = "http",
) -> RunningServer:
    """Start jupyter_server on a free port of 127.0.0.1 and wait until it serves."""
    root.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--allow-root",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.base_url={base_url}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.port_retries=0",
        "--ServerApp.log_level=INFO",
        *extra,
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    ready = threading.Event()
    ports: list[int] = []
    where = re.compile(scheme + r"://127\.0\.0\.1:(\d+)" + re.escape(base_url))

    def drain() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            log.append(line)
            found = where.search(line)
            if found and not ports:
                ports.append(int(found.group(1)))
                ready.set()
        ready.set()  # exited

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    if not ready.wait(timeout) or not ports:
        RunningServer(proc, 0, base_url, token, root, log, drainer).stop()
        raise RuntimeError("jupyter_server did not start:\n" + "".join(log[-30:]))
    server = RunningServer(proc, ports[0], base_url, token, root, log, drainer)
    # It logs its URL just before its event loop binds the port: until then a
    # connection is refused at once.  Wait for the bind, boundedly.
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
            return server
        except OSError as exc:
            if time.monotonic() > deadline or proc.poll() is not None:
                server.stop()
                raise RuntimeError("jupyter_server never listened:\n" + "".join(log[-30:])) from exc
            time.sleep(0.02)


class LabPeer:
    """A JupyterLab-like client on a kernel's websocket (v1 framing, its own username).

    ``iopub`` collects every IOPub message it receives, in order; ``run`` executes
    a cell and waits for its idle, like a notebook's Shift-Enter.
    """

    def __init__(self, server: RunningServer, kernel_id: str, username: str = "lab-bob") -> None:
        self.session = Session(username=username, key=uuid.uuid4().hex.encode())  # never sent
        self.username = username
        url = (
            f"ws://127.0.0.1:{server.port}{server.base_url}api/kernels/{kernel_id}/channels"
            f"?session_id={self.session.session}"
        )
        self.ws = websocket.create_connection(
            url, subprotocols=[V1], header=[f"Authorization: token {server.token}"], timeout=30
        )
        assert self.ws.subprotocol == V1, self.ws.subprotocol
        self.iopub: list[dict[str, Any]] = []
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.request("kernel_info_request", {})

    def _read(self) -> None:
        while True:
            try:
                data = self.ws.recv()
            except Exception:
                break
            if not isinstance(data, bytes):
                continue
            channel, parts = deserialize_msg_from_ws_v1(data)
            header, parent, metadata, content = (self.session.unpack(p) for p in parts[:4])
            msg = {
                "t": time.perf_counter(),  # arrival, for the benchmarks
                "header": header,
                "parent_header": parent,
                "metadata": metadata,
                "content": content,
                "msg_type": header.get("msg_type"),
                "channel": channel,
            }
            if channel == "iopub":
                with self._cond:
                    self.iopub.append(msg)
                    self._cond.notify_all()
            else:
                self.replies.put(msg)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def send(self, msg_type: str, content: dict[str, Any], channel: str = "shell") -> str:
        msg = self.session.msg(msg_type, content)
        self.ws.send_binary(serialize_msg_to_ws_v1(msg, channel, self.session.pack))
        return msg["header"]["msg_id"]

    def request(self, msg_type: str, content: dict[str, Any], timeout: float = 30) -> dict:
        msg_id = self.send(msg_type, content)
        deadline = time.monotonic() + timeout
        while True:
            reply = self.replies.get(timeout=max(0.01, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply

    def execute_nowait(self, code: str) -> str:
        return self.send(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
        )

    def wait_iopub(self, pred, timeout: float = 30) -> dict[str, Any]:
        """The first IOPub message (already received or to come) for which ``pred`` holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            seen = 0
            while True:
                for msg in self.iopub[seen:]:
                    if pred(msg):
                        return msg
                seen = len(self.iopub)
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    types = [(m["msg_type"], m["content"]) for m in self.iopub[-10:]]
                    raise AssertionError(f"no such IOPub message; last ones: {types}")
                self._cond.wait(left)

    def run(self, code: str, timeout: float = 30) -> str:
        """Execute ``code`` and wait for its idle; returns its msg_id."""
        msg_id = self.execute_nowait(code)
        self.wait_iopub(
            lambda m: (
                m["parent_header"].get("msg_id") == msg_id
                and m["msg_type"] == "status"
                and m["content"].get("execution_state") == "idle"
            ),
            timeout,
        )
        return msg_id

    def close(self) -> None:
        self.ws.close()
        self._reader.join(timeout=5)


def new_session_id() -> str:
    return uuid.uuid4().hex


def http_error(server: RunningServer, method: str, path: str, token: str) -> int:
    try:
        server.api(method, path, token=token)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


class TcpProxy:
    """A TCP relay on 127.0.0.1 in front of a port; :meth:`drop` cuts every connection
    (as a flaky network would) while it keeps accepting new ones."""

    def __init__(self, target_port: int) -> None:
        import socket

        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list = []
        self._lock = threading.Lock()
        self.open = threading.Event()  # cleared: new connections wait (a network still down)
        self.open.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.open.wait()
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self._lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(2)
            s.close()

    def drop(self) -> int:
        """Cut every open connection; returns how many sockets were cut."""
        import socket

        with self._lock:
            conns, self.conns = self.conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        return len(conns)

    def close(self) -> None:
        self.open.set()
        self.listener.close()
        self.drop()
