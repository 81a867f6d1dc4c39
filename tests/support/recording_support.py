"""Helpers shared by the recording, replay and export tests (this module has no tests).

* :class:`RecorderProcess` runs ``ipymirror record`` (or any ipymirror command)
  with pipes, and waits on its output lines (event driven).
* :func:`wait_for_records` waits until a recording file holds what a test
  expects: the file is re-read as it grows, with a deadline.
* :class:`IOPubCounter` is an independent, lossless IOPub subscriber (a raw
  ZMQ SUB socket with no high-water mark) that notes every message's ids.
* :func:`cell_messages` and :func:`write_recording` make synthetic recordings
  shaped exactly like ipykernel's messages.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import zmq
from jupyter_client import KernelManager
from terminal import REPO_ROOT, default_env, ipymirror_argv

from ipymirror.recording.files import RecordingWriter, read_recording
from ipymirror.recording.format import Record, header_record

KERNEL_INFO = {
    "implementation": "ipython",
    "implementation_version": "8.0.0",
    "protocol_version": "5.3",
    "language_info": {"name": "python", "version": "3.11", "pygments_lexer": "ipython3"},
    "banner": "Python 3.11",
    "status": "ok",
}


def env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return default_env(PYTHONPATH=path, NO_COLOR=None)


def run_ipymirror(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``ipymirror ARGS`` with pipes (not a tty); its result."""
    return subprocess.run(
        ipymirror_argv(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )


class RecorderProcess:
    """``ipymirror ARGS`` with stdout/stderr on pipes, read by threads."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            ipymirror_argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env(),
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @classmethod
    def record(cls, out: Path | str, km: KernelManager, *extra: str) -> RecorderProcess:
        rec = cls("record", str(out), "--existing", km.connection_file, *extra)
        rec.wait_for("recording the")
        return rec

    def _read(self, pipe: Any, lines: list[str]) -> None:
        for raw in pipe:
            with self._cond:
                lines.append(raw.decode("utf-8", "replace"))
                self._cond.notify_all()
        with self._cond:
            lines.append("")  # EOF marker
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.out:
                    if text in line:
                        return line
                if "" in self.out:
                    raise AssertionError(
                        f"output ended before {text!r}: rc={self.proc.poll()} "
                        f"out={''.join(self.out)!r} err={''.join(self.err)!r}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out waiting for {text!r}: {self.out!r}")
                self._cond.wait(remaining)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(timeout=5)
        return rc

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def read_all(path: Path | str) -> list[Record]:
    """Every whole record of a recording that may still be growing (or be torn)."""
    _, records = read_recording(str(path), warn=lambda text: None)
    return list(records)


def wait_for_records(
    path: Path | str, check: Callable[[list[Record]], bool], timeout: float = 60
) -> list[Record]:
    """Re-read the recording as it grows until ``check(records)``; fail at the deadline."""
    deadline = time.monotonic() + timeout
    size = -1
    records: list[Record] = []
    while True:
        new_size = os.path.getsize(path) if os.path.exists(path) else -1
        if new_size != size:
            size = new_size
            records = read_all(path) if size > 0 else []
            if check(records):
                return records
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting on {path}: {len(records)} records, last "
                f"{[(r.msg_type, r.msg['content']) for r in records[-3:]]}"
            )
        time.sleep(0.02)  # polling the file's size: there is no portable file event


def idle_of(msg_id: str) -> Callable[[Record], bool]:
    def check(record: Record) -> bool:
        return (
            record.msg_type == "status"
            and record.parent_id == msg_id
            and record.msg["content"].get("execution_state") == "idle"
        )

    return check


def has_idle(msg_id: str) -> Callable[[list[Record]], bool]:
    is_idle = idle_of(msg_id)
    return lambda records: any(is_idle(r) for r in records)


class IOPubCounter:
    """An independent subscriber that notes (msg_id, msg_type, parent msg_id) of all IOPub."""

    def __init__(self, km: KernelManager) -> None:
        info = km.get_connection_info()
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.rcvhwm = 0  # lossless: the test must not drop what it counts
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(f"tcp://{info['ip']}:{info['iopub_port']}")
        self.seen: list[tuple[str, str, str, str]] = []
        self.inputs: list[tuple[str, str]] = []  # (username, code) of each execute_input
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not self._stop:
            if not poller.poll(100):
                continue
            frames = self.sock.recv_multipart()
            i = frames.index(b"<IDS|MSG>")
            header, parent, content = (json.loads(frames[i + n]) for n in (2, 3, 5))
            state = content.get("execution_state", "") if header["msg_type"] == "status" else ""
            with self._cond:
                self.seen.append(
                    (header["msg_id"], header["msg_type"], parent.get("msg_id", ""), state)
                )
                if header["msg_type"] == "execute_input":
                    self.inputs.append((parent.get("username", ""), content.get("code", "")))
                self._cond.notify_all()

    def wait(self, check: Callable[[list[tuple[str, str, str, str]]], bool], timeout: float = 60):
        deadline = time.monotonic() + timeout
        with self._cond:
            while not check(self.seen):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"IOPub counter timed out; saw {len(self.seen)}")
                self._cond.wait(remaining)

    def sync(self, client: Any) -> None:
        """Send kernel_info until this subscriber sees IOPub (its subscription is live)."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg_id = client.kernel_info()
            try:
                self.wait(lambda seen, m=msg_id: any(p == m for _, _, p, _ in seen), timeout=0.5)
                return
            except AssertionError:
                continue
        raise AssertionError("the IOPub counter never got a message")

    def wait_idle(self, msg_id: str, timeout: float = 60) -> None:
        self.wait(
            lambda seen: msg_id and any(p == msg_id and s == "idle" for _, _, p, s in seen), timeout
        )

    def between(self, msg_id: str) -> list[str]:
        """msg_ids from the busy of request ``msg_id`` to its idle, inclusive."""
        with self._cond:
            seen = list(self.seen)
        start = next(i for i, (_, t, p, s) in enumerate(seen) if p == msg_id and s == "busy")
        end = next(i for i, (_, t, p, s) in enumerate(seen) if p == msg_id and s == "idle")
        return [m for m, _, _, _ in seen[start : end + 1]]

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        self.sock.close(linger=0)
        self.ctx.term()


def recorded_between(records: Iterable[Record], msg_id: str) -> list[str]:
    records = list(records)
    start = next(
        i
        for i, r in enumerate(records)
        if r.parent_id == msg_id and r.msg["content"].get("execution_state") == "busy"
    )
    end = next(i for i, r in enumerate(records) if idle_of(msg_id)(r))
    return [r.msg["msg_id"] for r in records[start : end + 1]]


# ------------------------------------------------------------- synthetic data


def message(
    msg_type: str, content: dict[str, Any], parent: dict[str, Any], n: list[int]
) -> dict[str, Any]:
    """An IOPub message as jupyter_client deserialises it (dates as strings)."""
    n[0] += 1
    header = {
        "msg_id": f"kernel_{n[0]}",
        "msg_type": msg_type,
        "username": "username",
        "session": "kernel-session",
        "date": "2026-01-01T00:00:00.000000Z",
        "version": "5.3",
    }
    return {
        "header": header,
        "msg_id": header["msg_id"],
        "msg_type": msg_type,
        "parent_header": parent,
        "metadata": {},
        "content": content,
        "buffers": [],
    }


def cell_messages(
    code: str,
    outputs: list[tuple[str, dict[str, Any]]],
    count: int,
    *,
    username: str = "alice",
    session: str = "a11ce000-0000-0000-0000-000000000000",
    n: list[int] | None = None,
) -> list[dict[str, Any]]:
    """busy, execute_input, the outputs, idle: one execution as ipykernel sends it."""
    n = n if n is not None else [0]
    parent = {
        "msg_id": f"req-{uuid.uuid4()}",
        "msg_type": "execute_request",
        "username": username,
        "session": session,
        "date": "2026-01-01T00:00:00.000000Z",
        "version": "5.3",
    }
    msgs = [message("status", {"execution_state": "busy"}, parent, n)]
    msgs.append(message("execute_input", {"code": code, "execution_count": count}, parent, n))
    msgs += [message(kind, content, parent, n) for kind, content in outputs]
    msgs.append(message("status", {"execution_state": "idle"}, parent, n))
    return msgs


def stdout(text: str) -> tuple[str, dict[str, Any]]:
    return ("stream", {"name": "stdout", "text": text})


def write_recording(
    path: Path | str, timed: Iterable[tuple[float, dict[str, Any]]], **kernel: Any
) -> Path:
    """A recording of ``(t, msg)`` pairs, as ipymirror record writes it."""
    with RecordingWriter(str(path)) as writer:
        writer.write_line(header_record({**KERNEL_INFO, **kernel}, "python3"))
        for t, msg in timed:
            writer.write(msg, t)
    return Path(path)


def session_recording(path: Path | str, gap: float = 1.0) -> Path:
    """Three cells by alice, ``gap`` seconds apart (each message 1 ms after the last)."""
    n = [0]
    cells = [
        cell_messages("x = 6 * 7", [], 1, n=n),
        cell_messages("print('hello', x)", [stdout("hello 42\n")], 2, n=n),
        cell_messages(
            "x",
            [
                (
                    "execute_result",
                    {"data": {"text/plain": "42"}, "metadata": {}, "execution_count": 3},
                )
            ],
            3,
            n=n,
        ),
    ]
    timed = []
    t = 0.0
    for msgs in cells:
        for msg in msgs:
            timed.append((t, msg))
            t += 0.001
        t += gap
    return write_recording(path, timed)
