"""Fixtures for end-to-end tests: isolated Jupyter dirs, real kernels, peers
(other users' clients on the same kernel) and emulated terminals.

Every test gets its own Jupyter runtime/data/config dirs and IPYTHONDIR under
tmp_path, so connection files, kernelspecs and history never touch the real
user's dirs.  Kernels listen on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import BlockingKernelClient, KernelManager
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.session import new_id
from terminal import REPO_ROOT, Terminal, default_env
from terminal import ipymirror_argv as _ipymirror_argv

# ------------------------------------------------------------------ layers

LAYERS = ("unit", "pairs", "kernel", "e2e")
HEAVY = {"kernel", "make_kernel", "peer", "terminal", "ipymirror_argv"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its layer: its folder, except that a test in unit/
    that uses a real kernel or a terminal (or says so) is marked by what it uses."""
    for item in items:
        if any(item.get_closest_marker(layer) for layer in LAYERS):
            continue
        folder = Path(str(item.fspath)).parent.name
        layer = folder if folder in LAYERS else "e2e"
        if layer == "unit" and HEAVY & set(getattr(item, "fixturenames", ())):
            layer = "e2e" if {"terminal", "ipymirror_argv"} & set(item.fixturenames) else "kernel"
        item.add_marker(getattr(pytest.mark, layer))


# ------------------------------------------------------------------ isolation


@pytest.fixture(autouse=True)
def jupyter_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point Jupyter and IPython at fresh dirs under tmp_path (autouse).

    Returns {"runtime", "data", "config", "ipython"} -> Path.  Child processes
    (kernels, Terminals) inherit these through os.environ.
    """
    dirs = {name: tmp_path / "jupyter" / name for name in ("runtime", "data", "config")}
    dirs["ipython"] = tmp_path / "ipython"
    for path in dirs.values():
        path.mkdir(parents=True)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(dirs["runtime"]))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(dirs["data"]))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(dirs["config"]))
    monkeypatch.setenv("IPYTHONDIR", str(dirs["ipython"]))
    # debugpy's "frozen modules" warning goes to a (re)starting kernel's stderr,
    # which ipykernel broadcasts as stream output nobody asked for.
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # Extra search paths from the outside could bring in foreign kernelspecs.
    # ... and the sandbox's data dir comes first: jupyter_core puts a virtualenv's
    # own share/jupyter before the user's, which would hide our python3.
    monkeypatch.setenv("JUPYTER_PATH", str(dirs["data"]))
    monkeypatch.delenv("JUPYTER_CONFIG_PATH", raising=False)
    _python3_kernelspec(dirs["data"])
    return dirs


def _python3_kernelspec(data: Path) -> None:
    """The sandbox's ``python3``: ipykernel whose IOPub never drops (support/lossless_kernel)."""
    spec = data / "kernels" / "python3"
    spec.mkdir(parents=True)
    launcher = Path(__file__).parent / "support" / "lossless_kernel.py"
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, str(launcher), "-f", "{connection_file}"],
                "display_name": "Python 3 (ipykernel)",
                "language": "python",
                "metadata": {"debugger": True},
            }
        )
    )


# -------------------------------------------------------------------- kernels


