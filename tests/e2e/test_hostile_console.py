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

from hostile_kernel import HOSTILE
from recording_support import (
    RecorderProcess,
    cell_messages,
    env,
    read_all,
    session_recording,
    stdout,
    write_recording,
)
from terminal import ipymirror_argv


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


# ------------------------------------------------------------ a file is not a terminal


def test_replay_or_export_into_a_full_disk_fails_with_one_line(tmp_path):
    path = session_recording(tmp_path / "s.ipym", gap=0)
    for args in (
        ["replay", "--no-wait", str(path)],
        ["export", str(path), "--to", "markdown", "-o", "-"],
    ):
        with open("/dev/full", "w") as full:
            proc = subprocess.run(
                ipymirror_argv(*args),
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
                env=env(),
                stdin=subprocess.DEVNULL,
            )
        assert proc.returncode != 0, args
        assert proc.stderr.strip().splitlines() == [
            "ipymirror: error: cannot write to standard output: No space left on device"
        ], args


def test_replay_into_a_closed_pipe_fails_with_one_line(tmp_path):
    n = [0]
    flood = cell_messages("flood", [stdout(f"line {i}\n") for i in range(20_000)], 1, n=n)
    path = write_recording(tmp_path / "s.ipym", [(0.0, msg) for msg in flood])
    proc = subprocess.Popen(
        ipymirror_argv("replay", "--no-wait", str(path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
        stdin=subprocess.DEVNULL,
    )
    proc.stdout.read(100)
    proc.stdout.close()  # like `| head -c 100`
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) != 0
    assert err.strip().splitlines() == [
        "ipymirror: error: cannot write to standard output: Broken pipe"
    ], err


def test_watch_piped_blocks_instead_of_dropping(kernel, peer):
    """20 MB through a pipe nobody reads for a while: all of it arrives, none dropped."""
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
        deadline = time.monotonic() + 30
        while b"warm" not in data:
            assert time.monotonic() < deadline, data
            bob.run("print('warm')")
            data += _read_available(proc)
        # 200,000 lines of 100 bytes while the pipe is not read: more than the
        # writer's 16 MB bound, which on a terminal would drop the oldest lines.
        bob.run(
            "import sys\nfor i in range(2000):\n"
            "    sys.stdout.write(''.join(f'{i * 100 + j:>98}\\n' for j in range(100)))\n"
            "    sys.stdout.flush()\n"
            "print('flood' + ' done', flush=True)",
            timeout=120,
        )
        deadline = time.monotonic() + 120
        while "│ flood done\n".encode() not in data:
            assert proc.poll() is None and time.monotonic() < deadline
            data += _read_available(proc, wait=1.0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    text = data.decode()
    assert "could not keep up" not in text and "not shown" not in text
    numbers = [int(n) for n in re.findall(r"^│ +(\d+)$", text, re.M)]
    assert numbers == list(range(200_000))


# ------------------------------------------------------------ the prompt never freezes


class _RawPty:
    """A program on a pty whose output is only collected (no emulator: megabytes
    must not be slowed down by the reader), for timing what it echoes."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        import threading

        import ptyprocess

        self.proc = ptyprocess.PtyProcess.spawn(argv, dimensions=(30, 100), env=env)
        self.raw = bytearray()
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        import os

        while True:
            try:
                data = os.read(self.proc.fd, 1 << 16)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.raw += b"\0EOF"
                    self.cond.notify_all()
                    return
                self.raw += data
                self.cond.notify_all()

    def wait_for(self, needle: bytes, start: int = 0, timeout: float = 60) -> float:
        """Wait until ``needle`` is in the output after offset ``start``; when it came."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.raw.find(needle, start) < 0:
                remaining = deadline - time.monotonic()
                assert remaining > 0 and not self.raw.endswith(b"\0EOF"), bytes(self.raw[-500:])
                self.cond.wait(remaining)
        return time.monotonic()

    def close(self) -> None:
        if self.proc.isalive():
            self.proc.terminate(force=True)
        self.thread.join(timeout=10)


def test_key_echo_stays_fast_while_a_peer_shows_2_5_mb_of_markdown(kernel, peer):
    """13 Markdown outputs of 190 kB (2.5 MB): each was laid out by rich, 3-5 s apiece."""
    from test_console import env_for

    term = _RawPty(
        ipymirror_argv("--existing", kernel.connection_file, "--name", "me"), env_for(cpr=False)
    )
    try:
        term.wait_for(b"In [")
        bob = peer(kernel, "bob")
        unit = (
            "# Heading {i}\n\nSome **bold** and `code` text, *emphasis* too.\n\n"
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n"
        )
        bob.execute_nowait(
            "from IPython.display import Markdown, display  # outputs-follow\n"
            f"unit = {unit!r}\n"
            "for n in range(13):\n"
            "    display(Markdown(''.join(unit.format(i=i) for i in range(2200))[:190_000]))\n"
            "print('markdown' + ' done')"
        )
        term.wait_for(b"outputs-follow")  # the peer's cell is shown: its outputs come next
        echoes: list[float] = []
        during = 0  # keys typed before the last output was drawn
        for key in "αβγδεζηθικλμνξοπρστυφχψω":
            with term.cond:
                start = len(term.raw)
                during += b"markdown done" not in term.raw
            sent = time.monotonic()
            term.proc.write(key.encode())
            echoes.append(term.wait_for(key.encode(), start) - sent)
        term.wait_for(b"markdown done", timeout=120)
    finally:
        term.close()
    print("key echo (s):", [round(e, 3) for e in echoes], "typed during the outputs:", during)
    assert during >= 3
    echoes.sort()
    assert echoes[len(echoes) // 2] < 0.1, echoes  # the median key echo, under load too
    assert echoes[-2] < 0.25, echoes


# ------------------------------------------------------------ no silent loss


def test_every_iopub_subscriber_is_lossless(kernel):
    """console and watch too, not only record and share: ZMQ's default high-water
    mark (1,000 messages) would drop silently whatever a slow moment left unread."""
    import asyncio

    import zmq

    from ipymirror.transports.zmq import KernelLink

    async def main() -> int:
        link = KernelLink.join(kernel.connection_file, "watcher")
        try:
            await link.connect(30, stdin=False, control=False)  # as watch does
            return link.client.iopub_channel.socket.getsockopt(zmq.RCVHWM)
        finally:
            await link.close(shutdown=False)

    assert asyncio.run(main()) == 0


# ------------------------------------------------------------ export keeps going


def _odd_recording(path):
    """Good cells around odd ones: a lone surrogate, counts of -1 and null, a corrupt
    line, a message recorded raw, an error with fields missing, bidi in code."""
    n = [0]
    cells = [
        cell_messages("print('first')", [stdout("first ok\n")], 1, n=n),
        cell_messages("print('odd')", [stdout("half \ud800 a surrogate\n")], 2, n=n),
        cell_messages(
            "x",
            [("execute_result", {"data": {"text/plain": "1"}, "execution_count": None})],
            -1,
            n=n,
        ),
        cell_messages("1/0", [("error", {"ename": "ZeroDivisionError"})], 4, n=n),
        cell_messages("s = 'a\u202eb'", [stdout("bidi \u202e\x1b]0;title\x07 out\n")], 5, n=n),
        cell_messages("print('last')", [stdout("last ok\n")], 6, n=n),
    ]
    timed = [(0.01 * i, m) for i, m in enumerate(m for cell in cells for m in cell)]
    write_recording(path, timed)
    lines = path.read_bytes().split(b"\n")
    # a corrupt record in the middle, and one recorded raw (as record does)
    lines.insert(8, b'{"t": 0.05, "channel": "iopub"}')
    lines.insert(
        9,
        b'{"t": 0.05, "channel": "iopub", "msg_type": "display_data", "header": {}, '
        b'"parent_header": {}, "content": {}, "raw": {"content": "[[[[ deep"}}',
    )
    path.write_bytes(b"\n".join(lines))
    return path


def test_export_leaves_out_odd_messages_and_warns_once(tmp_path):
    import json

    import nbformat
    from recording_support import run_ipymirror

    path = _odd_recording(tmp_path / "odd.ipym")
    for fmt in ("ipynb", "markdown", "asciicast"):
        proc = run_ipymirror("export", str(path), "--to", fmt, "-o", "-")
        assert proc.returncode == 0, proc.stderr
        warnings = proc.stderr.strip().splitlines()
        assert len(warnings) == 1, warnings
        assert re.match(r"ipymirror: warning: .*odd\.ipym: line \d+: .*left out", warnings[0])
        out = proc.stdout
        assert "first ok" in out and "last ok" in out, out
        assert "\u202e" not in out and "\x1b]" not in out and "\ud800" not in out
        if fmt == "ipynb":
            nb = nbformat.reads(out, as_version=4)
            nbformat.validate(nb)
            texts = [o.get("text", "") for c in nb.cells for o in c.outputs]
            assert "half \ud800 a surrogate\n" in texts  # escaped, read back unchanged
            assert [c.execution_count for c in nb.cells] == [1, 2, None, 4, 5, 6]
            assert "a\u202eb" in nb.cells[4].source
        if fmt == "asciicast":
            assert all(json.loads(line) for line in out.splitlines())


def test_record_prints_a_hostile_kernel_info_sanitised(kernel, peer, tmp_path):
    """A peer rewrites what the kernel says about itself; record prints it sanitised."""
    bob = peer(kernel, "bob")
    result = bob.run(
        "_k = get_ipython().kernel\n"
        "_k.implementation = 'ipy' + chr(27) + ']52;c;cHduZWQ=' + chr(7) + 'thon' + chr(0x202e)\n"
        "_k.language_info = dict(\n"
        "    _k.language_info, name='py' + chr(27) + '[2J' + 'thon' + chr(0x9b))\n"
    )
    assert result["reply"]["content"]["status"] == "ok", result
    rec = RecorderProcess.record(tmp_path / "s.ipym", kernel)
    try:
        line = rec.wait_for("recording the")
        assert rec.stop() == 0
    finally:
        rec.close()
    assert "recording the python kernel (ipython) of " in line, line
    assert not any(c in rec.stdout for c in "\x1b\x07\x9b\u202e"), rec.stdout
