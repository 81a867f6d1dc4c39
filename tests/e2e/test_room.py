"""End-to-end: the room's lifecycle and presence on real kernels, real peer
clients and real ptys (issue 9).  Each test fails without its fix:

* restarts ipymirror is not told about (``restart_kernel(now=True)``, IRkernel's
  silent restarts) are one notice, end the old kernel's cells, and the next
  cell shows whole;
* ``watch`` (piped too) and ``record`` end by themselves when the kernel is gone
  for good, survive an ordinary restart, and a forged shutdown broadcast that a
  live heartbeat contradicts ends neither;
* the peer list shows people, not ipymirror's own tools or kernel_info-only
  sessions; an empty username is ``anonymous`` everywhere.
"""

from __future__ import annotations

import re
import signal
import time

from recording_support import RecorderProcess, read_all, wait_for_records
from terminal import Terminal

ENTER = "\r"

FORGE_SHUTDOWN = (
    "k = get_ipython().kernel\n"
    "k.session.send(k.iopub_socket, 'shutdown_reply', {'status': 'ok', 'restart': False},"
    " parent=k.get_parent())\n"
    "import time; time.sleep(5)\n"  # longer than the heartbeat takes to call a kernel dead
    "print('still here')"
)


def tag(session_id: str) -> str:
    return session_id.replace("-", "")[:4]


def status_row(term: Terminal) -> str:
    return next((row for row in term.display() if row.endswith("(q quits)")), "")


def open_watch(terminal, ipymirror_argv, km) -> Terminal:
    term = terminal(ipymirror_argv("watch", "--existing", km.connection_file))
    term.wait_for(status_row)
    return term


def piped_watch(km) -> RecorderProcess:
    return RecorderProcess("watch", "--existing", km.connection_file)


def warm_up(proc: RecorderProcess, client, text: str = "warm-up", timeout: float = 20) -> None:
    """Run ``print(text)`` until the piped process shows it (it is on the kernel)."""
    deadline = time.monotonic() + timeout
    client.run(f"print({text!r})")
    while text not in proc.stdout:
        assert time.monotonic() < deadline, proc.stdout
        client.run(f"print({text!r})")


def test_unannounced_restart_is_one_notice_and_the_next_cell_shows_whole(
    kernel, peer, terminal, ipymirror_argv
):
    bob = peer(kernel, "bob")
    term = open_watch(terminal, ipymirror_argv, kernel)
    bob.execute_nowait("print('working', flush=True)\nimport time; time.sleep(60)")
    term.wait_for(lambda t: "▶ bob·" in status_row(t))
    term.wait_for("│ working")  # shown before the kill (busy comes first; the kill can beat it)
    kernel.restart_kernel(now=True)  # a kill and a new kernel: no shutdown_reply at all
    term.wait_for("kernel restarted by unknown", timeout=30)
    # the old kernel's cell is over; the new kernel is idle, not busy or starting
    term.wait_for(lambda t: status_row(t).startswith("● idle") and "▶" not in status_row(t))
    bob2 = peer(kernel, "bob")
    bob2.run("print('after', 6 * 7)")
    t = tag(bob2.session_id)
    text = term.wait_for(
        re.compile(rf"^┌ bob·{t}  In \[1\]\n│ print\('after', 6 \* 7\)\n│ after 42$", re.M)
    )
    assert text.count("kernel restarted") == 1
    assert "│ working" in text


def test_watch_and_record_survive_a_forged_shutdown_and_end_on_a_real_one(kernel, peer, tmp_path):
    alice = peer(kernel, "alice")
    watch = piped_watch(kernel)
    rec = RecorderProcess.record(tmp_path / "s.ipym", kernel)
    try:
        warm_up(watch, alice)
        alice.run(FORGE_SHUTDOWN, timeout=60)  # the kernel "says" it shuts down
        watch.wait_for("still here")
        wait_for_records(
            tmp_path / "s.ipym",
            lambda rs: any(r.msg_type == "stream" and "still" in str(r.msg) for r in rs),
        )
        assert watch.proc.poll() is None and rec.proc.poll() is None
        assert "asked the kernel to shut down" in watch.stdout
        alice.client.shutdown()  # a real one: the heartbeat stops
        assert watch.proc.wait(30) == 0
        assert rec.proc.wait(30) == 0
        watch.stop()
        rec.stop()
        assert re.search(r"» the kernel shut down \(asked by alice·\w{4}\)\n$", watch.stdout)
        assert "the kernel shut down: recorded" in rec.stdout
        assert watch.stderr == "" and rec.stderr == ""
    finally:
        watch.close()
        rec.close()


