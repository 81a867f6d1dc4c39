"""Hostile floods, small and resized terminals, no colour, a wrong key: the mirror holds.

Memory is bounded by construction (see docs/security.md: 16 MB waiting for the
terminal, 8 MB shown per stream message, bounded live lines); these tests
check the visible consequences on a real kernel in a real pty.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from test_console import ENTER, OUT, at_prompt, open_console, type_and_run
from tmux_terminal import TmuxTerminal


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


@pytest.fixture
def tmux_mirror(kernel, ipymirror_argv):
    """ipymirror --existing on ``kernel`` in tmux (native speed, for floods)."""
    from test_console import env_for

    term = TmuxTerminal(
        ipymirror_argv("--existing", kernel.connection_file, "--name", "me"), env=env_for()
    )
    term.wait_for(_at_prompt)
    yield term
    term.close()


def _at_prompt(term: TmuxTerminal, typed: str = "") -> bool:
    line = term.cursor_line()
    return re.match(r"In \[\d+\]: ?", line) is not None and line.endswith(typed)


def test_one_giant_message_is_elided_and_announced(kernel, peer, tmux_mirror):
    term = tmux_mirror
    term.send("half = 1")  # half-typed, must survive
    bob = peer(kernel, "bob")
    # one 50 MB stream message: ipykernel sends its whole buffer at once
    bob.run("import sys; sys.stdout.write(('y' * 99 + '\\n') * 500_000); sys.stdout.flush()")
    term.wait_for(lambda t: "of one message not shown" in t.text(), timeout=60)
    term.wait_for(lambda t: _at_prompt(t, "half = 1"))
    term.send(" + 1")
    term.enter()
    term.wait_for(lambda t: _at_prompt(t) and "half = 1 + 1" in t.text())
    term.send("half")
    term.enter()
    term.wait_for(lambda t: re.search(OUT + "2$", t.text(), re.M) is not None)
    # the transient peak aside, nothing of the 50 MB is kept
    assert _rss_mb(term.pid) < 150


# The kernel (two busy threads) can outpace the mirror's one under CPU starvation: then
# the mirror sheds whole lines, counted, rather than let ZMQ's queue grow (shedding.py).
def test_flood_of_tiny_messages_keeps_prompt_and_memory(kernel, peer, tmux_mirror):
    term = tmux_mirror
    bob = peer(kernel, "bob")
    bob.execute_nowait("for i in range(100_000): print(i, flush=True)")
    term.send("abc")
    term.wait_for(lambda t: "│ 99999" in t.display(), timeout=120)
    term.wait_for(lambda t: _at_prompt(t, "abc"))
    text = term.text()
    lines = [int(m) for m in re.findall(r"^│ (\d+)$", text, re.M)]
    # Every line, in order, none twice -- or the writer's notice says exactly how
    # many it could not show (nothing else may lose one: IOPub is lossless).
    dropped = sum(
        int(n.replace(",", ""))
        for n in re.findall(
            r"… ([\d,]+) lines not shown: (?:the terminal|this mirror) could not keep up", text
        )
    )
    peak = _rss_mb(term.pid, "VmHWM")
    print(f"flood: {len(lines):,} lines shown + {dropped:,} counted; peak RSS {peak:.1f} MB")
    assert len(lines) + dropped == 100_000
    assert lines == sorted(set(lines))
    assert peak < 120


def test_resize_while_a_peer_prints(kernel, peer, terminal, ipymirror_argv):
    term = open_console(terminal, ipymirror_argv, kernel, cols=100, rows=30)
    bob = peer(kernel, "bob")
    bob.execute_nowait(
        "import time\nfor i in range(40): print('tick', i, flush=True); time.sleep(0.02)"
    )
    term.send("keep = 7")
    for rows, cols in ((20, 60), (35, 120), (24, 40)):
        term.resize(rows, cols)
    term.wait_for("tick 39")
    term.wait_for(lambda t: at_prompt(t) and t.cursor_line().endswith("keep = 7"))
    term.send(ENTER)
    type_and_run(term, "keep", re.compile(OUT + "7"))


def test_twenty_columns(kernel, peer, terminal, ipymirror_argv):
    term = open_console(terminal, ipymirror_argv, kernel, cols=20, rows=12)
    bob = peer(kernel, "bob")
    bob.run("print('narrow ok')\nfrom IPython.display import Markdown\nMarkdown('**x**')")
    term.wait_for("│ narrow ok")
    type_and_run(term, "6 * 7", re.compile(OUT + "42"))


def test_no_color_means_no_peer_colours(kernel, peer, terminal, ipymirror_argv):
    from test_console import env_for

    env = env_for()
    env["NO_COLOR"] = "1"
    argv = ipymirror_argv("--existing", kernel.connection_file, "--name", "me")
    term = terminal(argv, env=env)
    term.wait_for(at_prompt)
    bob = peer(kernel, "bob")
    bob.run("print('\\x1b[32mgreen\\x1b[0m plain')\nimport sys; print('err', file=sys.stderr)\n1/0")
    term.wait_for("ZeroDivisionError")
    raw = bytes(term.raw)
    assert b"green plain" in raw  # the text, without the peer's colour
    assert b"\x1b[32mgreen" not in raw
    colour = re.compile(rb"\x1b\[[0-9;]*?(?<![0-9])(3[0-7]|9[0-7]|38)[;m]")
    assert not colour.search(raw)  # no stderr red, no peer colours, no highlighting
    assert "┆ err" in term.text()  # stderr still distinct, by its gutter


def test_wrong_key_is_one_clear_line(kernel, tmp_path):
    with open(kernel.connection_file) as f:
        info = json.load(f)
    info["key"] = "not-the-key"
    bad = tmp_path / "kernel-wrong-key.json"
    bad.write_text(json.dumps(info))
    proc = subprocess.run(
        [sys.executable, "-m", "ipymirror", "watch", "--existing", str(bad), "--timeout", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "signature check" in lines[0] and str(bad) in lines[0]
    assert "Traceback" not in proc.stderr
