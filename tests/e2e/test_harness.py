"""Self-tests of the end-to-end harness (tests/terminal.py, tests/conftest.py).

They run plain Python programs and real kernels, not ipymirror, and check
both that the harness sees what a person would and that it can fail.
"""

from __future__ import annotations

import json
import os
import re
import select
import sys
import time
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_core.paths import jupyter_runtime_dir
from terminal import ENTER, REPO_ROOT, Terminal


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_screen_shows_what_a_person_sees(terminal):
    code = (
        "import sys\n"
        "w = sys.stdout.write\n"
        "w('\\x1b[31mred\\x1b[0m plain\\n')\n"  # colour codes are not text
        "w('abc\\rX\\n')\n"  # carriage return, then overwrite
        "w('\\x1b[5;10Hat 5,10')\n"  # absolute cursor move (1-based)
        "w('\\x1b[6;1Hxxxxx\\x1b[3D\\x1b[K')\n"  # back 3 columns, erase to end of line
        "w('\\x1b[7;1H\\u00e9t\\u00e9 \\u65e5\\u672c')\n"  # UTF-8, wide characters
        "w('\\x1b[8;1Hend')\n"
    )
    term = terminal(py(code), cols=40, rows=10)
    assert term.wait_exit() == 0
    rows = term.display()
    assert len(rows) == 10
    assert rows[0] == "red plain"
    assert rows[1] == "Xbc"
    assert rows[4] == " " * 9 + "at 5,10"
    assert rows[5] == "xx"
    assert rows[6] == "été 日本"
    assert rows[7] == "end"
    # The raw bytes keep what the emulator interprets away; the pty turned "\n"
    # into "\r\n" on the way, as a real terminal's line discipline does.
    assert b"\x1b[31mred\x1b[0m plain\r\n" in term.raw
    assert term.screen.buffer[0][0].fg == "red"
    assert term.screen.buffer[0][4].fg == "default"


def test_cursor_line_and_cursor(terminal):
    term = terminal(py("import sys; sys.stdout.write('one\\ntwo\\nthr'); input()"))
    term.wait_for("thr")
    assert term.cursor_line() == "thr"
    assert term.cursor == (2, 3)


def test_wait_for_times_out_quickly_and_shows_the_screen(terminal):
    term = terminal(py("print('hello there'); input()"))
    term.wait_for("hello there")
    start = time.monotonic()
    with pytest.raises(AssertionError, match="timed out") as info:
        term.wait_for("never printed", timeout=0.5)
    assert time.monotonic() - start < 5
    assert "|hello there" in str(info.value)  # the screen is in the message
    with pytest.raises(AssertionError):
        term.wait_for(lambda t: False, timeout=0.2)


def test_wait_for_fails_fast_when_output_ends(terminal):
    term = terminal(py("print('bye')"))
    start = time.monotonic()
    with pytest.raises(AssertionError, match="output ended") as info:
        term.wait_for("never printed", timeout=60)
    assert time.monotonic() - start < 30
    assert "bye" in str(info.value)


def test_wait_for_regex_and_predicate(terminal):
    term = terminal(py("print('answer: 42'); input()"))
    assert "answer" in term.wait_for(re.compile(r"answer: \d+"))
    term.wait_for(lambda t: t.display()[0] == "answer: 42")


def test_scrollback_keeps_everything_in_order(terminal):
    term = terminal(py("for i in range(200): print(f'line {i:03}')"), cols=40, rows=10)
    term.wait_for("line 199")
    assert term.wait_exit() == 0
    lines = [line for line in term.text().split("\n") if line.startswith("line")]
    assert lines == [f"line {i:03}" for i in range(200)]
    assert len(term.display()) == 10
    assert "line 000" not in "\n".join(term.display())


def test_input_prompt_answered(terminal):
    term = terminal(py("name = input('name? '); print(f'hello {name}!')"))
    term.wait_for("name? ")
    term.send("bob" + ENTER)
    term.wait_for("hello bob!")
    assert term.wait_exit() == 0
    assert term.text().split("\n")[:2] == ["name? bob", "hello bob!"]


