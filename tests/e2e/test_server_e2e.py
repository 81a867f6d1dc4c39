"""End-to-end: ipymirror on a kernel behind a real Jupyter Server, in a real pty.

The server (``jupyter_server`` on 127.0.0.1, a token, ``base_url=/user/alice/``)
runs a notebook session created through REST, as JupyterLab does when a notebook
opens; ``lab-bob`` is a websocket client that behaves like JupyterLab (v1
framing).  ipymirror joins by the notebook's URL, the way a person pastes it
from the browser, with the token from ``JUPYTER_TOKEN`` or ``?token=``.
"""

from __future__ import annotations

import os
import re

import pytest
from server_helpers import LabPeer, start_jupyter_server
from terminal import ENTER, REPO_ROOT, default_env

PROMPT = re.compile(r"In \[\d+\]:")
NOTEBOOK = "work/analysis.ipynb"


@pytest.fixture
def server(tmp_path, jupyter_dirs):
    srv = start_jupyter_server(tmp_path / "root")
    yield srv
    srv.stop()


@pytest.fixture
def notebook(server):
    """A notebook session (its kernel running), and lab-bob on its websocket."""
    session = server.new_notebook_session(NOTEBOOK)
    bob = LabPeer(server, session["kernel"]["id"], "lab-bob")
    yield session, bob
    bob.close()


def env(**extra: str | None) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return default_env(PYTHONPATH=path, **extra)


def at_rest(term) -> bool:
    """At an empty prompt, and nobody's cell shown as running."""
    status = next((row for row in term.display() if "│ you:" in row), "")
    return re.fullmatch(r"In \[\d+\]:", term.cursor_line()) is not None and "▶" not in status


def join(terminal, ipymirror_argv, url: str, token: str, *args: str, name: str = "me"):
    term = terminal(
        ipymirror_argv("--existing", url, "--name", name, *args),
        env=env(JUPYTER_TOKEN=token),
        cols=200,
    )
    term.wait_for(PROMPT, timeout=30)
    return term


def test_notebook_url_joins_and_both_sides_see_each_other(
    server, notebook, terminal, ipymirror_argv
):
    session, bob = notebook
    url = f"{server.url}lab/tree/{NOTEBOOK}"
    term = join(terminal, ipymirror_argv, url, server.token)
    term.wait_for(
        f"joined the python kernel (ipython) of {server.url}api/kernels/"
        f"{session['kernel']['id']} (the kernel of notebook {NOTEBOOK}) as me·"
    )
    assert server.token not in term.text()
    # the notebook's cells appear, labelled with its user
    bob.run("print('from the notebook', 6 * 7)")
    term.wait_for(
        re.compile(
            r"┌ lab-bob·\w{4}  In \[1\]\n│ print\('from the notebook', 6 \* 7\)\n"
            r"│ from the notebook 42"
        )
    )
    # the server's nudges (kernel_info on lab-bob's and our sessions) are nobody's cells
    assert "username" not in term.text()
    # our cell reaches lab-bob's socket, with its output
    term.send("print('from the terminal', 2 + 3)" + ENTER)
    term.wait_for("from the terminal 5")
    sent = bob.wait_iopub(
        lambda m: m["msg_type"] == "execute_input" and "from the terminal" in m["content"]["code"]
    )
    assert sent["parent_header"]["username"] == "me"
    bob.wait_iopub(
        lambda m: m["msg_type"] == "stream" and m["content"]["text"] == "from the terminal 5\n"
    )


@pytest.mark.timeout(300)
def test_restart_crash_and_shutdown_are_told(server, notebook, terminal, ipymirror_argv):
    session, bob = notebook
    kid = session["kernel"]["id"]
    url = f"{server.url}api/kernels/{kid}?token={server.token}"
    term = join(terminal, ipymirror_argv, url, "", name="me")
    assert server.token not in term.text()
    server.api("POST", f"api/kernels/{kid}/restart")  # JupyterLab's "Restart Kernel"
    term.wait_for(re.compile(r"kernel restarted by \S+ \(a new kernel"), timeout=90)
    bob.execute_nowait("import os; os._exit(1)")  # a crash: the server restarts it
    term.wait_for("the kernel died; the server restarted it", timeout=90)
    term.send("40 + 2" + ENTER)
    term.wait_for(re.compile(r"Out\[1\]: 42"), timeout=90)  # a fresh kernel counts from 1
    server.api("DELETE", f"api/sessions/{session['id']}")  # the notebook's kernel shut down
    term.wait_for("asked the kernel to shut down")
    term.wait_for("the kernel shut down (asked by", timeout=90)
    assert term.text().count("kernel restarted by") == 1  # the crash's restart told once


