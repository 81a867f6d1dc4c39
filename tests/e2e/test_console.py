"""End-to-end: ``ipymirror`` (the console) on a real kernel, in a real pty.

Each test starts a kernel (``make_kernel``/``kernel``), peers with their own
sessions (``peer``) and ``python -m ipymirror`` on a 100x30 pseudo-terminal read
back by pyte, then asserts on what a person sees.  Waiting is always
``Terminal.wait_for`` (wakes on output), never a fixed sleep.

The terminal answers cursor position reports (pyte does, like a real terminal),
except where a test says otherwise: prompt_toolkit only draws its bottom
toolbar -- our status line -- when it knows how many rows are below the cursor.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from pathlib import Path

import pytest
from jupyter_client import BlockingKernelClient
from jupyter_client.session import new_id
from terminal import (
    ENTER,
    REPO_ROOT,
    Terminal,
    _descendants,
    _wait_pids,
    at_empty_prompt,
    default_env,
)

PROMPT = re.compile(r"^In \[(\d+)\]:( |$)")  # rows are right-stripped
OUT = r"Out\[\d+\]: "


# ------------------------------------------------------------------ helpers


def env_for(cpr: bool = True) -> dict[str, str]:
    """The terminal's environment: the repo importable; CPR answered unless ``cpr=False``."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return default_env(PYTHONPATH=path, PROMPT_TOOLKIT_NO_CPR=None if cpr else "1")


def at_prompt(term: Terminal) -> bool:
    return PROMPT.match(term.cursor_line()) is not None


def open_console(terminal, ipymirror_argv, km, *, name: str = "me", cpr: bool = True, **kw):
    """``ipymirror --existing <km's file> --name <name>``, waited for until it prompts."""
    argv = ipymirror_argv("--existing", km.connection_file, "--name", name)
    term = terminal(argv, env=env_for(cpr), **kw)
    term.wait_for(at_prompt)
    return term


def tag(session_id: str) -> str:
    """The short session tag a peer is labelled with (first 4 hex chars)."""
    return session_id.replace("-", "")[:4]


def lines_of(term: Terminal) -> list[str]:
    return term.text().split("\n")


def type_and_run(term: Terminal, code: str, expect: str | re.Pattern[str]) -> str:
    """Type ``code`` + Enter at an empty prompt and wait for ``expect`` to show.

    (Keys typed while your own cell runs would go to the next prompt as
    type-ahead; waiting for it keeps each test's input on its own prompt.)
    """
    term.wait_for(at_empty_prompt)
    term.send(code + ENTER)
    return term.wait_for(expect)


def settle(term: Terminal, who) -> None:
    """Have peer ``who`` run one more cell and wait for it: everything before it
    is then final (committed, no longer live)."""
    who.run("print('settled-' + 'marker')")
    term.wait_for("│ settled-marker")
    term.wait_for(at_prompt)


