"""``share`` around the room (issue 9): a relay restart never shows a traceback
on a viewer's terminal, the viewer reconnects by itself and its keys work all
the time; the relay's ticket file says it holds the relay's secret, and a
viewer's ticket file (``--viewer-ticket-file``) holds none."""

from __future__ import annotations

import re

import pytest
from test_share import env, relay, status_row  # noqa: F401 (relay: a fixture)

from ipymirror.transports.share.ticket import RELAY_PREFIX, read_ticket_file


@pytest.mark.parametrize("key", ["q", "c-c"])
def test_relay_restarts_show_no_traceback_and_keys_always_work(
    kernel,
    peer,
    relay,  # noqa: F811 (the fixture imported above)
    terminal,
    ipymirror_argv,
    key,
):
    first = relay(kernel, name="class.ticket")
    term = terminal(ipymirror_argv("watch", "--ticket-file", str(first.ticket_file)), env=env())
    term.wait_for(status_row)
    alice = peer(kernel, "alice")
    alice.run("print('before')")
    term.wait_for("│ before")
    assert first.stop() == 0
    term.wait_for("lost the relay; reconnecting…", timeout=15)
    second = relay(kernel, name="class.ticket", bind=None)  # same ticket file: same ports
    term.wait_for("reconnected to the relay", timeout=15)
    alice.run("print('after')")
    term.wait_for("│ after")
    assert second.stop() == 0
    term.wait_for(lambda t: t.text().count("lost the relay") == 2, timeout=15)
    if key == "q":  # while no relay answers
        term.send("q")
    else:
        term.ctrl("c")
    assert term.wait_exit() == 0
    assert "Traceback" not in term.text() and "Error" not in term.text()


def test_ticket_file_says_it_holds_the_secret_and_the_viewer_file_has_none(
    kernel,
    relay,  # noqa: F811
    tmp_path,
):
    viewer_file = tmp_path / "viewers.ticket"
    rp = relay(kernel, "--viewer-ticket-file", str(viewer_file), name="relay.ticket")
    try:
        said = "\n".join(rp.out.snapshot())
        assert re.search(
            r"ticket file: .*relay\.ticket .*relay's secret key: keep it private", said
        )
        assert f"viewer ticket file: {viewer_file}" in said
        text = viewer_file.read_text()
        assert RELAY_PREFIX not in text and "secret" not in text.split("\n", 1)[0]
        assert RELAY_PREFIX in (tmp_path / "relay.ticket").read_text()
        assert read_ticket_file(str(viewer_file)) == rp.ticket
        assert viewer_file.stat().st_mode & 0o777 == 0o600
    finally:
        rp.stop()