def test_record_survives_a_restart_and_ends_when_the_kernel_is_gone_for_good(
    kernel, peer, tmp_path
):
    out = tmp_path / "gone.ipym"
    rec = RecorderProcess.record(out, kernel)
    try:
        kernel.restart_kernel(now=True)  # ordinary restart: the recording goes on
        alice = peer(kernel, "alice")
        after = alice.run("print('after restart')")["reply"]["parent_header"]["msg_id"]
        wait_for_records(out, lambda rs: any(r.parent_id == after for r in rs))
        assert rec.proc.poll() is None
        started = time.monotonic()
        kernel.signal_kernel(signal.SIGKILL)  # gone, and nobody restarts it
        assert rec.proc.wait(60) == 0
        assert time.monotonic() - started > 5  # a bounded wait, longer than a restart
        rec.stop()
        assert "the kernel is gone: recorded" in rec.stdout
        assert rec.stderr == ""
        assert any(r.msg_type == "stream" for r in read_all(out))
    finally:
        rec.close()


def test_irkernel_restart_and_shutdown_are_noticed_and_r_results_survive(make_kernel, peer):
    km = make_kernel("ir")
    bob = peer(km, "bob")
    watch = piped_watch(km)
    try:
        warm_up(watch, bob, timeout=40)
        bob.run("40 + 2")
        watch.wait_for("│ [1] 42")  # text/plain, as R prints it (its Markdown is "42")
        km.restart_kernel(now=False)  # IRkernel broadcasts nothing about it
        bob2 = peer(km, "bob")
        bob2.run("1 + 1")
        watch.wait_for("│ [1] 2", timeout=30)
        assert "kernel restarted by unknown" in watch.stdout
        assert watch.stdout.count("kernel restarted") == 1
        km.shutdown_kernel(now=False)
        assert watch.proc.wait(60) == 0  # nothing broadcast: the heartbeat tells
        watch.stop()
        assert "» the kernel is gone" in watch.stdout
        assert watch.stderr == ""
    finally:
        watch.close()


def test_peer_list_shows_people_not_tools_with_one_name_each(
    kernel, peer, terminal, ipymirror_argv, tmp_path
):
    watch = piped_watch(kernel)
    rec = RecorderProcess.record(tmp_path / "p.ipym", kernel)
    try:
        nudge = peer(kernel, "server")  # kernel_info only, as a server's nudge
        term = terminal(ipymirror_argv("--existing", kernel.connection_file, "--name", "me"))
        term.wait_for(re.compile(r"In \[\d+\]:"))
        nameless = peer(kernel, "")
        warm_up(watch, nameless)
        t = tag(nameless.session_id)
        text = term.wait_for(re.compile(rf"^┌ anonymous·{t}  In \[\d+\]$", re.M))
        assert "·" + tag(nudge.session_id) not in text

        def status(tm: Terminal) -> str:
            return next((row for row in tm.display() if row.startswith("● ")), "")

        term.wait_for(lambda tm: f"idle │ peers: anonymous·{t}" in status(tm))
        row = status(term).strip()
        assert re.fullmatch(rf"● idle │ peers: anonymous·{t} │ you: me·\w{{4}}", row), row
        term.send("1 + 1" + ENTER)
        term.wait_for(re.compile(r"Out\[\d+\]: 2"))
        assert "server·" not in term.text() and "recorder" not in term.text()
    finally:
        watch.close()
        rec.close()


