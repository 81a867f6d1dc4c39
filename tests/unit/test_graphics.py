"""Detecting the image protocol: environment first, then one bounded query on a real pty."""

from __future__ import annotations

import os
import select
import sys
import time

import ptyprocess
import pytest

from ipymirror.terminal.graphics import QUERY, Graphics, detect, from_env, parse_replies


@pytest.mark.parametrize(
    "env,expected",
    [
        ({"TERM": "xterm-kitty"}, "kitty"),
        ({"TERM": "xterm-256color", "KITTY_WINDOW_ID": "1"}, "kitty"),
        ({"TERM": "xterm-ghostty"}, "kitty"),
        ({"TERM": "xterm-256color", "TERM_PROGRAM": "iTerm.app"}, "iterm"),
        ({"TERM": "xterm-256color", "LC_TERMINAL": "iTerm2"}, "iterm"),
        ({"TERM": "xterm-256color", "TERM_PROGRAM": "WezTerm"}, "iterm"),
        ({"TERM": "foot"}, "sixel"),
        ({"TERM": "mlterm"}, "sixel"),
        ({"TERM": "screen-256color"}, "blocks"),
        ({"TERM": "tmux-256color", "KITTY_WINDOW_ID": "1"}, "blocks"),  # tmux inside kitty
        ({"TERM": "xterm-256color", "TMUX": "/tmp/t,1,0", "TERM_PROGRAM": "tmux"}, "blocks"),
        ({"TERM": "xterm", "STY": "1.pts"}, "blocks"),
        ({"TERM": "dumb"}, "off"),
        ({}, "off"),
        ({"TERM": "xterm-256color"}, None),  # ask the terminal
    ],
)
def test_environment_decides_first(env, expected):
    assert from_env(env) == expected


def test_parse_replies():
    assert parse_replies(b"") == (None, None, b"")
    assert parse_replies(b"\x1b[6;20;10t") == (None, (10, 20), b"")
    assert parse_replies(b"\x1b[6;13;6t\x1b[?64;1;2;4;6c") == (True, (6, 13), b"")
    assert parse_replies(b"ab\x1b[?6cc") == (False, None, b"abc")


def test_not_a_terminal_draws_nothing(tmp_path):
    with open(tmp_path / "f", "w") as f:
        assert detect(stdin=f, stdout=f, env={"TERM": "xterm-kitty"}) == Graphics("off")
        assert detect("sixel", stdin=f, stdout=f).protocol == "sixel"  # asked for: obeyed


PROBE = (
    "import sys\n"
    "from ipymirror.terminal.graphics import detect\n"
    "from prompt_toolkit.input.typeahead import get_typeahead\n"
    "g = detect(env={'TERM': 'xterm-256color'})\n"
    "class Fd:\n"
    "    def typeahead_hash(self): return 'fd-0'\n"
    "keys = ''.join(k.data for k in get_typeahead(Fd()))\n"
    "print('RESULT', g.protocol, g.cell, repr(keys), flush=True)\n"
)


def run_probe(answer: bytes | None) -> str:
    env = dict(os.environ, TERM="xterm-256color")
    proc = ptyprocess.PtyProcess.spawn([sys.executable, "-c", PROBE], env=env, dimensions=(24, 80))
    try:
        seen = b""
        deadline = time.monotonic() + 20
        while b"RESULT" not in seen or not seen.endswith(b"\n"):
            left = deadline - time.monotonic()
            assert left > 0, seen
            if select.select([proc.fd], [], [], left)[0]:
                try:
                    chunk = os.read(proc.fd, 4096)
                except OSError:
                    break
                seen += chunk
                if QUERY.encode() in seen and answer is not None:
                    os.write(proc.fd, answer)
                    answer = None
        return seen.decode()
    finally:
        proc.close(force=True)


def test_one_query_answered_sixel_cell_size_and_typeahead_kept():
    out = run_probe(b"ls\x1b[6;13;6t\x1b[?64;4c")
    assert out.count(QUERY) == 1
    assert "RESULT sixel (6, 13) 'ls'" in out  # keys typed meanwhile reach the prompt


def test_no_sixel_gives_half_blocks():
    assert "RESULT blocks (10, 20) ''" in run_probe(b"\x1b[?62;22c")


def test_a_silent_terminal_costs_a_quarter_second_and_nothing_else():
    start = time.monotonic()
    out = run_probe(None)
    assert "RESULT blocks (10, 20) ''" in out
    assert time.monotonic() - start < 10
    assert "^[" not in out and "[?" not in out.replace(QUERY, "")
