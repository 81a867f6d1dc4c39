"""Capture real IOPub traffic from real kernels, for the pure unit tests.

Rerun with ``python tests/data/capture.py``; it rewrites, next to itself:

* ``ipykernel_iopub.jsonl``: an ipykernel (python3) on 127.0.0.1.  Client
  "alice" runs the cells in ``ALICE_CELLS`` (stdout/stderr, a result, rich
  displays, a display_id with updates, clear_output(wait=True), ``\\r``
  progress, an error), a silent execution, then client "bob" sends a
  kernel_info_request and a complete_request, and finally the kernel is
  restarted (its ``shutdown_reply`` is broadcast on IOPub).
* ``bash_iopub.jsonl``: a bash_kernel session where alice runs ``echo hi``.
* ``irkernel_iopub.jsonl``: an IRkernel session (``40 + 2``, a data.frame);
  IRkernel sends results as ``display_data`` with text/plain beside HTML,
  Markdown and LaTeX.  ``python tests/data/capture.py ir`` redoes this one only.
* ``ipykernel_cells.json``, ``bash_cells.json``, ``irkernel_cells.json``: cell
  name -> request msg_id.

Every message alice's IOPub socket receives after her client is ready is
saved, in order, one ``json.dumps(msg, default=str)`` per line.  Messages
never carry the connection key (it only signs them), and the script checks
that it does not appear in the files anyway.

All Jupyter/IPython dirs point to a temporary directory, so nothing is
written to the user's own dirs; the bash kernelspec is installed there
(``python -m bash_kernel.install --user``) if it is not found.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# A real 1x1 PNG (one opaque red pixel).
PNG_1X1_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAF"
    "BQIAX8jx0gAAAABJRU5ErkJggg=="
)

ALICE_CELLS: list[tuple[str, str]] = [
    # (name, code).  ``ipykernel_cells.json`` maps each name to its request's
    # msg_id, so the tests find a cell's messages by their parent msg_id.
    ("streams", "import sys\nprint('hello')\nprint('oops', file=sys.stderr)"),
    ("result", "6 * 7"),
    ("multiline_result", "list(range(30))"),
    (
        "markdown",
        "from IPython.display import JSON, Image, Markdown, clear_output, display\n"
        "display(Markdown('# Title\\n\\nSome **bold** text'))",
    ),
    ("json", "display(JSON({'a': 1, 'b': [1, 2]}))"),
    (
        "image",
        f"import base64\ndisplay(Image(data=base64.b64decode('{PNG_1X1_B64}'), format='png'))",
    ),
    (
        "display_id",
        "h = display(Markdown('step 1'), display_id='progress-1')\nh.update(Markdown('step 2'))",
    ),
    ("late_update", "h.update(Markdown('step 3'))"),
    ("clear_output", "for i in range(3):\n    clear_output(wait=True)\n    print('tick', i)"),
    ("carriage_return", "for i in range(5):\n    print(f'\\r{i}', end='')\nprint()"),
    ("error", "1 / 0"),
]


def _client(km: Any, username: str) -> Any:
    from jupyter_client.session import new_id

    kc = km.client()
    # km.client() clones the manager's Session, session id included.
    kc.session.session = new_id()
    kc.session.username = username
    kc.start_channels()
    return kc


def _until_idle(kc: Any, msg_id: str, out: list[dict], timeout: float = 30) -> None:
    """Collect IOPub messages into ``out`` until the idle whose parent is ``msg_id``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise SystemExit(f"timed out waiting for idle of {msg_id}") from None
        out.append(msg)
        if (
            msg["msg_type"] == "status"
            and msg["parent_header"].get("msg_id") == msg_id
            and msg["content"].get("execution_state") == "idle"
        ):
            return


def _drain(kc: Any, out: list[dict], quiet: float = 1.0) -> None:
    while True:
        try:
            out.append(kc.get_iopub_msg(timeout=quiet))
        except queue.Empty:
            return


def _save(path: Path, msgs: list[dict], key: bytes) -> None:
    lines = [json.dumps(msg, default=str) for msg in msgs]
    text = "\n".join(lines) + "\n"
    if key and key.decode() in text:
        raise SystemExit(f"the connection key leaked into {path}")
    path.write_text(text, encoding="utf-8")
    print(f"{path}: {len(lines)} messages")


