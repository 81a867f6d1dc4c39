"""Kernel lifecycle seen from a live mirror: restart, death, return.

Each change is announced in one line, the prompt stays usable, and your own
cell does not hang when the kernel under it dies.
"""

from __future__ import annotations

import re
import signal

ENTER = "\r"


def _mirror(terminal, ipymirror_argv, km, name="me"):
    term = terminal(ipymirror_argv("--existing", km.connection_file, "--name", name))
    term.wait_for(re.compile(r"In \[\d+\]:"))
    return term


def test_restart_is_announced_and_mirroring_resumes(kernel, peer, terminal, ipymirror_argv):
    bob = peer(kernel, "bob")
    bob.run("x = 1")
    term = _mirror(terminal, ipymirror_argv, kernel)
    kernel.restart_kernel(now=False)
    term.wait_for("kernel restarted by")
    bob2 = peer(kernel, "bob")  # a fresh client after the restart, as a notebook would
    bob2.run("print('after restart', 40 + 2)")
    term.wait_for("after restart 42")
    # execution counts start again from 1 for everyone
    term.send("3 * 3" + ENTER)
    term.wait_for(re.compile(r"Out\[2\]: 9"))
    assert term.text().count("kernel restarted by") == 1


def test_killed_kernel_is_announced_and_own_cell_does_not_hang(kernel, terminal, ipymirror_argv):
    term = _mirror(terminal, ipymirror_argv, kernel)
    term.send("import time; time.sleep(60)" + ENTER)
    term.wait_for(re.compile(r"▶ you"))
    kernel.signal_kernel(signal.SIGKILL)
    term.wait_for("the kernel stopped answering", timeout=20)
    term.wait_for("the kernel died while your cell was running")
    term.wait_for(lambda t: re.search(r"In \[\d+\]:", t.cursor_line()) is not None)
    # Enter on a dead kernel keeps what you typed
    term.send("y = 5" + ENTER)
    term.wait_for("nothing sent, your input is kept")
    term.wait_for(lambda t: "In [" in t.cursor_line() and "y = 5" in t.cursor_line())
    # the kernel comes back on the same ports: mirroring and running resume
    kernel.restart_kernel(now=True)  # kills nothing (it is dead); same ports
    term.wait_for("the kernel is answering again", timeout=20)
    term.send(ENTER)  # now it is sent
    term.wait_for(lambda t: re.fullmatch(r"In \[\d+\]:", t.cursor_line().strip()) is not None)
    term.send("y * 2" + ENTER)
    term.wait_for(re.compile(r"Out\[\d+\]: 10"))


def test_owned_kernel_that_dies_is_restarted(terminal, ipymirror_argv, jupyter_dirs):
    term = terminal(ipymirror_argv("--name", "host"))
    term.wait_for(re.compile(r"In \[\d+\]:"))
    term.send("import os; os.getpid()" + ENTER)
    text = term.wait_for(re.compile(r"Out\[1\]: (\d+)"))
    pid = int(re.search(r"Out\[1\]: (\d+)", text).group(1))
    term.send("os._exit(1)" + ENTER)
    term.wait_for("the kernel died; restarting it", timeout=20)
    term.wait_for("the kernel is answering again", timeout=30)
    term.send("import os; os.getpid()" + ENTER)
    pids = re.compile(r"Out\[(\d+)\]: (\d+)")
    text = term.wait_for(lambda t: len(pids.findall(t.text())) == 2)
    (count, new_pid) = pids.findall(text)[-1]
    assert int(new_pid) != pid
    assert count == "1"  # a new kernel counts from 1 again
    restarts = re.findall(r"kernel restarted by (\S+)", text)
    assert len(restarts) == 1 and restarts[0].startswith("host"), restarts  # one notice, ours
    term.ctrl("d")
    assert term.wait_exit(timeout=20) == 0
