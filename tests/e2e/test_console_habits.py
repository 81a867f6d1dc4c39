"""End to end: the console as jupyter console / IPython users use it, on a real
ipykernel in a real pty (pyte), one test per habit.  See docs/guide.md,
"Coming from jupyter console": every row of that table is checked here or in
tests/test_console_prompt.py / tests/test_console_config.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path

import pytest
from terminal import ENTER, _descendants, _wait_pids
from test_console import (
    _client,
    _run,
    at_empty_prompt,
    at_prompt,
    env_for,
    open_console,
    settle,
    tag,
    type_and_run,
)

from ipymirror.errors import ExitStatus

UP = "\x1b[A"


def test_help_page_shows_the_signature(kernel, terminal, ipymirror_argv):
    term = open_console(terminal, ipymirror_argv, kernel)
    type_and_run(term, "len?", "Signature: len(obj, /)")
    term.wait_for(at_empty_prompt)
    rows = term.display()
    i = next(i for i, r in enumerate(rows) if r.startswith("Signature: len(obj, /)"))
    assert rows[i + 1].startswith("Docstring: Return the number of items in a container.")
    assert re.match(r"In \[\d+\]: len\?$", rows[i - 1])


def test_long_page_opens_the_pager_and_q_leaves(kernel, terminal, ipymirror_argv):
    term = open_console(terminal, ipymirror_argv, kernel)
    type_and_run(term, "%magic", re.compile(r"lines 1-29 of \d+ +q leaves"))
    term.send(" ")  # a page down
    term.wait_for(re.compile(r"lines 30-58 of \d+"))
    start = len(term.raw)
    term.send("q")
    term.wait_for(at_empty_prompt)
    assert b"\x1b[?1049l" in bytes(term.raw[start:])  # off the alternate screen: as it was
    type_and_run(term, "1 + 1", re.compile(r"Out\[\d+\]: 2"))


def test_load_puts_the_file_in_the_next_prompt(kernel, terminal, ipymirror_argv, tmp_path):
    snippet = tmp_path / "snip.py"
    snippet.write_text("loaded = 6 * 7\nprint('loaded', loaded)\n")
    term = open_console(terminal, ipymirror_argv, kernel)
    term.send(f"%load {snippet}" + ENTER)
    term.wait_for(lambda t: "print('loaded', loaded)" in t.cursor_line() or any(
        r.endswith("print('loaded', loaded)") for r in t.display()))  # fmt: skip
    rows = term.display()
    first = next(i for i, r in enumerate(rows) if re.match(rf"In \[\d+\]: # %load {snippet}$", r))
    assert rows[first + 1].endswith("...: loaded = 6 * 7")
    assert rows[first + 2].endswith("...: print('loaded', loaded)")
    term.send(ENTER)  # ready to run as it is
    term.wait_for("loaded 42")


def test_up_is_a_prefix_search(kernel, terminal, ipymirror_argv):
    term = open_console(terminal, ipymirror_argv, kernel)
    for code in ("second = 2", "other = 0", "sequel = 3", "more = 1"):
        type_and_run(term, code, re.compile(rf"In \[\d+\]: {code}\n"))
    term.wait_for(at_empty_prompt)
    term.send("sec" + UP)
    term.wait_for(lambda t: re.match(r"In \[\d+\]: second = 2$", t.cursor_line()))


def test_history_persists_across_runs(kernel, terminal, ipymirror_argv, jupyter_dirs):
    term = open_console(terminal, ipymirror_argv, kernel)
    type_and_run(term, "persisted_marker = 17", re.compile(r"persisted_marker = 17\n"))
    term.wait_for(at_empty_prompt)
    term.ctrl("d")
    assert term.wait_exit() == 0
    files = list((jupyter_dirs["data"] / "ipymirror").iterdir())
    assert [f.name for f in files] == ["history-ipython3"], files
    again = open_console(terminal, ipymirror_argv, kernel)
    again.send("persisted" + UP)
    again.wait_for(lambda t: re.match(r"In \[\d+\]: persisted_marker = 17$", t.cursor_line()))
    again.send(ENTER)
    again.wait_for(lambda t: at_empty_prompt(t) and t.text().count("persisted_marker = 17") >= 1)


def test_suggestion_from_history_and_right_accepts(kernel, terminal, ipymirror_argv):
    term = open_console(terminal, ipymirror_argv, kernel)
    type_and_run(term, "suggested_value = 99", re.compile(r"suggested_value = 99\n"))
    term.wait_for(at_empty_prompt)
    term.send("sugg")
    term.wait_for(lambda t: t.cursor_line().endswith("suggested_value = 99"))
    assert term.cursor[1] == len(term.cursor_line()) - len(
        "ested_value = 99"
    )  # grey, after the cursor
    term.send("\x1b[C" + ENTER)  # Right accepts it all
    term.wait_for(lambda t: at_empty_prompt(t) and t.text().count("suggested_value = 99") == 2)


def test_config_file_and_class_trait_both_take_effect(
    kernel, peer, terminal, ipymirror_argv, jupyter_dirs
):
    (jupyter_dirs["config"] / "jupyter_mirror_config.py").write_text(
        "c.Mirror.name = 'fromconfig'\nc.MirrorConsole.banner = True\n"
    )
    term = terminal(ipymirror_argv("--existing", kernel.connection_file), env=env_for())
    term.wait_for(re.compile(r"you: fromconfig·[0-9a-f]{4}"))  # the status line
    term.wait_for("IPython")  # the whole banner: Python's line, then IPython's
    argv = ipymirror_argv("--existing", kernel.connection_file, "--Mirror.name=fromtrait")
    other = terminal(argv, env=env_for())
    other.wait_for(re.compile(r"you: fromtrait·[0-9a-f]{4}"))
    other.wait_for(at_prompt)


def test_banner_is_one_line_by_default(kernel, terminal, ipymirror_argv):
    term = open_console(terminal, ipymirror_argv, kernel)
    rows = [r for r in term.display() if r]
    assert rows[0].startswith("Python 3"), rows
    assert "IPython" not in rows[0] and rows[1].startswith("» joined"), rows


def test_simple_prompt_under_a_pipe(kernel, peer, ipymirror_argv):
    alice = peer(kernel, "alice")
    argv = ipymirror_argv("--existing", kernel.connection_file, "--name", "piped")
    seen = bytearray()
    got = threading.Condition()

    def wait_for(text: bytes) -> None:
        with got:
            assert got.wait_for(lambda: text in seen, timeout=30), bytes(seen)

    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for()
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        stdout = proc.stdout

        def reader() -> None:
            for chunk in iter(lambda: stdout.read1(4096), b""):
                with got:
                    seen.extend(chunk)
                    got.notify_all()

        threading.Thread(target=reader, daemon=True).start()
        try:
            wait_for(b"In [1]: ")
            proc.stdin.write(b"print(6 * 7)\n")
            proc.stdin.flush()
            wait_for(b"42\n")
            alice.run("print('from ' + 'alice')")
            wait_for(b"from alice")  # peers' output still shown
            proc.stdin.write(b"for i in range(2):\n    print('row', i)\n\n")
            proc.stdin.flush()
            wait_for(b"row 1\n")
            proc.stdin.close()  # EOF leaves; a joined kernel keeps running
            assert proc.wait(timeout=30) == 0
            assert b"Traceback" not in proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert b"\x1b" not in seen, bytes(seen)  # no escape sequence at all
    assert re.search(rb"alice\xc2\xb7[0-9a-f]{4}", seen)
    assert kernel.is_alive()


def test_exit_leaves_a_joined_kernel_alive(kernel, peer, terminal, ipymirror_argv):
    alice = peer(kernel, "alice")
    alice.run("precious = 41")
    term = open_console(terminal, ipymirror_argv, kernel)
    for word in ("exit()", "quit"):
        term.wait_for(at_empty_prompt)
        term.send(word + ENTER)
        assert term.wait_exit() == 0
        assert "the kernel keeps running" in term.text()
        assert kernel.is_alive()
        assert alice.stream_text(alice.run("print(precious + 1)")) == "42\n"
        term = open_console(terminal, ipymirror_argv, kernel)


@pytest.mark.timeout(120)
def test_ctrl_d_asks_and_the_default_keeps_the_kernel(jupyter_dirs, terminal, ipymirror_argv):
    term = terminal(ipymirror_argv("--name", "host"), cols=400, env=env_for())
    text = term.wait_for(re.compile(r"ipymirror --existing (\S+)"), timeout=30)
    path = Path(re.search(r"ipymirror --existing (\S+)", text).group(1))
    term.wait_for(at_prompt)
    kernels = [
        pid
        for pid in _descendants(term.pid)
        if str(path) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    ]
    bob = _client(str(path), "bob")
    try:
        assert _run(bob, "kept = 'yes'") == ""
        term.wait_for(re.compile(r"┌ bob·[0-9a-f]{4}"))
        term.wait_for(at_empty_prompt)
        term.ctrl("d")
        t = tag(bob.session.session)
        term.wait_for(f"Shut down the kernel for everyone? bob·{t} would lose it [y/N]")
        term.send(ENTER)  # the default: keep it
        term.wait_for(
            f"the kernel keeps running for the others; rejoin with: ipymirror --existing {path}"
        )
        assert term.wait_exit(timeout=20) == 0
        assert _run(bob, "print(kept)") == "yes\n"  # bob lost nothing
        assert path.exists()
    finally:
        bob.shutdown()  # the kernel outlived its starter: stop it now
        bob.stop_channels()
        assert _wait_pids(kernels, 20), "the kernel did not stop after shutdown_request"


def test_no_confirm_exit_shuts_down_without_asking(jupyter_dirs, terminal, ipymirror_argv):
    term = terminal(ipymirror_argv("--name", "host", "--no-confirm-exit"), cols=400, env=env_for())
    text = term.wait_for(re.compile(r"ipymirror --existing (\S+)"), timeout=30)
    path = Path(re.search(r"ipymirror --existing (\S+)", text).group(1))
    term.wait_for(at_prompt)
    bob = _client(str(path), "bob")
    try:
        _run(bob, "x = 1")
        term.wait_for(re.compile(r"┌ bob·[0-9a-f]{4}"))
        term.wait_for(at_empty_prompt)
        term.ctrl("d")
        assert term.wait_exit(timeout=20) == 0
        assert "Shut down the kernel" not in term.text()
        assert not path.exists()
    finally:
        bob.stop_channels()


def test_vi_mode_option(kernel, terminal, ipymirror_argv):
    argv = ipymirror_argv("--existing", kernel.connection_file, "--vi")
    term = terminal(argv, env=env_for())
    term.wait_for(at_prompt)
    term.send("abc = 5")
    term.wait_for(lambda t: t.cursor_line().endswith("abc = 5"))
    term.send("\x1b")  # navigation mode
    term.send("0xxxixyz")  # to the start, delete "abc", insert "xyz"
    term.wait_for(lambda t: t.cursor_line().endswith("xyz = 5"))
    term.send(ENTER)
    type_and_run(term, "xyz", re.compile(r"Out\[\d+\]: 5"))


def test_first_tab_completes(kernel, terminal, ipymirror_argv):
    """The very first Tab after start completes, even if the kernel takes seconds
    (its completer loads jedi on first use)."""
    term = open_console(terminal, ipymirror_argv, kernel)
    term.send("import collections" + ENTER)
    term.wait_for(lambda t: at_empty_prompt(t) and "import collections" in t.text())
    term.send("collections.ChainM\t")
    term.wait_for(lambda t: t.cursor_line().endswith("collections.ChainMap"), timeout=60)


def test_completion_menu_shows_types(kernel, terminal, ipymirror_argv):
    term = open_console(terminal, ipymirror_argv, kernel)
    term.send("import collections" + ENTER)
    term.wait_for(lambda t: at_empty_prompt(t) and "import collections" in t.text())
    term.send("collections.Ord\t")  # OrderedDict only: completed
    term.wait_for(lambda t: t.cursor_line().endswith("collections.OrderedDict"), timeout=60)
    term.send("\x15" + "collections.defaultdict().\t")  # many: the menu, with types
    term.wait_for(re.compile(r"(clear|copy) .*(function|method)"), timeout=60)


def test_your_code_is_highlighted_as_you_type(kernel, terminal, ipymirror_argv):
    term = open_console(terminal, ipymirror_argv, kernel)
    start = len(term.raw)
    term.send("import os")
    keyword = re.compile(rb"\x1b\[[0-9;]*3[0-7]m(\x1b\[[0-9;]*m)*import")  # a colour, then it
    term.wait_for(lambda t: keyword.search(bytes(t.raw[start:])) is not None)
    term.send(" (")  # and brackets match: the cursor's and its partner get a style
    term.send("\x1b[D")
    term.wait_for(lambda t: t.cursor_line().endswith("import os ("))


@pytest.mark.parametrize("flag", ["--simple-prompt"])
def test_simple_prompt_on_a_terminal_writes_no_escapes(kernel, terminal, ipymirror_argv, flag):
    argv = ipymirror_argv("--existing", kernel.connection_file, flag)
    term = terminal(argv, env=env_for())
    term.wait_for("In [1]: ")
    start = len(term.raw)
    term.send("print(3 * 3)" + ENTER)
    term.wait_for("9\nIn [2]:")
    assert b"\x1b" not in bytes(term.raw[start:])


def test_dumb_terminal_gets_the_simple_prompt(kernel, terminal, ipymirror_argv):
    env = env_for()
    env["TERM"] = "dumb"
    term = terminal(ipymirror_argv("--existing", kernel.connection_file), env=env)
    term.wait_for("In [1]: ")
    term.send("print(2 + 2)" + ENTER)
    term.wait_for("4\nIn [2]:")
    assert b"\x1b[" not in bytes(term.raw)


def test_edit_magic_opens_the_editor_then_fills_the_prompt(
    kernel, terminal, ipymirror_argv, tmp_path
):
    editor = tmp_path / "editor.sh"
    editor.write_text(
        '#!/bin/sh\nfor f; do :; done\nprintf "edited = 5\\nprint(edited * 2)\\n" > "$f"\n'
    )
    editor.chmod(0o755)
    target = tmp_path / "target.py"
    target.write_text("")
    env = env_for()
    env.update(EDITOR=str(editor), VISUAL="")
    term = terminal(ipymirror_argv("--existing", kernel.connection_file), env=env)
    term.wait_for(at_prompt)
    term.send(f"%edit {target}" + ENTER)
    term.wait_for(lambda t: any(r.endswith("...: print(edited * 2)") for r in t.display()))
    term.send(ENTER)
    term.wait_for("10\n")
    assert target.read_text().startswith("edited = 5")


def test_edit_magic_without_an_editor_says_so(kernel, terminal, ipymirror_argv, tmp_path):
    env = env_for()
    env.pop("EDITOR", None)
    env.pop("VISUAL", None)
    term = terminal(ipymirror_argv("--existing", kernel.connection_file), env=env)
    term.wait_for(at_prompt)
    target = tmp_path / "t.py"
    term.send(f"%edit {target}" + ENTER)
    term.wait_for(re.compile(r"%edit needs \$EDITOR here \(not supported without\)"))


def test_a_peers_help_page_is_not_shown_to_you(kernel, peer, terminal, ipymirror_argv):
    alice = peer(kernel, "alice")
    term = open_console(terminal, ipymirror_argv, kernel)
    alice.run("len?")
    settle(term, alice)
    assert "Signature" not in term.text()


def test_dash_f_joins_like_existing(kernel, terminal, ipymirror_argv):
    term = terminal(ipymirror_argv("-f", kernel.connection_file, "--name", "eff"), env=env_for())
    term.wait_for(re.compile(r"you: eff·[0-9a-f]{4}"))
    type_and_run(term, "40 + 2", re.compile(r"Out\[\d+\]: 42"))


def test_log_level_reports_the_config_files(jupyter_dirs, tmp_path):
    from test_cli_errors import run_cli

    (jupyter_dirs["config"] / "jupyter_mirror_config.py").write_text("c.Mirror.timeout = 1.0\n")
    proc = run_cli("--log-level", "INFO", "--existing", str(tmp_path / "missing.json"))
    assert re.search(
        r"\[ipymirror\] INFO loaded config file .*jupyter_mirror_config\.py", proc.stderr
    )
    quiet = run_cli("--existing", str(tmp_path / "missing.json"))
    assert "loaded config file" not in quiet.stderr


def test_pager_option_runs_the_command(kernel, terminal, ipymirror_argv, tmp_path):
    paged = tmp_path / "paged.txt"
    argv = ipymirror_argv("--existing", kernel.connection_file, "--pager", f"tee {paged}")
    term = terminal(argv, env=env_for())
    term.wait_for(at_prompt)
    term.send("%magic" + ENTER)
    term.wait_for(lambda t: at_empty_prompt(t) and paged.exists() and paged.stat().st_size > 0)
    assert "IPython's 'magic' functions" in paged.read_text()


def test_ip_is_where_a_started_kernel_listens(jupyter_dirs, terminal, ipymirror_argv):
    from test_cli_errors import one_error_line, run_cli

    # jupyter_client starts kernels on local interfaces only: it says so, naming the address.
    msg = one_error_line(run_cli("--ip", "127.0.0.2"), ExitStatus.KERNELSPEC)
    assert "127.0.0.2" in msg
    term = terminal(ipymirror_argv("--ip", "127.0.0.1", "--name", "host"), cols=400, env=env_for())
    text = term.wait_for(re.compile(r"ipymirror --existing (\S+)"), timeout=30)
    path = Path(re.search(r"ipymirror --existing (\S+)", text).group(1))
    assert json.loads(path.read_text())["ip"] == "127.0.0.1"
    type_and_run(term, "6 * 7", re.compile(r"Out\[\d+\]: 42"))
    term.ctrl("d")
    assert term.wait_exit(timeout=20) == 0


def test_ssh_and_sshkey_reach_the_tunnel(kernel, monkeypatch):
    """--ssh/--sshkey go to jupyter_client's tunnel_to_kernel, as jupyter console's do
    (no ssh server here: the tunnel itself is jupyter_client's, and stubbed)."""
    import jupyter_client

    from ipymirror.transports.zmq import KernelLink

    calls = []

    def tunnel(info, server, sshkey=None):
        calls.append((info["shell_port"], server, sshkey))
        return (1, 2, 3, 4, 5)

    monkeypatch.setattr(jupyter_client, "tunnel_to_kernel", tunnel)
    link = KernelLink.join(kernel.connection_file, "me", ssh="gw.example", sshkey="/k/id")
    assert calls == [(kernel.shell_port, "gw.example", "/k/id")]
    assert (link.client.ip, link.client.shell_port) == ("127.0.0.1", 1)


def test_ctrl_c_interrupts_under_the_simple_prompt(kernel, terminal, ipymirror_argv):
    argv = ipymirror_argv("--existing", kernel.connection_file, "--simple-prompt")
    term = terminal(argv, env=env_for())
    term.wait_for("In [1]: ")
    term.send("import time; print('sleep' + 'ing'); time.sleep(60)" + ENTER)
    term.wait_for("\nsleeping")  # the cell runs
    term.ctrl("c")
    term.wait_for("KeyboardInterrupt", timeout=30)
    term.wait_for(re.compile(r"KeyboardInterrupt(.|\n)*In \[2\]:$"))
