"""Hostile kernels and outputs, end to end: real kernel, real processes.

The kernel here is a real ipykernel made hostile from inside: a peer's cell
signs frames with the kernel's own session and puts them on its IOPub socket,
so they are exactly what a hostile (or buggy) kernel would broadcast: valid
signatures around a null header, or content nested 100,000 levels deep.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

from terminal import ipymirror_argv
from test_recording_support import RecorderProcess, env, read_all

#: Kernel-side code: broadcast two signed but malformed messages, then print.
HOSTILE = r"""
import json, uuid
_k = get_ipython().kernel
_s = _k.session
_parent = json.dumps(_k.get_parent()["header"], default=str).encode()

def _send(parts):
    _k.iopub_socket.send_multipart([b"x", b"<IDS|MSG>", _s.sign(parts), *parts])

def _header(kind):
    return json.dumps({"msg_id": uuid.uuid4().hex, "msg_type": kind, "session": _s.session,
                       "username": "kernel", "date": "2026-01-01T00:00:00Z",
                       "version": "5.3"}).encode()

_send([b"null", _parent, b"{}", b'{"name": "stdout", "text": "null header\\n"}'])
_deep = b"[" * 100_000 + b"]" * 100_000
_send([_header("display_data"), _parent, b"{}",
       b'{"metadata": {}, "data": {"application/json": ' + _deep + b'}}'])
print("after the " + "hostile ones", flush=True)
"""


def test_record_keeps_malformed_and_deep_messages_raw(kernel, peer, tmp_path):
    out = tmp_path / "s.ipym"
    rec = RecorderProcess.record(out, kernel)
    try:
        bob = peer(kernel, "bob")
        bob.execute_nowait(HOSTILE)
        deadline = time.monotonic() + 60
        while not any(
            r.msg_type == "stream" and "after the hostile" in str(r.msg["content"].get("text"))
            for r in read_all(out)
        ):
            assert rec.proc.poll() is None, rec.stderr  # record must not die
            assert time.monotonic() < deadline, rec.stderr
            time.sleep(0.05)  # polling a file that grows: there is no event to wait on
        assert rec.stop() == 0
    finally:
        rec.close()
    records = read_all(out)
    raw = [r for r in records if "raw" in r.msg]
    assert len(raw) == 2, [r.msg_type for r in records]
    null, deep = raw
    assert null.msg["raw"] == {"header": "null"} and null.msg["content"]["text"] == "null header\n"
    assert deep.msg_type == "display_data" and deep.msg["content"] == {}
    assert deep.msg["raw"]["content"].startswith('{"metadata": {}, "data": {"application/json": [[')
    assert "recorded raw" in rec.stderr and "Traceback" not in rec.stderr
    assert "2 of them raw" in rec.stdout


def test_watch_calls_a_malformed_message_malformed(kernel, peer):
    proc = subprocess.Popen(
        ipymirror_argv("watch", "--existing", kernel.connection_file),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
    )
    try:
        bob = peer(kernel, "bob")
        data = b""
        # watch announces nothing on a pipe: run cells until one shows up
        deadline = time.monotonic() + 30
        while b"warm" not in data:
            assert time.monotonic() < deadline, data
            bob.run("print('warm')")
            data += _read_available(proc)
        bob.execute_nowait(HOSTILE)
        while "│ after the hostile ones\n".encode() not in data:
            assert proc.poll() is None and time.monotonic() < deadline + 30, data
            data += _read_available(proc, wait=1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        data += proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    text = data.decode()
    assert re.search(r"malformed message \(header null\)", text), text
    assert "signature check" not in text
    assert "Traceback" not in err.decode(), err


def _read_available(proc: subprocess.Popen, wait: float = 0.5) -> bytes:
    """What the process wrote, waiting up to ``wait`` for the first byte."""
    import os
    import select

    fd = proc.stdout.fileno()
    out = b""
    ready, _, _ = select.select([fd], [], [], wait)
    while ready:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        out += chunk
        ready, _, _ = select.select([fd], [], [], 0)
    return out


def test_record_onto_an_existing_file_is_refused_before_connecting(tmp_path):
    existing = tmp_path / "old.ipym"
    existing.write_text("precious\n")
    never = tmp_path / "no-such-kernel.json"  # connecting would fail differently
    proc = subprocess.run(
        ipymirror_argv("--record", str(existing), "--existing", str(never)),
        capture_output=True,
        text=True,
        timeout=60,
        env=env(),
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode != 0
    assert "already exists" in proc.stderr and "connection file" not in proc.stderr
    assert existing.read_text() == "precious\n"
