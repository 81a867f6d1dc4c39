"""``ipymirror record`` against real kernels: nothing lost, restarts, crashes, no secrets."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from recording_support import (
    IOPubCounter,
    RecorderProcess,
    has_idle,
    read_all,
    recorded_between,
    run_ipymirror,
    wait_for_records,
)
from terminal import ENTER, ipymirror_argv

from ipymirror.recording.files import read_recording

#: Lines the flood test prints, one message each.  The issue asks for 200,000;
#: that takes ~40 s here, so the test uses 20,000 and the benchmark
#: (benchmarks/recorder_bench.py) 200,000.  IPYMIRROR_FLOOD_LINES=200000 runs the full one.
FLOOD = int(os.environ.get("IPYMIRROR_FLOOD_LINES", "20000"))


@pytest.fixture
def recorders():
    started: list[RecorderProcess] = []

    def start(out, km, *extra):
        rec = RecorderProcess.record(out, km, *extra)
        started.append(rec)
        return rec

    yield start
    for rec in started:
        rec.close()


@pytest.mark.timeout(180)
def test_flood_every_message_recorded_in_order(kernel, peer, recorders, tmp_path):
    alice = peer(kernel, "alice")
    counter = IOPubCounter(kernel)
    try:
        counter.sync(alice.client)
        out = tmp_path / "flood.ipym"
        rec = recorders(out, kernel)
        flood = alice.execute_nowait(f"for i in range({FLOOD}):\n    print(i, flush=True)")
        counter.wait_idle(flood, timeout=150)
        records = wait_for_records(out, has_idle(flood), timeout=150)
        expected = counter.between(flood)
    finally:
        counter.close()
    assert rec.stop() == 0
    recorded = recorded_between(records, flood)
    assert len(expected) > FLOOD  # thousands of separate messages, not a few big ones
    assert recorded == expected  # every message, in arrival order
    text = "".join(
        r.msg["content"]["text"] for r in records if r.msg_type == "stream" and r.parent_id == flood
    )
    assert text == "".join(f"{i}\n" for i in range(FLOOD))
    assert f"recorded {len(read_all(out)):,} messages" in rec.stdout


def test_kernel_restart_is_recorded_and_survived(kernel, peer, recorders, tmp_path):
    alice = peer(kernel, "alice")
    out = tmp_path / "restart.ipym"
    rec = recorders(out, kernel)
    before = alice.run("x = 'before'")["reply"]["parent_header"]["msg_id"]
    wait_for_records(out, has_idle(before))
    kernel.restart_kernel(now=False)
    alice.client.wait_for_ready(timeout=60)

    def resubscribed(records: list) -> bool:
        """A broadcast of the new kernel (another kernel session) reached the recorder."""
        types = [r.msg_type for r in records]
        if "shutdown_reply" not in types:
            return False
        end = types.index("shutdown_reply")
        old = records[end].msg["header"]["session"]
        return any(r.msg["header"]["session"] != old for r in records[end:])

    # Until its SUB socket has reconnected, the new kernel's broadcasts cannot
    # reach the recorder (ZMQ's slow joiner).  The kernel's iopub_welcome is no
    # proof: XPUB reports a topic's first subscriber only, which may be alice.
    # So alice probes with kernel_info (its busy/idle are broadcast) until one
    # of those broadcasts is in the recording.
    deadline = time.monotonic() + 60
    while True:
        alice.client.kernel_info()
        try:
            wait_for_records(out, resubscribed, timeout=1)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    after = alice.run("print('after restart')")["reply"]["parent_header"]["msg_id"]
    records = wait_for_records(out, has_idle(after))
    assert rec.proc.poll() is None  # still recording
    assert rec.stop() == 0
    types = [r.msg_type for r in records]
    shutdown = [r for r in records if r.msg_type == "shutdown_reply"]
    assert shutdown and shutdown[0].msg["content"]["restart"] is True
    assert types.index("shutdown_reply") < max(
        i for i, r in enumerate(records) if r.msg_type == "execute_input"
    )
    texts = [
        r.msg["content"]["text"]
        for r in records
        if r.msg_type == "stream" and r.msg["content"]["name"] == "stdout"
    ]
    assert texts == ["after restart\n"]
    codes = [r.msg["content"]["code"] for r in records if r.msg_type == "execute_input"]
    assert codes == ["x = 'before'", "print('after restart')"]


def test_recording_ends_when_the_kernel_shuts_down(kernel, peer, recorders, tmp_path):
    out = tmp_path / "end.ipym"
    rec = recorders(out, kernel)
    peer(kernel).client.shutdown()
    assert rec.proc.wait(30) == 0
    rec.stop()
    assert "the kernel shut down: recorded" in rec.stdout
    assert any(r.msg_type == "shutdown_reply" for r in read_all(out))


@pytest.mark.parametrize("name", ["crash.ipym", "crash.ipym.gz"])
def test_sigkill_leaves_a_file_that_replays(kernel, peer, recorders, tmp_path, name):
    alice = peer(kernel, "alice")
    out = tmp_path / name
    rec = recorders(out, kernel)
    alice.execute_nowait("for i in range(10**6):\n    print(i, flush=True)")
    wait_for_records(out, lambda records: len(records) > 2000)
    rec.stop(signal.SIGKILL)  # mid-stream
    kernel.interrupt_kernel()

    warnings: list[str] = []
    _, records = read_recording(str(out), warn=warnings.append)
    numbers = [r.msg["content"]["text"] for r in records if r.msg_type == "stream"]
    assert warnings == []  # each line was written whole
    last = int("".join(numbers).split()[-1])
    assert last > 1000

    proc = run_ipymirror("replay", str(out), "--no-wait")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    shown = [int(m) for m in re.findall(r"^│ (\d+)$", proc.stdout, re.M)]
    assert shown == list(range(last + 1))  # everything up to the last whole line

    # Now tear the last line by hand, as a crash in the middle of a write would.
    raw = out.read_bytes()
    if name.endswith(".gz"):
        out.write_bytes(raw[:-9])
    else:
        out.write_bytes(raw + b'{"t": 99.5, "channel": "iopub", "msg_type": "str')
    proc = run_ipymirror("replay", str(out), "--no-wait")
    assert proc.returncode == 0
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("ipymirror: warning: ")
    assert "incomplete" in proc.stderr
    shown_now = [int(m) for m in re.findall(r"^│ (\d+)$", proc.stdout, re.M)]
    assert shown_now == list(range(len(shown_now))) and len(shown_now) >= last


def _walk(value, name=None):
    """(key, value) of every node of a JSON document (key None inside lists)."""
    yield name, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, key)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def test_recording_holds_no_secrets(kernel, peer, recorders, tmp_path):
    info = json.loads(Path(kernel.connection_file).read_text())
    key = info["key"]
    assert len(key) >= 16
    out = tmp_path / "secret.ipym"
    rec = recorders(out, kernel)
    alice = peer(kernel, "alice")
    done = alice.run("import os; print(os.getpid()); 1/0")["reply"]["parent_header"]["msg_id"]
    wait_for_records(out, has_idle(done))
    assert rec.stop() == 0
    data = out.read_bytes()
    assert key.encode() not in data
    assert kernel.connection_file.encode() not in data
    assert os.path.basename(kernel.connection_file).encode() not in data
    ports = {v for k, v in info.items() if k.endswith("_port")}
    assert len(ports) == 5
    forbidden = {
        "key",
        "signature_scheme",
        "ip",
        "transport",
        *(k for k in info if k.endswith("_port")),
    }
    for line in data.splitlines():
        for name, value in _walk(json.loads(line)):
            assert name not in forbidden, line[:200]
            assert not (isinstance(value, int) and value in ports), line[:200]
            assert not (isinstance(value, str) and f"{info['ip']}:" in value), line[:200]


def test_refuses_to_overwrite_a_recording(kernel, tmp_path):
    out = tmp_path / "exists.ipym"
    out.write_text("precious\n")
    proc = run_ipymirror("record", str(out), "--existing", kernel.connection_file)
    assert proc.returncode == 6
    assert proc.stderr.startswith("ipymirror: error: ") and "already exists" in proc.stderr
    assert out.read_text() == "precious\n"


def test_status_line_updates_in_place_on_a_tty(kernel, peer, terminal, tmp_path):
    out = tmp_path / "tty.ipym"
    term = terminal(ipymirror_argv("record", str(out), "--existing", kernel.connection_file))
    term.wait_for("recording the python kernel")
    alice = peer(kernel, "alice")
    alice.run("print(1)")
    alice.run("print(2)")
    term.wait_for(re.compile(r"● rec [\d,]+ messages │ 2 cells │ 1 peer │ [\d.]+ kB"))
    assert term.text().count("● rec") == 1  # one line, redrawn in place
    term.ctrl("c")
    assert term.wait_exit() == 0
    assert re.search(r"stopped: recorded [\d,]+ messages, 2 cells", term.text())


def test_console_records_with_record_option(kernel, peer, terminal, tmp_path):
    out = tmp_path / "console.ipym"
    argv = ipymirror_argv(
        "--existing", kernel.connection_file, "--name", "carol", "--record", str(out)
    )
    term = terminal(argv)
    term.wait_for("recording to")
    term.wait_for("In [1]")
    term.send("print(6 * 7)" + ENTER)
    term.wait_for("42")
    bob = peer(kernel, "bob")
    bob.run("print('from', 'bob')")
    term.wait_for("from bob")
    term.ctrl("d")
    assert term.wait_exit() == 0
    records = read_all(out)
    cells = [
        (r.msg["parent_header"]["username"], r.msg["content"]["code"])
        for r in records
        if r.msg_type == "execute_input"
    ]
    assert cells == [("carol", "print(6 * 7)"), ("bob", "print('from', 'bob')")]