def png_1x1() -> bytes:
    """A valid 1x1 RGBA PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\x00\xff\x00\x00\xff")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def sgr_before(raw: bytes, text: bytes) -> list[bytes]:
    """The SGR sequences written immediately before ``text`` (each occurrence, joined)."""
    found = re.findall(rb"((?:\x1b\[[0-9;:]*m)*)" + re.escape(text), raw)
    assert found, f"{text!r} never written; raw tail {bytes(raw[-400:])!r}"
    return found


# ------------------------------------------------------------------- tests


def test_peer_cell_and_result_appear_labelled(kernel, peer, terminal, ipymirror_argv):
    alice = peer(kernel, "alice")
    term = open_console(terminal, ipymirror_argv, kernel)
    alice.run("x = 6*7\nx")
    term.wait_for(re.compile(OUT + "42"))
    t = tag(alice.session_id)
    lines = lines_of(term)
    header = [i for i, line in enumerate(lines) if re.search(rf"alice·{t}\s+In \[\d+\]", line)]
    assert len(header) == 1, term.text()
    h = header[0]
    assert lines[h].startswith("┌ ")
    assert lines[h + 1] == "│ x = 6*7"
    assert lines[h + 2] == "│ x"
    assert re.fullmatch(r"│ " + OUT + "42", lines[h + 3]), lines[h + 3]

    def status_lists_alice(term: Terminal) -> bool:
        bottom = term.display()[-1]
        return "● idle" in bottom and re.search(rf"peers: .*alice·{t}", bottom) is not None

    # The status line is the bottom row, and stays there after peer output.
    term.wait_for(status_lists_alice, timeout=5)
    assert at_prompt(term)


def test_status_line_without_cursor_position_reports(kernel, peer, terminal, ipymirror_argv):
    """A terminal that does not answer CPR (PROMPT_TOOLKIT_NO_CPR=1, the harness
    default) must still show the status line, next to the prompt: on the row
    just above it or below it (prompt_toolkit hides its bottom toolbar then)."""
    alice = peer(kernel, "alice")
    term = open_console(terminal, ipymirror_argv, kernel, cpr=False)
    alice.run("x = 1")
    t = tag(alice.session_id)
    status = re.compile(rf"● idle .*peers: .*alice·{t}")

    def status_shown(term: Terminal) -> bool:
        rows, y = term.display(), term.cursor[0]
        near = [rows[y - 1], *rows[y + 1 :]] if y else rows[1:]
        return at_prompt(term) and any(status.search(row) for row in near)

    term.wait_for(status_shown, timeout=5)
    # It is kept up to date, and never left behind in the transcript.
    type_and_run(term, "1+1", re.compile("^" + OUT + "2$", re.M))
    term.wait_for(at_empty_prompt)
    term.wait_for(status_shown, timeout=5)
    assert sum(1 for line in lines_of(term) if status.search(line)) == 1, term.text()


def test_peer_stdout_stderr_display_image_error(kernel, peer, terminal, ipymirror_argv):
    bob = peer(kernel, "bob")
    # 40 rows: the colour check below reads the screen, so all of the cell must fit.
    term = open_console(terminal, ipymirror_argv, kernel, rows=40)
    code = (
        "import sys\n"
        "from IPython.display import display, Markdown, Image\n"
        "print('to-' + 'stdout', flush=True)\n"
        "print('to-' + 'stderr', file=sys.stderr, flush=True)\n"
        "display(Markdown('**bold** text'))\n"
        f"display(Image(data={png_1x1()!r}, format='png'))\n"
        "1/0\n"
    )
    bob.run(code)
    text = term.wait_for("ZeroDivisionError: division by zero")
    lines = text.split("\n")

    def index(pattern: str) -> int:
        found = [i for i, line in enumerate(lines) if re.fullmatch(pattern, line)]
        assert len(found) == 1, (pattern, text)
        return found[0]

    order = [
        index(r"│ to-stdout"),
        index(r"[│┆] to-stderr"),
        index(r"│ bold text"),  # Markdown rendered: the ** are gone
        index(r"│ ▀"),  # the 1x1 image in half-blocks: pyte answers no sixel, no kitty
        index(r"│ ZeroDivisionError\s+Traceback \(most recent call last\)"),
        index(r"│ ZeroDivisionError: division by zero"),
    ]
    assert order == sorted(order), order
    assert index(r"┌ bob·[0-9a-f]{4}  In \[\d+\]") < order[0]
    # stderr is red, stdout is not: on the wire and on the emulated screen.
    raw = bytes(term.raw)
    assert all(b"\x1b[31m" in seq for seq in sgr_before(raw, b"to-stderr"))
    assert not any(b"\x1b[31m" in seq for seq in sgr_before(raw, b"to-stdout"))
    rows = term.display()
    for word, colour in (("to-stderr", "red"), ("to-stdout", "default")):
        y = next(i for i, row in enumerate(rows) if word in row)
        x = rows[y].index(word)
        assert term.screen.buffer[y][x].fg == colour, (word, term.screen.buffer[y][x])


def test_half_typed_line_survives_peer_output(kernel, peer, terminal, ipymirror_argv):
    alice = peer(kernel, "alice")
    term = open_console(terminal, ipymirror_argv, kernel)
    term.send("abc = 12")
    typed = re.compile(r"^In \[\d+\]: abc = 12$")
    term.wait_for(lambda t: typed.match(t.cursor_line()))
    alice.run("for i in range(50):\n    print(f'peer line {i:02}')")

    def settled(t: Terminal) -> bool:
        """The last frame is drawn whole: the peer's last line above, the prompt
        with the typed text and the cursor at its end (pyte may be mid-frame)."""
        y, x = t.cursor
        rows = t.display()
        last = [i for i, r in enumerate(rows) if r == "│ peer line 49"]
        return bool(last) and last[-1] < y and bool(typed.match(rows[y])) and x == len(rows[y])

    term.wait_for(settled)
    rows = term.display()
    y, _ = term.cursor
    peer_rows = [i for i, row in enumerate(rows) if "peer line" in row]
    assert peer_rows and max(peer_rows) < y, rows
    assert sum(1 for row in rows if PROMPT.match(row)) == 1, rows
    # Every peer line made it, once, in order.
    got = [line for line in lines_of(term) if re.fullmatch(r"│ peer line \d\d", line)]
    assert got == [f"│ peer line {i:02}" for i in range(50)]
    # And the half-typed line is still live input.
    term.send(" + 1" + ENTER)
    term.wait_for(lambda t: at_empty_prompt(t) and "abc = 12 + 1" in t.text())
    type_and_run(term, "abc", re.compile(OUT + "13"))


def test_half_typed_multiline_input_survives_peer_output(kernel, peer, terminal, ipymirror_argv):
    alice = peer(kernel, "alice")
    term = open_console(terminal, ipymirror_argv, kernel)
    term.send("def f():" + ENTER)
    cont = re.compile(r"^ *\.\.\.: *$")
    term.wait_for(lambda t: cont.match(t.cursor_line()))  # the kernel said: incomplete
    y0 = term.cursor[0]
    term.send("return 5")
    body = re.compile(r"^ *\.\.\.:     return 5$")
    first = re.compile(r"^In \[\d+\]: def f\(\):$")
    term.wait_for(lambda t: body.match(t.cursor_line()))
    assert first.match(term.display()[y0 - 1])
    alice.run("for i in range(40):\n    print(f'peer line {i:02}')")

    def intact(t: Terminal) -> bool:
        rows, y = t.display(), t.cursor[0]
        return (
            "│ peer line 39" in t.text()
            and body.match(rows[y]) is not None
            and first.match(rows[y - 1]) is not None
        )

    term.wait_for(intact)
    rows = term.display()
    y = term.cursor[0]
    peer_rows = [i for i, row in enumerate(rows) if "peer line" in row]
    assert peer_rows and max(peer_rows) < y - 1, rows
    # Finish the definition (an empty line ends the block) and use it.
    term.send(ENTER)

    def third_line(t: Terminal) -> bool:
        rows, y = t.display(), t.cursor[0]
        return bool(cont.match(rows[y]) and body.match(rows[y - 1]) and first.match(rows[y - 2]))

    term.wait_for(third_line)
    term.send(ENTER)
    term.wait_for(at_empty_prompt)
    type_and_run(term, "f()", re.compile(OUT + "5$", re.M))


def test_own_execution_looks_like_ipython(kernel, peer, terminal, ipymirror_argv):
    alice = peer(kernel, "alice")
    term = open_console(terminal, ipymirror_argv, kernel)
    alice.run("print('from alice')")
    term.wait_for("│ from alice")
    type_and_run(term, 'print("mine")', re.compile(r"^mine$", re.M))
    type_and_run(term, "1+1", re.compile(r"^" + OUT + "2$", re.M))
    lines = lines_of(term)
    assert [line for line in lines if "mine" in line and "print" not in line] == ["mine"]
    assert not any(line.startswith("┌ me·") for line in lines), term.text()
    out = [line for line in lines if re.search(OUT + "2$", line)]
    assert len(out) == 1 and not out[0].startswith("│"), out
    assert any(re.fullmatch(r'In \[\d+\]: print\("mine"\)', line) for line in lines)


def test_carriage_return_progress_collapses(kernel, peer, terminal, ipymirror_argv):
    alice = peer(kernel, "alice")
    term = open_console(terminal, ipymirror_argv, kernel)
    code = "for i in range(1000):\n    print(f'\\r{i}', end='', flush=True)\nprint(' end')"
    alice.run(code)
    term.wait_for("│ 999 end")
    settle(term, alice)
    lines = lines_of(term)
    assert lines.count("│ 999 end") == 1
    numbers = [line for line in lines if re.fullmatch(r"│ ?\d+( end)?", line)]
    assert numbers == ["│ 999 end"], numbers[:20]
    h = next(i for i, line in enumerate(lines) if line.startswith("┌ alice"))
    cell = []
    for line in lines[h + 1 :]:
        if not line.startswith("│"):
            break
        cell.append(line)
    assert len(cell) <= 5, cell  # 3 lines of code, 1 of output


def test_clear_output_wait_collapses(kernel, peer, terminal, ipymirror_argv):
    alice = peer(kernel, "alice")
    term = open_console(terminal, ipymirror_argv, kernel)
    code = (
        "from IPython.display import clear_output\n"
        "for i in range(200):\n"
        "    clear_output(wait=True)\n"
        "    print(f'step {i}')"
    )
    alice.run(code)
    term.wait_for("│ step 199")
    settle(term, alice)
    assert "│ step 199" in term.display()
    assert "│ step 3" not in term.display()
    steps = [line for line in lines_of(term) if re.fullmatch(r"│ step \d+", line)]
    assert steps == ["│ step 199"], steps[:20]


def test_update_display_data_updates_in_place(kernel, peer, terminal, ipymirror_argv):
    alice = peer(kernel, "alice")
    term = open_console(terminal, ipymirror_argv, kernel)
    code = (
        "from IPython.display import display\n"
        "h = display(f'value {0}', display_id='d1')\n"
        "for i in range(1, 101):\n"
        "    h.update(f'value {i}')"
    )
    alice.run(code)
    term.wait_for("'value 100'")
    settle(term, alice)
    text = term.text()
    assert text.count("'value 100'") == 1, text
    values = re.findall(r"'value \d+'", text)
    assert values == ["'value 100'"], values[:20]


def test_hostile_peer_output_is_neutralised(kernel, peer, terminal, ipymirror_argv):
    alice = peer(kernel, "alice")
    term = open_console(terminal, ipymirror_argv, kernel)
    # Payloads are assembled at run time so the echoed code cannot contain them.
    code = (
        "E = chr(27); B = chr(7)\n"
        "print(E + ']52;c;' + 'SGVs' + 'bG8=' + B"
        " + E + ']0;' + 'pw' + 'ned' + B"
        " + E + ']8;;http://evil.' + 'example/' + B + 'link' + E + ']8;;' + B"
        " + E + '[2A' + E + '[2J' + E + '[?1049h'"
        " + E + 'P' + 'q' + 'dcs-' + 'payload' + E + chr(92)"
        " + E + '[32m' + 'green' + E + '[0m' + ' tail')\n"
    )
    alice.run(code)
    term.wait_for(lambda t: "green tail" in t.text() and at_prompt(t))
    raw = bytes(term.raw)
    for bad in (
        b"\x1b]",
        b"\x1b[2J",
        b"\x1b[?1049h",
        b"\x1bP",
        b"SGVsbG8=",
        b"pwned",
        b"evil.example",
        b"dcs-payload",
    ):
        assert bad not in raw, bad
    assert b"\x1b[32mgreen" in raw
    rows = term.display()
    y = next(i for i, row in enumerate(rows) if "green tail" in row)
    x = rows[y].index("green")
    assert term.screen.buffer[y][x].fg == "green"
    assert rows[y] == "│ linkgreen tail", rows[y]
    assert "» joined" in term.text()  # nothing above was erased


def test_hostile_peer_code_and_name_are_neutralised(kernel, peer, terminal, ipymirror_argv):
    """The code a peer runs and the name it gives are untrusted text too."""
    eve = peer(kernel, "eve\x1b]0;pwned\x07")
    term = open_console(terminal, ipymirror_argv, kernel)
    eve.run("x = 1  # \x1b]52;c;SGVsbG8=\x07\x1b[2J\x1b[?1049h comment\nx")
    term.wait_for(re.compile(r"^│ " + OUT + "1$", re.M))
    term.wait_for(at_prompt)
    raw = bytes(term.raw)
    for bad in (b"\x1b]", b"\x1b[2J", b"\x1b[?1049h", b"SGVsbG8=", b"pwned"):
        assert bad not in raw, bad
    t = tag(eve.session_id)
    assert re.search(rf"^┌ eve·{t}  In \[\d+\]\n│ x = 1  #  comment\n│ x$", term.text(), re.M)


def test_input_in_own_code(kernel, terminal, ipymirror_argv):
    term = open_console(terminal, ipymirror_argv, kernel)
    term.send('name = input("who? ")' + ENTER)
    term.wait_for(lambda t: t.cursor_line() == "who?")
    term.send("zed" + ENTER)
    term.wait_for(lambda t: at_prompt(t) and "who? zed" in t.text())
    type_and_run(term, "name", re.compile(OUT + "'zed'"))


def test_typed_while_own_cell_runs_waits_for_the_next_prompt(kernel, terminal, ipymirror_argv):
    term = open_console(terminal, ipymirror_argv, kernel)
    term.send("import time; print('wait' + 'ing', flush=True); time.sleep(1.5)" + ENTER)
    term.wait_for("waiting")
    term.send("40 + 2")  # typed while the cell still runs
    term.wait_for(lambda t: at_prompt(t) and t.cursor_line().endswith("40 + 2"))
    term.send(ENTER)
    term.wait_for(re.compile(OUT + "42"))


def interrupt_a_sleep(term: Terminal) -> None:
    """Run a long sleep at the prompt, wait until it runs, press Ctrl-C, see it stop.

    The cell prints first: ipykernel ignores SIGINT for a moment after it
    broadcasts execute_input, so "it runs" means its code has started.
    """
    term.send("import time; print('sleep' + 'ing', flush=True); time.sleep(30)" + ENTER)
    running = re.compile(r"● busy .*▶ you \[\d+\] import time")

    def sleeping(t: Terminal) -> bool:
        rows = t.display()
        return "sleeping" in rows and any(running.search(row) for row in rows)

    term.wait_for(sleeping)
    term.ctrl("c")
    term.wait_for(re.compile(r"^KeyboardInterrupt", re.M), timeout=10)
    type_and_run(term, "1+1", re.compile("^" + OUT + "2$", re.M))
    term.wait_for(at_empty_prompt)


def test_ctrl_c_interrupts_own_cell(kernel, terminal, ipymirror_argv):
    """On a joined kernel: interrupt_request on the control channel."""
    term = open_console(terminal, ipymirror_argv, kernel)
    interrupt_a_sleep(term)


def test_ctrl_c_interrupts_own_cell_on_started_kernel(terminal, ipymirror_argv):
    """When ipymirror started the kernel it interrupts through the kernel manager."""
    term = terminal(ipymirror_argv("--name", "host"), env=env_for())
    term.wait_for(at_prompt, timeout=30)
    interrupt_a_sleep(term)
    term.ctrl("d")
    assert term.wait_exit(timeout=20) == 0


def test_tab_completion(kernel, terminal, ipymirror_argv):
    term = open_console(terminal, ipymirror_argv, kernel)
    term.send("import collections" + ENTER)
    term.wait_for(lambda t: at_empty_prompt(t) and "import collections" in t.text())
    term.send("collections.Ordered")
    term.wait_for(lambda t: t.cursor_line().endswith("collections.Ordered"))
    term.send("\t")
    term.wait_for(lambda t: re.match(r"^In \[\d+\]: collections\.OrderedDict", t.cursor_line()))


def _client(connection_file: str, username: str) -> BlockingKernelClient:
    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    client.session.session = new_id()
    client.session.username = username
    client.start_channels()
    client.wait_for_ready(timeout=30)
    return client


def _run(client: BlockingKernelClient, code: str) -> str:
    """Execute on ``client``; its stdout."""
    out: list[str] = []

    def hook(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    client.execute_interactive(code, timeout=30, output_hook=hook)
    return "".join(out)


def test_started_kernel_lifecycle(jupyter_dirs, terminal, ipymirror_argv):
    runtime: Path = jupyter_dirs["runtime"]
    # Wide, so the join command (long tmp path) is not wrapped.
    term = terminal(ipymirror_argv("--name", "host"), cols=400, env=env_for())
    text = term.wait_for(re.compile(r"ipymirror --existing (\S+)"), timeout=30)
    path = Path(re.search(r"ipymirror --existing (\S+)", text).group(1))
    assert path.parent == runtime and re.fullmatch(r"kernel-.*\.json", path.name), path
    assert path.is_file()
    term.wait_for(at_prompt)
    kernels = [
        pid
        for pid in _descendants(term.pid)
        if str(path) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    ]
    assert kernels, "no kernel process below ipymirror"
    bob = _client(str(path), "bob")
    try:
        assert _run(bob, "print('hi from ' + 'bob')") == "hi from bob\n"
        term.wait_for(re.compile(r"┌ bob·[0-9a-f]{4}"))
        term.wait_for("│ hi from bob")
        term.wait_for(at_empty_prompt)
        term.ctrl("d")
        # bob is present: shutting the kernel down for him too is asked first.
        term.wait_for(
            re.compile(r"Shut down the kernel for everyone\? bob·[0-9a-f]{4} would lose it")
        )
        term.send("y" + ENTER)
        assert term.wait_exit(timeout=20) == 0
        assert _wait_pids(kernels, 10), "the kernel ipymirror started is still running"
        assert not path.exists(), "connection file of a shut-down kernel left behind"
    finally:
        bob.stop_channels()


def test_joined_kernel_left_running(kernel, peer, terminal, ipymirror_argv):
    alice = peer(kernel, "alice")
    term = open_console(terminal, ipymirror_argv, kernel)
    term.ctrl("d")
    assert term.wait_exit() == 0
    assert kernel.is_alive()
    assert alice.stream_text(alice.run("print('still ' + 'here')")) == "still here\n"


@pytest.mark.timeout(120)
def test_bash_kernel(make_kernel, peer, terminal, ipymirror_argv):
    km = make_kernel("bash")
    alice = peer(km, "alice")
    term = open_console(terminal, ipymirror_argv, km)
    assert "» joined the bash kernel" in term.text()
    alice.run("echo hello-from-bash")
    t = tag(alice.session_id)
    term.wait_for(re.compile(rf"┌ alice·{t}.*\n│ echo hello-from-bash\n│ hello-from-bash$", re.M))
    type_and_run(term, "echo mine", re.compile(r"^mine$", re.M))
