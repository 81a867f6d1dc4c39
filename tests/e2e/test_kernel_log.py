"""The log of a kernel ipymirror starts is removed on exit when it is empty or
only says what every start says (ipykernel's TCP warning); kept otherwise."""

from __future__ import annotations

import re

ENTER = "\r"


def _own_kernel(terminal, ipymirror_argv, code: str) -> None:
    term = terminal(ipymirror_argv("--name", "host"))
    term.wait_for(re.compile(r"In \[\d+\]:"))
    term.send(code + ENTER)
    term.wait_for(re.compile(r"Out\[1\]: 'ran'"))
    term.ctrl("d")
    assert term.wait_exit(timeout=30) == 0


def test_harmless_kernel_log_is_removed_on_exit(terminal, ipymirror_argv, jupyter_dirs):
    _own_kernel(terminal, ipymirror_argv, "'ran'")
    assert not list(jupyter_dirs["runtime"].glob("*.log"))


def test_kernel_log_that_says_something_is_kept(terminal, ipymirror_argv, jupyter_dirs):
    _own_kernel(terminal, ipymirror_argv, "import os; os.write(2, b'disk on fire\\n'); 'ran'")
    logs = list(jupyter_dirs["runtime"].glob("*.log"))
    assert len(logs) == 1 and "disk on fire" in logs[0].read_text()