def test_flood_past_the_rate_limit_gives_one_notice(server, notebook, ipymirror_argv):
    """20,000 messages under the server's default limits, drawn by tmux (pyte is too slow)."""
    from tmux_terminal import TmuxTerminal

    _, bob = notebook
    term = TmuxTerminal(
        ipymirror_argv("--existing", server.url, "--name", "me"),  # the root
        cols=200,
        env=env(JUPYTER_TOKEN=server.token),
    )
    try:
        term.wait_for(
            lambda t: (
                "(the only kernel on the server (python3, notebook work/analysis.ipynb))"
                in t.text()
                and PROMPT.search(t.cursor_line())
            )
        )
        flood = "import sys\nfor i in range(20000):\n    print(i)\n    sys.stdout.flush()"
        bob.run(flood, timeout=110)
        bob.run("print('flood', 'done')")  # an idle resets the server's limiter: this one shows
        term.wait_for(lambda t: "flood done" in t.text(), timeout=60)
        text = term.text()
    finally:
        term.close()
    notice = "the server dropped output: rate limit; raise ServerApp.iopub_msg_rate_limit"
    assert text.count(notice) == 1, text[-2000:]
    assert "IOPub message rate exceeded" not in text  # never shown as the peer's stderr


def test_dropped_connection_reconnects_with_the_same_session(
    server, notebook, terminal, ipymirror_argv
):
    from server_helpers import TcpProxy

    session, bob = notebook
    kid = session["kernel"]["id"]
    proxy = TcpProxy(server.port)
    try:
        url = f"http://127.0.0.1:{proxy.port}{server.base_url}api/kernels/{kid}"
        term = join(terminal, ipymirror_argv, url, server.token)
        term.send("mine = 1" + ENTER)
        first = bob.wait_iopub(
            lambda m: m["msg_type"] == "execute_input" and m["content"]["code"] == "mine = 1"
        )
        term.wait_for(lambda t: at_rest(t))
        # lab-bob's cell runs when the network goes down, and ends while it is down
        nap = bob.execute_nowait("import time; time.sleep(1); print('bob', 'woke')")
        term.wait_for("▶ lab-bob")
        proxy.open.clear()
        assert proxy.drop() > 0
        term.wait_for("the connection to the server dropped; reconnecting (same session)")
        bob.wait_iopub(
            lambda m: (
                m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"
                and m["parent_header"]["msg_id"] == nap
            )
        )
        proxy.open.set()
        term.wait_for(
            re.compile(
                r"reconnected after \d+\.\d s; output broadcast meanwhile may "
                r"be missing"
            ),
            timeout=30,
        )
        bob.run("print('after', 'the drop')")
        try:
            term.wait_for("after the drop")
        except AssertionError as exc:  # seen once under two parallel CI runs: the server's side
            raise AssertionError(f"{exc}\nserver log:\n{''.join(server.log[-30:])}") from None
        # bob's idle went with the connection: the resync ends his cell, and that is
        # no new kernel (the resync's idle tells no kernel session)
        term.wait_for(at_rest)
        assert "kernel restarted" not in term.text()
        term.send("mine + 1" + ENTER)
        term.wait_for(re.compile(r"Out\[\d+\]: 2"))
        again = bob.wait_iopub(
            lambda m: m["msg_type"] == "execute_input" and m["content"]["code"] == "mine + 1"
        )
        assert again["parent_header"]["session"] == first["parent_header"]["session"]
    finally:
        proxy.close()


def test_input_and_interrupt_through_the_server(server, notebook, terminal, ipymirror_argv):
    _, bob = notebook
    term = join(terminal, ipymirror_argv, f"{server.url}tree/{NOTEBOOK}", server.token)
    term.send("name = input('who? ')" + ENTER)
    term.wait_for(lambda t: t.cursor_line().startswith("who?"))  # the kernel asks (stdin)
    # The next cell typed at once, while the first one ends: keys typed between
    # the input's prompt and the next one wait for it, never met by a cooked tty
    # (which echoed them and made the Enter a newline: the cell did not run).
    term.send("zoe" + ENTER)
    term.send("name.title()" + ENTER)
    term.wait_for("Out[2]: 'Zoe'")
    term.send("import time; time.sleep(60)" + ENTER)
    term.wait_for("▶ you")
    bob.wait_iopub(
        lambda m: m["msg_type"] == "execute_input" and "sleep(60)" in m["content"]["code"]
    )
    term.ctrl("c")  # REST api/kernels/ID/interrupt
    term.wait_for("KeyboardInterrupt", timeout=20)
    bob.wait_iopub(
        lambda m: m["msg_type"] == "error" and m["content"]["ename"] == "KeyboardInterrupt"
    )