def _ensure_bash_kernelspec() -> None:
    """Install bash_kernel's kernelspec into the isolated JUPYTER_DATA_DIR.

    As root, ``python -m bash_kernel.install`` without options writes to the
    system prefix; ``--user`` writes to jupyter_data_dir(), i.e. our tmp dir.
    """
    try:
        KernelSpecManager().get_kernel_spec("bash")
        return
    except NoSuchKernel:
        pass
    cmd = [sys.executable, "-m", "bash_kernel.install", "--user"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    try:
        KernelSpecManager().get_kernel_spec("bash")
    except NoSuchKernel:
        raise RuntimeError(
            f"could not install the bash kernelspec with {cmd} (exit {proc.returncode}); "
            f"is bash_kernel installed?\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        ) from None


def _ensure_ir_kernelspec(data_dir: Path) -> None:
    """IRkernel's kernelspec in the isolated JUPYTER_DATA_DIR (R and IRkernel come
    from Debian: ``apt-get install -y r-cran-irkernel``, done by .ci/run)."""
    spec = data_dir / "kernels" / "ir" / "kernel.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    argv = ["R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"]
    spec.write_text(json.dumps({"argv": argv, "display_name": "R", "language": "R"}))


STARTS = 3  # tries to start a kernel whose ports another process took meanwhile


@pytest.fixture
def make_kernel(jupyter_dirs: dict[str, Path]) -> Iterator[Callable[..., KernelManager]]:
    """Factory: ``make_kernel(name="python3", **start_kernel_kwargs)`` starts a
    real kernel of that kernelspec and returns its KernelManager once the
    kernel answers.  Its connection file is
    ``$JUPYTER_RUNTIME_DIR/kernel-<uuid>.json``.  All are shut down at teardown.
    """
    managers: list[KernelManager] = []

    def factory(name: str = "python3", **kwargs: Any) -> KernelManager:
        if name == "bash":
            _ensure_bash_kernelspec()
        elif name == "ir":
            _ensure_ir_kernelspec(jupyter_dirs["data"])
        for attempt in range(STARTS):
            connection_file = jupyter_dirs["runtime"] / f"kernel-{uuid.uuid4()}.json"
            km = KernelManager(
                kernel_name=name, ip="127.0.0.1", connection_file=str(connection_file)
            )
            km.start_kernel(**kwargs)
            managers.append(km)
            client = km.client()
            client.start_channels()
            try:
                client.wait_for_ready(timeout=30)
                return km
            except RuntimeError:
                # Died at start: jupyter_client picks free ports and the kernel binds
                # them later, so another process on the machine (a second suite) can
                # take one in between ("Address already in use"). New kernel, new ports.
                if km.is_alive() or attempt == STARTS - 1:
                    raise
            finally:
                client.stop_channels()
        raise AssertionError("unreachable")

    yield factory
    for km in reversed(managers):
        km.shutdown_kernel(now=True)


@pytest.fixture
def kernel(make_kernel: Callable[..., KernelManager]) -> KernelManager:
    """A running ipykernel (python3) on 127.0.0.1; its KernelManager."""
    return make_kernel("python3")


# ---------------------------------------------------------------------- peers


class Peer:
    """Another user's client on the same kernel (say, a notebook).

    ``peer.client`` is a started BlockingKernelClient with its own session id
    and ``session.username``.
    """

    def __init__(self, km: KernelManager, username: str) -> None:
        self.client: BlockingKernelClient = km.client()
        # km.client() gives a *clone* of the manager's Session, session id
        # included: every client would look like the same peer.  New id.
        self.client.session.session = new_id()
        self.client.session.username = username
        self.username = username
        self.client.start_channels()
        self.client.wait_for_ready(timeout=30)

    @property
    def session_id(self) -> str:
        return self.client.session.session

    def execute_nowait(self, code: str, **kwargs: Any) -> str:
        """Send an execute_request and return its msg_id without waiting."""
        return self.client.execute(code, **kwargs)

    def run(self, code: str, timeout: float = 30, **kwargs: Any) -> dict[str, Any]:
        """Execute ``code``; return {'reply': execute_reply, 'iopub': [msgs]}.

        'iopub' holds this request's IOPub messages up to and including its
        ``status: idle``.  Messages for other requests are skipped (and lost
        to this client), so don't interleave with execute_nowait() here.
        """
        msg_id = self.client.execute(code, **kwargs)
        deadline = time.monotonic() + timeout
        iopub = []
        while True:
            msg = self._get(self.client.get_iopub_msg, deadline, code, iopub)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            iopub.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        while True:
            reply = self._get(self.client.get_shell_msg, deadline, code, iopub)
            if reply["parent_header"].get("msg_id") == msg_id:
                return {"reply": reply, "iopub": iopub}

    @staticmethod
    def _get(get: Callable[..., dict], deadline: float, code: str, seen: list) -> dict:
        try:
            return get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(
                f"kernel did not finish {code!r} in time; IOPub so far: "
                f"{[(m['msg_type'], m['content']) for m in seen]}"
            ) from None

    @staticmethod
    def stream_text(result: dict[str, Any], name: str = "stdout") -> str:
        """All ``stream`` output of a run() result on ``name`` (stdout/stderr)."""
        return "".join(
            m["content"]["text"]
            for m in result["iopub"]
            if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    def close(self) -> None:
        self.client.stop_channels()


@pytest.fixture
def peer(make_kernel: Callable[..., KernelManager]) -> Iterator[Callable[..., Peer]]:
    """Factory: ``peer(km, username="alice") -> Peer``; stopped at teardown.

    (Depends on make_kernel so peers are torn down before the kernels.)
    """
    peers: list[Peer] = []

    def factory(km: KernelManager, username: str = "alice") -> Peer:
        p = Peer(km, username)
        peers.append(p)
        return p

    yield factory
    for p in peers:
        p.close()


# ------------------------------------------------------------------ terminals


@pytest.fixture
def ipymirror_argv() -> Callable[..., list[str]]:
    """``ipymirror_argv(*args)`` -> [sys.executable, "-m", "ipymirror", *args]."""
    return _ipymirror_argv


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    """Factory: ``terminal(argv, cols=100, rows=30, env=None, cwd=None)``.

    Like Terminal(...), except that the default env also puts the repository
    on PYTHONPATH (so ``python -m ipymirror`` works uninstalled).  Every
    Terminal is closed at teardown.
    """
    terminals: list[Terminal] = []

    def factory(argv: list[str], **kwargs: Any) -> Terminal:
        if kwargs.get("env") is None:
            path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
            kwargs["env"] = default_env(PYTHONPATH=path)
        term = Terminal(argv, **kwargs)
        terminals.append(term)
        return term

    yield factory
    for term in terminals:
        if not term.closed:
            term.close()