def test_status_line_on_a_narrow_terminal_stays_one_line(kernel, peer, terminal, ipymirror_argv):
    term = terminal(ipymirror_argv("watch", "--existing", kernel.connection_file), cols=34)
    term.wait_for(status_row)
    for name in ("a-very-long-user-name-indeed", "another-long-name-for-a-peer"):
        peer(kernel, name).run("import time; time.sleep(0.1)")
    term.wait_for(lambda t: "peer" in status_row(t) or "+" in status_row(t))
    rows = [row for row in term.display() if row.strip()]
    assert rows[-1].endswith("(q quits)") and len(rows[-1]) <= 34
    assert rows[-1].startswith("● idle")
    term.resize(30, 26)
    term.wait_for(lambda t: status_row(t).startswith("● idle") and len(status_row(t)) <= 26)
    term.send("q")
    assert term.wait_exit() == 0


def _in_subshell(client, code: str) -> None:
    """Run ``code`` as ``client`` in a subshell of its own (ipykernel 7, JEP 91): it
    runs while another client's cell runs, so its output arrives meanwhile."""
    client.control_channel.send(client.session.msg("create_subshell_request", {}))
    reply = client.control_channel.get_msg(timeout=10)
    msg = client.session.msg(
        "execute_request",
        {"code": code, "silent": False, "store_history": True, "user_expressions": {}},
    )
    msg["header"]["subshell_id"] = reply["content"]["subshell_id"]
    client.shell_channel.send(msg)


def test_peer_output_during_my_cell_is_under_its_header_and_mine_under_my_prompt(
    kernel, peer, terminal, ipymirror_argv
):
    term = terminal(ipymirror_argv("--existing", kernel.connection_file, "--name", "me"), rows=60)
    term.wait_for(re.compile(r"In \[\d+\]:"))
    bob = peer(kernel, "bob")
    t = tag(bob.session_id)
    term.send("import time; [print('mine', i, flush=True) or time.sleep(0.3) for i in range(6)]")
    term.send(ENTER)
    term.wait_for("mine 0")
    _in_subshell(
        bob.client,
        "import time\nfor i in range(4):\n    print('bob', i, flush=True); time.sleep(0.3)",
    )
    term.wait_for(lambda tm: "bob 3" in tm.text() and "mine 5" in tm.text(), timeout=20)
    term.wait_for(re.compile(r"Out\[\d+\]:"), timeout=20)
    text = term.text()
    speaker = None
    for line in text.split("\n"):
        if line.startswith("┌ bob·"):
            speaker = "bob"
        elif re.match(r"In \[\d+\]", line):
            speaker = "me"
        elif re.fullmatch(r"│ bob \d", line.rstrip()):
            assert speaker == "bob", text
        elif re.fullmatch(r"mine \d", line.rstrip()):
            assert speaker == "me", text
        else:
            assert "bob " not in line or "print(" in line, text  # no bob line without gutter
    assert f"┌ bob·{t}" in text and re.search(r"^In \[\d+\] …$", text, re.M)


def test_progress_on_stderr_is_neutral_and_wide_peer_lines_keep_their_gutter(
    kernel, peer, terminal, ipymirror_argv
):
    bob = peer(kernel, "bob")
    watch = piped_watch(kernel)  # piped: no colour, so stderr is told by its gutter ┆
    term = terminal(ipymirror_argv("watch", "--existing", kernel.connection_file), cols=40)
    term.wait_for(status_row)
    try:
        warm_up(watch, bob)
        bob.run(
            "import sys, time\n"
            "for i in range(0, 101, 25):\n"
            "    sys.stderr.write(f'\\r{i:3d}%|' + '#' * (i // 10)); sys.stderr.flush()\n"
            "    time.sleep(0.05)\n"
            "sys.stderr.write('\\n'); sys.stderr.write('a real warning\\n')\n"
            "print('x' * 100)"
        )
        watch.wait_for("x" * 20)
        # stdout and stderr are flushed apart (the cell's end flushes both): wait for both,
        # by the gutter (the bare words are in the cell's code, shown first)
        watch.wait_for("┆ a real warning")
        term.wait_for("xxxxx\n", timeout=20)
        assert "│ 100%|##########\n" in watch.stdout  # the bar, neutral
        assert "┆ a real warning\n" in watch.stdout  # real stderr, marked
        rows = [row for row in term.display() if "x" * 10 in row]
        assert [len(r) for r in rows] == [40, 40, 26], rows
        assert all(row.startswith("│ ") for row in rows), rows
    finally:
        watch.close()
