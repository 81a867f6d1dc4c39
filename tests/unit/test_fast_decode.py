"""The IOPub decoder: Session.deserialize's result and checks, without its date parsing."""

from __future__ import annotations

import pytest
from jupyter_client.jsonutil import json_default
from jupyter_client.session import Session

from ipymirror.transports.fast_decode import deserialize


def _parts(sender: Session, receiver: Session) -> list[bytes]:
    parent = sender.msg("execute_request", {"code": "print(1)"})
    msg = sender.msg("stream", {"name": "stdout", "text": "1\n"}, parent=parent)
    _, parts = receiver.feed_identities(sender.serialize(msg, ident=b"kernel.k.stream"))
    return parts


def test_same_message_as_jupyter_client_with_dates_left_as_sent():
    key = b"secret"
    parts = _parts(Session(key=key), Session(key=key))
    ours = deserialize(Session(key=key), parts)
    theirs = Session(key=key).deserialize(parts)
    for field in ("header", "parent_header"):
        theirs[field]["date"] = json_default(theirs[field]["date"])
        assert ours[field]["date"] == theirs[field]["date"]  # the kernel's string, unparsed
    assert ours == theirs


def test_unsigned_replayed_and_forged_messages_raise_as_jupyter_client_does():
    receiver = Session(key=b"secret")
    parts = _parts(Session(key=b"secret"), receiver)
    deserialize(receiver, parts)
    with pytest.raises(ValueError, match=r"^Duplicate Signature"):
        deserialize(receiver, parts)
    with pytest.raises(ValueError, match=r"^Invalid Signature"):
        deserialize(receiver, _parts(Session(key=b"wrong"), receiver))
    with pytest.raises(ValueError, match=r"^Unsigned Message"):
        deserialize(receiver, [b"", *parts[1:]])
    with pytest.raises(TypeError):  # a null header: malformed, the caller keeps it raw
        signed = Session(key=b"secret")
        frames = [b"null", b"{}", b"{}", b"{}"]
        deserialize(receiver, [signed.sign(frames), *frames])
