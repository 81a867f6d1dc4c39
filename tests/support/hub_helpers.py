"""A real JupyterHub for tests: DummyAuthenticator, SimpleLocalProcessSpawner, the npm
configurable-http-proxy, everything on 127.0.0.1 and under one sandbox dir.

A service ``ipymirror-test`` holds an API token whose role may start ``alice``'s
server and use it (``servers!user=alice``, ``access:servers!user=alice``), as a
user's own token from ``/hub/token`` would.
"""

from __future__ import annotations

import json
import shutil
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

__all__ = ["RunningHub", "hub_available", "start_hub"]


def hub_available() -> str:
    """'' when a hub can run here, else what is missing."""
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        return "jupyterhub is not installed (pip install jupyterhub)"
    if shutil.which("configurable-http-proxy") is None:
        return "configurable-http-proxy is not on PATH (npm install -g configurable-http-proxy)"
    return ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningHub:
    proc: subprocess.Popen
    port: int
    token: str
    root: Path
    log: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read()
        return json.loads(text) if text else None

    def start_server(self, user: str = "alice", timeout: float = 60) -> str:
        """Spawn ``user``'s single-user server; its URL once it answers through the proxy."""
        try:
            self.api("POST", f"hub/api/users/{user}/server", {})
        except urllib.error.HTTPError as exc:
            if exc.code != 400:  # 400: already running
                raise
        deadline = time.monotonic() + timeout
        while True:  # bounded: the spawn, then the proxy's route
            model = self.api("GET", f"hub/api/users/{user}")
            server = (model.get("servers") or {}).get("")
            if server and server.get("ready"):
                try:
                    self.api("GET", f"user/{user}/api/status")
                    return f"{self.url}user/{user}/"
                except urllib.error.HTTPError:
                    pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the user server never came up:\n" + "".join(self.log[-40:]))
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


CONFIG = """
import sys
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.command = ["configurable-http-proxy"]
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {{"alice"}}
c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = ["--allow-root", "--ServerApp.ip=127.0.0.1"]
c.Spawner.notebook_dir = {root!r}
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.JupyterHub.db_url = "sqlite:///{root}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{root}/cookie_secret"
c.JupyterHub.pid_file = "{root}/hub.pid"
c.ConfigurableHTTPProxy.pid_file = "{root}/proxy.pid"
c.JupyterHub.services = [{{"name": "ipymirror-test", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{
    "name": "ipymirror-test",
    "scopes": ["servers!user=alice", "access:servers!user=alice", "read:users!user=alice"],
    "services": ["ipymirror-test"],
}}]
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
"""


def start_hub(root: Path, timeout: float = 60) -> RunningHub:
    root.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    port, hub_port, proxy_port = _free_port(), _free_port(), _free_port()
    config = root / "jupyterhub_config.py"
    config.write_text(
        CONFIG.format(
            port=port, hub_port=hub_port, proxy_port=proxy_port, root=str(root), token=token
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(config)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
    hub = RunningHub(proc, port, token, root, log)
    deadline = time.monotonic() + timeout
    while True:  # bounded: until the hub answers through its proxy
        try:
            hub.api("GET", "hub/api/")
            return hub
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline or proc.poll() is not None:
                hub.stop()
                raise RuntimeError("JupyterHub did not start:\n" + "".join(log[-40:])) from None
            time.sleep(0.1)
