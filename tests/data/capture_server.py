"""Capture real kernel-websocket frames from a real jupyter_server, for the framing tests.

Rerun with ``python tests/data/capture_server.py``; it rewrites ``server_frames.jsonl``
next to itself.  A jupyter_server (token, ``base_url=/user/alice/``) runs in a
temporary sandbox; a notebook session is created through REST; two raw clients
join its kernel — one with the ``v1.kernel.websocket.jupyter.org`` subprotocol,
one with the legacy JSON protocol — and every frame they receive is saved in
arrival order while a JupyterLab-like peer (``lab-bob``) runs cells, and the
kernel is restarted (REST), crashes (auto-restart), floods IOPub past the
server's rate limit, and is shut down (REST DELETE).

Each line: ``{"client": "v1"|"legacy", "step": STEP, "session": ID, "binary": bool,
"data": base64 or text}``.  Of the flood only the frames that are not plain
stdout are kept (the rate-limit notice among them).  Tokens never appear in frames.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "support"))

FLOOD = "import sys\nfor i in range(6000):\n    print(i)\n    sys.stdout.flush()"


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ipymirror-capture-"))
    for name in ("runtime", "data", "config"):
        (tmp / name).mkdir()
        os.environ[f"JUPYTER_{name.upper()}_DIR"] = str(tmp / name)
    os.environ["IPYTHONDIR"] = str(tmp / "ipython")
    import websocket
    from jupyter_client.session import Session
    from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1
    from server_helpers import V1, LabPeer, start_jupyter_server

    server = start_jupyter_server(tmp / "root")
    frames: list[dict] = []
    step = ["connect"]
    lock = threading.Lock()
    try:
        nb = server.new_notebook_session("work/analysis.ipynb")
        kid = nb["kernel"]["id"]
        clients = {}
        for kind in ("v1", "legacy"):
            sess = Session(username=f"capture-{kind}", key=b"x")
            url = (
                f"ws://127.0.0.1:{server.port}{server.base_url}api/kernels/{kid}/channels"
                f"?session_id={sess.session}"
            )
            ws = websocket.create_connection(
                url,
                subprotocols=[V1] if kind == "v1" else None,
                header=[f"Authorization: token {server.token}"],
            )
            clients[kind] = (ws, sess)

            def read(ws=ws, kind=kind, sess=sess) -> None:
                while True:
                    try:
                        opcode, data = ws.recv_data()
                    except Exception:
                        return
                    if opcode == websocket.ABNF.OPCODE_CLOSE:
                        with lock:
                            frames.append({"client": kind, "step": step[0], "closed": True})
                        return
                    binary = opcode == websocket.ABNF.OPCODE_BINARY
                    if step[0] == "flood" and b'"stdout"' in (data if binary else data.encode()):
                        continue
                    text = base64.b64encode(data).decode() if binary else data.decode()
                    with lock:
                        frames.append(
                            {
                                "client": kind,
                                "step": step[0],
                                "session": sess.session,
                                "binary": binary,
                                "data": text,
                            }
                        )

            threading.Thread(target=read, daemon=True).start()
        ws, sess = clients["v1"]
        ws.send_binary(
            serialize_msg_to_ws_v1(sess.msg("kernel_info_request", {}), "shell", sess.pack)
        )
        ws, sess = clients["legacy"]
        msg = sess.msg("kernel_info_request", {})
        msg["channel"] = "shell"
        ws.send(json.dumps(msg, default=str))
        bob = LabPeer(server, kid, "lab-bob")
        step[0] = "cells"
        bob.run("print('hello from lab')")
        bob.run("6 * 7")
        bob.run("1 / 0")
        step[0] = "rest-restart"
        server.api("POST", f"api/kernels/{kid}/restart")
        bob.wait_iopub(lambda m: m["content"].get("execution_state") == "starting")
        bob.request("kernel_info_request", {})
        step[0] = "crash"
        bob.execute_nowait("import os; os._exit(1)")
        bob.wait_iopub(lambda m: m["content"].get("execution_state") == "restarting", timeout=60)
        bob.request("kernel_info_request", {}, timeout=60)
        step[0] = "flood"
        bob.run(FLOOD, timeout=120)
        step[0] = "delete"
        server.api("DELETE", f"api/sessions/{nb['id']}")
        time.sleep(3)  # a capture script, not a test: let the last frames arrive
    finally:
        server.stop()
    out = HERE / "server_frames.jsonl"
    with open(out, "w") as f:
        for frame in frames:
            f.write(json.dumps(frame) + "\n")
    assert server.token not in out.read_text()
    print(f"wrote {len(frames)} frames to {out}")


if __name__ == "__main__":
    main()