def capture_ipykernel() -> None:
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3", ip="127.0.0.1")
    km.start_kernel()
    msgs: list[dict] = []
    try:
        alice = _client(km, "alice")
        alice.wait_for_ready(timeout=60)  # (its own kernel_info traffic is drained)
        for name, code in ALICE_CELLS:
            msg_id = alice.execute(code, store_history=True)
            _until_idle(alice, msg_id, msgs)
            CELL_IDS[name] = msg_id
        msg_id = alice.execute("print(1)", silent=True)
        _until_idle(alice, msg_id, msgs)
        CELL_IDS["silent"] = msg_id

        bob = _client(km, "bob")
        time.sleep(0.5)  # let bob's sockets connect (no wait_for_ready: it would drain)
        msg_id = bob.kernel_info()
        _until_idle(alice, msg_id, msgs)
        CELL_IDS["bob_kernel_info"] = msg_id
        msg_id = bob.complete("pri", 3)
        _until_idle(alice, msg_id, msgs)
        CELL_IDS["bob_complete"] = msg_id
        bob.stop_channels()

        km.restart_kernel(now=False)  # shutdown_request(restart=True): shutdown_reply on IOPub
        _drain(alice, msgs)
        alice.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    _save(HERE / "ipykernel_iopub.jsonl", msgs, km.session.key)
    (HERE / "ipykernel_cells.json").write_text(json.dumps(CELL_IDS, indent=2) + "\n")


def _ensure_bash_kernelspec() -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("bash")
        return
    except NoSuchKernel:
        pass
    subprocess.run([sys.executable, "-m", "bash_kernel.install", "--user"], check=True)
    KernelSpecManager().get_kernel_spec("bash")


def capture_bash() -> None:
    from jupyter_client import KernelManager

    _ensure_bash_kernelspec()
    km = KernelManager(kernel_name="bash", ip="127.0.0.1")
    km.start_kernel()
    msgs: list[dict] = []
    try:
        alice = _client(km, "alice")
        alice.wait_for_ready(timeout=60)
        msg_id = alice.execute("echo hi")
        _until_idle(alice, msg_id, msgs)
        alice.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    _save(HERE / "bash_iopub.jsonl", msgs, km.session.key)
    (HERE / "bash_cells.json").write_text(json.dumps({"echo": msg_id}, indent=2) + "\n")


def ensure_ir_kernelspec() -> None:
    """IRkernel's kernelspec in ``$JUPYTER_DATA_DIR`` (Debian: r-cran-irkernel)."""
    spec = Path(os.environ["JUPYTER_DATA_DIR"]) / "kernels" / "ir" / "kernel.json"
    spec.parent.mkdir(parents=True, exist_ok=True)
    argv = ["R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"]
    spec.write_text(json.dumps({"argv": argv, "display_name": "R", "language": "R"}))


def capture_ir() -> None:
    """``irkernel_iopub.jsonl``: alice runs ``40 + 2`` and a data.frame in R."""
    from jupyter_client import KernelManager

    ensure_ir_kernelspec()
    km = KernelManager(kernel_name="ir", ip="127.0.0.1")
    km.start_kernel()
    msgs: list[dict] = []
    ids = {}
    try:
        alice = _client(km, "alice")
        alice.wait_for_ready(timeout=60)
        for name, code in (("answer", "40 + 2"), ("frame", "data.frame(x = 1:2, y = c('a', 'b'))")):
            ids[name] = alice.execute(code)
            _until_idle(alice, ids[name], msgs)
        alice.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    _save(HERE / "irkernel_iopub.jsonl", msgs, km.session.key)
    (HERE / "irkernel_cells.json").write_text(json.dumps(ids, indent=2) + "\n")


CELL_IDS: dict[str, str] = {}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ipymirror-capture-") as tmp:
        for var, sub in (
            ("JUPYTER_DATA_DIR", "data"),
            ("JUPYTER_RUNTIME_DIR", "runtime"),
            ("JUPYTER_CONFIG_DIR", "config"),
            ("IPYTHONDIR", "ipython"),
        ):
            os.environ[var] = os.path.join(tmp, sub)
            os.makedirs(os.environ[var])
        os.environ.pop("JUPYTER_PATH", None)
        if sys.argv[1:] == ["ir"]:  # IRkernel only: python tests/data/capture.py ir
            capture_ir()
            return
        capture_ipykernel()
        capture_bash()
        capture_ir()


if __name__ == "__main__":
    main()
