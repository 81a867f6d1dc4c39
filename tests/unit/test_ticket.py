"""Viewer tickets: encode/parse, what they hold, the host's 0600 ticket file."""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
import zmq

from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.transports.share.ticket import (
    PREFIX,
    HostKeys,
    Ticket,
    load_host_file,
    new_host_keys,
    read_ticket_file,
    write_host_file,
)


def keys_at(port: int = 7788) -> HostKeys:
    keys = new_host_keys()
    ticket = keys.ticket.with_addresses(f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{port + 1}")
    return HostKeys(ticket, keys.server_secret, (ticket.pub, ticket.router))


def forge(**fields: object) -> str:
    base = json.loads(base64.urlsafe_b64decode(keys_at().ticket.encode()[len(PREFIX) :] + "=="))
    base.update(fields)
    raw = json.dumps({k: v for k, v in base.items() if v is not None}).encode()
    return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_ticket_round_trips_and_holds_only_addresses_and_curve_keys():
    keys = keys_at()
    text = keys.ticket.encode()
    assert text.startswith("ipym1:") and "\n" not in text and " " not in text
    ticket = Ticket.parse(f"  {text}\n")
    assert ticket == keys.ticket
    assert ticket.pub == "tcp://127.0.0.1:7788" and ticket.router == "tcp://127.0.0.1:7789"
    # The viewer's public key is derived from its secret; the relay's secret is not in it.
    secret = ticket.viewer_secret.encode()
    assert ticket.viewer_public == zmq.curve_public(secret).decode()
    payload = json.loads(base64.urlsafe_b64decode(text[len(PREFIX) :] + "=="))
    assert set(payload) == {"v", "pub", "router", "server", "viewer"}
    assert keys.server_secret not in text
    assert ticket.viewer_secret not in repr(ticket)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "ipym1:",
        "ipym1:!!!not base64!!!",
        "ipym1:" + base64.urlsafe_b64encode(b"[1, 2]").decode(),
        "ipym1:" + base64.urlsafe_b64encode(b"{not json").decode(),
        forge(v=2),
        forge(pub="udp://127.0.0.1:1"),
        forge(pub="tcp://127.0.0.1:99999"),
        forge(router=None),
        forge(server="short"),
        forge(viewer="~" * 40),  # 40 characters, but not z85
        forge(viewer=7),
    ],
)
def test_bad_tickets_are_one_line_errors(text):
    with pytest.raises(MirrorError) as err:
        Ticket.parse(text)
    assert err.value.status == ExitStatus.CONNECTION_FILE
    assert "\n" not in str(err.value)


def test_a_truncated_ticket_is_refused():
    text = keys_at().ticket.encode()
    with pytest.raises(MirrorError, match="malformed ticket"):
        Ticket.parse(text[:-12])


def test_host_file_is_0600_and_round_trips(tmp_path):
    (tmp_path / "d").mkdir()
    path = tmp_path / "d" / "class.ticket"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    old_umask = os.umask(0)  # even a permissive umask must not widen it
    try:
        keys = keys_at()
        write_host_file(str(path), keys)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_host_file(str(path)) == keys
    # A viewer given the file reads the ticket line only.
    assert read_ticket_file(str(path)) == keys.ticket
    assert [p.name for p in path.parent.iterdir()] == ["class.ticket"]  # no temp file left


def test_host_file_missing_is_none_and_foreign_files_are_not_overwritten(tmp_path):
    assert load_host_file(str(tmp_path / "nope")) is None
    viewer_copy = tmp_path / "ticket.txt"
    viewer_copy.write_text(keys_at().ticket.encode() + "\n")
    assert read_ticket_file(str(viewer_copy)) is not None
    with pytest.raises(MirrorError, match="not a relay's ticket file"):
        load_host_file(str(viewer_copy))
    notes = tmp_path / "notes.txt"
    notes.write_text("my thesis\n")
    with pytest.raises(MirrorError, match="not a relay's ticket file"):
        load_host_file(str(notes))
    assert notes.read_text() == "my thesis\n"


def test_host_file_whose_relay_key_does_not_match_is_refused(tmp_path):
    a, b = keys_at(), keys_at()
    path = tmp_path / "t"
    write_host_file(str(path), HostKeys(a.ticket, b.server_secret, a.binds))
    with pytest.raises(MirrorError, match="does not match"):
        load_host_file(str(path))


def test_ticket_file_errors_are_one_line(tmp_path):
    with pytest.raises(MirrorError, match="ticket file not found"):
        read_ticket_file(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(MirrorError, match="no viewer ticket"):
        read_ticket_file(str(empty))
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(MirrorError, match="cannot read ticket file"):
        read_ticket_file(str(binary))
