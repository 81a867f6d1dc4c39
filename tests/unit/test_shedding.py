"""ipymirror.transports.shedding: what a display that is behind may drop, counted."""

from __future__ import annotations

import json

import pytest
from jupyter_client.session import Session
from shedding_support import SHED

from ipymirror.transports.shedding import MAX_OPEN, Shedder

KERNEL = Session(key=b"secret", username="kernel")
PARENT = {"msg_id": "c1", "session": "bob", "username": "bob", "msg_type": "execute_request"}


def parts(msg_type: str, content: dict, parent: dict = PARENT, key: Session = KERNEL) -> list:
    msg = key.msg(msg_type, content, parent=parent)
    frames = key.serialize(msg)
    return key.feed_identities(frames)[1]


def stream(text: str, name: str = "stdout", cell: str = "c1") -> list:
    return parts("stream", {"name": name, "text": text}, {**PARENT, "msg_id": cell})


class Decoded(Shedder):
    """The same judgement of the message decoded first, as a websocket link has it."""

    def sheds(self, parts: list[bytes]) -> bool:
        try:
            msg = KERNEL.deserialize(parts)
        except (ValueError, IndexError, RecursionError):
            return False  # not a message: never shed
        return self.sheds_msg(msg)


@pytest.fixture(params=[Shedder, Decoded], ids=["frames", "decoded"])
def s(request) -> Shedder:
    return request.param()


def told(s: Shedder) -> int:
    """The lines the notice says were dropped since the last one (0: no notice)."""
    notice = s.notice()
    if notice is None:
        return 0
    found = SHED.fullmatch(notice)
    assert found, notice
    return int(found.group(1).replace(",", ""))


def test_whole_lines_are_shed_and_counted_everything_else_kept(s):
    assert s.sheds(stream("1\n"))
    assert s.sheds(stream("2\n3\n"))
    assert not s.sheds(parts("status", {"execution_state": "idle"}))
    assert not s.sheds(parts("execute_result", {"data": {"text/plain": "'stream'"}}))
    assert not s.sheds(parts("error", {"ename": "E", "evalue": "stream\n", "traceback": []}))
    assert told(s) == 3 and told(s) == 0


def test_no_shown_line_is_a_splice_of_two(s):
    assert not s.sheds(stream("par"))  # leaves a line open: kept
    assert not s.sheds(stream("tial\n"))  # ends it: kept, so "partial" shows whole
    assert s.sheds(stream("next\n"))
    assert not s.sheds(stream("a\nb"))  # whole lines, but one left open
    assert not s.sheds(stream("c\n"))
    assert told(s) == 1


def test_streams_and_cells_are_told_apart_and_shown_messages_count(s):
    s.saw(
        {"msg_type": "stream", "parent_header": PARENT, "content": {"name": "stderr", "text": "x"}}
    )
    assert s.sheds(stream("out\n"))  # stdout of c1: nothing open there
    assert s.sheds(stream("other cell\n", name="stderr", cell="c2"))
    assert not s.sheds(stream("err\n", name="stderr"))  # ends c1's open stderr line
    assert s.sheds(stream("err again\n", name="stderr"))
    assert told(s) == 3


def test_odd_messages_are_never_shed(s):
    odd = stream("1\n")
    odd[4] = b"[" * 5000 + b"]" * 5000  # deeper than Python parses
    assert not s.sheds(odd)
    assert not s.sheds(stream("1\n")[:3])
    bad = stream("1\n")
    bad[4] = json.dumps({"name": "stdout", "text": 7}).encode()
    assert not s.sheds(bad)
    sly = Session(key=b"secret", username='"msg_type": "stream"')  # in the header, quoted
    tricky = parts("display_data", {"text": "1\n"}, key=sly)
    assert not s.sheds(tricky)  # "stream" only in a quoted value: not a stream message
    assert told(s) == 0


def test_the_cell_is_read_from_the_parent_as_the_decoder_reads_it(s):
    cell = 'c"\\1'  # quotes and backslashes, escaped in the JSON
    s.saw(
        {
            "msg_type": "stream",
            "parent_header": {"msg_id": cell},
            "content": {"name": "stdout", "text": "x"},
        }
    )
    assert not s.sheds(stream("rest\n", cell=cell))  # ends that cell's open line
    assert s.sheds(stream("more\n", cell=cell))


def test_streams_remembered_as_open_are_bounded(s):
    for i in range(MAX_OPEN + 1):
        assert not s.sheds(stream("open", cell=f"c{i}"))
    assert s.sheds(stream("end\n", cell="c0"))  # the oldest is forgotten: taken as whole
    assert not s.sheds(stream("end\n", cell=f"c{MAX_OPEN}"))  # the newest is remembered
