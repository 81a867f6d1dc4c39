"""End-to-end: ``ipymirror watch`` on a real kernel, in a pty and piped.

watch shows the same stream as the console but has no prompt and must never
execute anything: the IOPub traffic of an independent recorder proves it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

from jupyter_client import BlockingKernelClient
from jupyter_client.session import new_id
from terminal import REPO_ROOT, Terminal, default_env


def env_for(cpr: bool = True) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return default_env(PYTHONPATH=path, PROMPT_TOOLKIT_NO_CPR=None if cpr else "1")


def tag(session_id: str) -> str:
    return session_id.replace("-", "")[:4]


def open_watch(terminal, ipymirror_argv, km) -> Terminal:
    term = terminal(ipymirror_argv("watch", "--existing", km.connection_file), env=env_for())
    term.wait_for(status_row)
    return term


def status_row(term: Terminal) -> str:
    """The watch status line (it ends with a hint on how to quit), or ''."""
    return next((row for row in term.display() if row.endswith("(q quits)")), "")


def test_watch_shows_peer_cells_and_q_quits(kernel, peer, terminal, ipymirror_argv):
    alice = peer(kernel, "alice")
    term = open_watch(terminal, ipymirror_argv, kernel)
    term.wait_for(re.compile(r"^» watching the python kernel .*\(read-only\)$", re.M | re.S))
    alice.run("for i in range(3):\n    print('watched', i)\n6*7")
    t = tag(alice.session_id)
    term.wait_for(
        re.compile(
            rf"^┌ alice·{t}  In \[\d+\]\n│ for i in range\(3\):\n"
            r"│     print\('watched', i\)\n│ 6\*7\n"
            r"│ watched 0\n│ watched 1\n│ watched 2\n│ Out\[\d+\]: 42$",
            re.M,
        )
    )
    term.wait_for(lambda t_: re.search(rf"● idle .*peers: alice·{t}", status_row(t_)))
    # No prompt: typing, Enter included, shows nothing and runs nothing.  The keys
    # go before the q, so the exit proves they were all read (and any request sent).
    term.send("typed_by_watcher = 1" + "\r" + "print('from the watcher')" + "\r")
    term.send("q")
    assert term.wait_exit() == 0
    text = term.text()
    assert "typed_by_watcher" not in text and "from the watcher" not in text, text
    assert not re.search(r"^In \[", text, re.M), text
    assert "(q quits)" not in "\n".join(term.display())  # the status line is erased on exit
    probe = alice.run("print('typed_by_watcher' in dir())")["iopub"]
    assert [m["content"]["text"] for m in probe if m["msg_type"] == "stream"] == ["False\n"]


def _recorder(km) -> BlockingKernelClient:
    client = BlockingKernelClient(connection_file=km.connection_file)
    client.load_connection_file()
    client.session.session = new_id()
    client.session.username = "recorder"
    client.start_channels()
    client.wait_for_ready(timeout=30)
    return client


def _is_idle_of(msg: dict, msg_id: str) -> bool:
    return (
        msg["parent_header"].get("msg_id") == msg_id
        and msg["msg_type"] == "status"
        and msg["content"]["execution_state"] == "idle"
    )


def test_watch_never_executes(kernel, peer, terminal, ipymirror_argv):
    recorder = _recorder(kernel)
    try:
        # Forget the recorder's own start-up traffic: everything up to the idle of
        # a kernel_info of its own (IOPub delivers in order).
        ready = recorder.kernel_info()
        while not _is_idle_of(recorder.get_iopub_msg(timeout=30), ready):
            pass
        alice = peer(kernel, "alice")
        term = open_watch(terminal, ipymirror_argv, kernel)
        first = alice.run("a = 1\nprint('cell one')")
        second = alice.run("print('cell two')")
        term.wait_for("│ cell two")
        last_id = second["reply"]["parent_header"]["msg_id"]
        msgs = []
        while True:  # everything up to the idle of alice's second cell
            msg = recorder.get_iopub_msg(timeout=10)
            msgs.append(msg)
            if _is_idle_of(msg, last_id):
                break
        term.send("q")
        assert term.wait_exit() == 0
    finally:
        recorder.stop_channels()
    known = {alice.session_id, recorder.session.session}
    others = {m["parent_header"].get("session") for m in msgs} - known - {None}
    # The watcher is on the kernel: its kernel_info_request caused busy/idle.
    watchers = {
        m["parent_header"]["session"]
        for m in msgs
        if m["parent_header"].get("session") in others
        and m["parent_header"].get("msg_type") == "kernel_info_request"
    }
    assert watchers, [(m["msg_type"], m["parent_header"].get("msg_type")) for m in msgs]
    from_watcher = [m for m in msgs if m["parent_header"].get("session") in others]
    requests = {m["parent_header"].get("msg_type") for m in from_watcher}
    assert requests == {"kernel_info_request"}, requests
    assert not [m for m in from_watcher if m["msg_type"] == "execute_input"]
    inputs = [m for m in msgs if m["msg_type"] == "execute_input"]
    assert [m["parent_header"]["session"] for m in inputs] == [alice.session_id] * 2
    assert first["reply"]["content"]["status"] == "ok"


class _Lines:
    """Lines read from a pipe by a thread; wait_for() wakes on each one."""

    def __init__(self, pipe) -> None:
        self.data = b""
        self._cond = threading.Condition()
        self._eof = False
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe) -> None:
        while chunk := os.read(pipe.fileno(), 65536):
            with self._cond:
                self.data += chunk
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(self, needle: bytes, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while needle not in self.data:
                remaining = deadline - time.monotonic()
                assert not self._eof, f"output ended before {needle!r}: {self.data!r}"
                assert remaining > 0, f"timed out waiting for {needle!r}: {self.data!r}"
                self._cond.wait(remaining)

    def join(self, timeout: float = 10.0) -> bytes:
        self._thread.join(timeout)
        assert not self._thread.is_alive()
        return self.data


def test_watch_piped_is_plain_text(kernel, peer, ipymirror_argv):
    alice = peer(kernel, "alice")
    proc = subprocess.Popen(
        ipymirror_argv("watch", "--existing", kernel.connection_file),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env_for(),
    )
    try:
        out = _Lines(proc.stdout)
        # No notice on a pipe; wait until the watcher is on the kernel (its
        # kernel_info) by running cells until one shows up.
        alice.run("print('warm-up')")
        deadline = time.monotonic() + 15
        while b"warm-up" not in out.data:
            assert time.monotonic() < deadline, out.data
            alice.run("print('warm-up')")
        alice.run("for i in range(3):\n    print(f'\\x1b[32mpiped {i}\\x1b[0m')\n6*7")
        out.wait_for(b"Out[")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        data = out.join()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        err = proc.stderr.read()
        proc.stderr.close()
    assert b"\x1b" not in data, data
    assert b"\r" not in data, data
    lines = data.decode().split("\n")
    assert lines[-1] == ""  # ends with a newline
    t = tag(alice.session_id)
    start = max(
        i for i, line in enumerate(lines) if re.fullmatch(rf"┌ alice·{t}  In \[\d+\]", line)
    )
    assert lines[start + 1 : start + 8] == [
        "│ for i in range(3):",
        "│     print(f'\\x1b[32mpiped {i}\\x1b[0m')",
        "│ 6*7",
        "│ piped 0",
        "│ piped 1",
        "│ piped 2",
        lines[start + 7],
    ]
    assert re.fullmatch(r"│ Out\[\d+\]: 42", lines[start + 7])
    assert err == b"", err