def test_ctrl_d_is_eof(terminal):
    # one write: unbuffered, print() writes "ready" and its newline apart, and "ab" could
    # be echoed between the two
    code = "import sys; sys.stdout.write('ready\\n'); data = sys.stdin.read(); print(len(data))"
    term = terminal(py(code))
    term.wait_for(lambda t: "ready" in t.text() and t.cursor_line() == "")  # on the next line
    term.send("ab")
    term.ctrl("d")  # flushes "ab" (no newline) ...
    term.ctrl("d")  # ... and a second one on an empty line is EOF
    assert term.wait_exit() == 0
    assert term.display()[:2] == ["ready", "ab2"]  # echoed "ab", no newline, then len 2


def test_resize_reaches_the_program(terminal):
    code = (
        "import os, signal\n"
        "signal.signal(signal.SIGWINCH, lambda *a: print('size', *os.get_terminal_size()))\n"
        "print('size', *os.get_terminal_size())\n"
        "input()\n"
    )
    term = terminal(py(code), cols=80, rows=24)
    term.wait_for("size 80 24")
    term.resize(20, 50)
    term.wait_for("size 50 20")
    assert len(term.display()) == 20


def test_close_kills_the_process_tree():
    # A child in its own session (as jupyter_client starts kernels) does not
    # get the pty's hangup; close() must still end it.
    code = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
        " start_new_session=True)\n"
        "print('child', p.pid, 'started', flush=True)\n"
        "p.wait()\n"
    )
    with Terminal(py(code)) as term:
        child = int(re.search(r"child (\d+) started", term.wait_for("started")).group(1))
    assert term.closed
    try:
        pidfd = os.pidfd_open(child)
    except ProcessLookupError:
        return  # already gone and reaped
    try:  # readable once the process has ended
        assert select.select([pidfd], [], [], 10)[0], "grandchild survived close()"
    finally:
        os.close(pidfd)


def test_jupyter_dirs_are_isolated(jupyter_dirs, tmp_path):
    assert Path(jupyter_runtime_dir()) == jupyter_dirs["runtime"]
    assert jupyter_dirs["runtime"].is_relative_to(tmp_path)
    assert Path(os.environ["IPYTHONDIR"]).is_relative_to(tmp_path)


def test_kernel_and_peer(kernel, peer, jupyter_dirs):
    connection_file = Path(kernel.connection_file)
    assert connection_file.parent == jupyter_dirs["runtime"]
    assert connection_file.name.startswith("kernel-")
    assert json.loads(connection_file.read_text())["ip"] == "127.0.0.1"

    alice = peer(kernel, username="alice")
    bob = peer(kernel, username="bob")
    assert alice.session_id != bob.session_id

    result = alice.run("print(6*7)")
    assert result["reply"]["content"]["status"] == "ok"
    streams = [m for m in result["iopub"] if m["msg_type"] == "stream"]
    assert streams and "42" in streams[0]["content"]["text"]
    assert alice.stream_text(result) == "42\n"
    # What another frontend sees of alice's cell: her username and session id.
    header = result["iopub"][-1]["parent_header"]
    assert (header["username"], header["session"]) == ("alice", alice.session_id)
    assert result["iopub"][-1]["content"]["execution_state"] == "idle"

    # Shared state: bob sees alice's variables.
    alice.run("x = 5")
    assert bob.stream_text(bob.run("print(x + 1)")) == "6\n"


def test_peer_run_reports_errors(kernel, peer):
    result = peer(kernel).run("1/0")
    assert result["reply"]["content"]["status"] == "error"
    assert any(m["msg_type"] == "error" for m in result["iopub"])


def test_bash_kernel(make_kernel, peer, jupyter_dirs):
    km = make_kernel("bash")
    spec_dir = Path(KernelSpecManager().get_kernel_spec("bash").resource_dir)
    assert spec_dir.is_relative_to(jupyter_dirs["data"])  # installed in isolation
    bash = peer(km, username="carol")
    result = bash.run("echo hi")
    assert result["reply"]["content"]["status"] == "ok"
    assert bash.stream_text(result).strip() == "hi"


def test_terminal_fixture_finds_the_uninstalled_package(terminal, ipymirror_argv, tmp_path):
    assert ipymirror_argv("--help") == [sys.executable, "-m", "ipymirror", "--help"]
    # From another cwd (CI runs in a fresh clone; ipymirror is not installed).
    term = terminal(py("import ipymirror; print(ipymirror.__file__)"), cwd=tmp_path, cols=200)
    assert term.wait_exit() == 0
    assert str(REPO_ROOT / "ipymirror" / "__init__.py") in term.text()
