"""The sharing protocol's pure parts: hello validation, the backlog, the viewer's
sequencer, bind addresses.  No sockets here; tests/kernel/test_share.py runs the real thing."""

from __future__ import annotations

import json

import pytest

from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.transports.share.relay import Backlog, parse_hello
from ipymirror.transports.share.ticket import advertised, bind_pair
from ipymirror.transports.share.viewer import Sequencer

ID = b"\x00k\x8bEg"


def hello(**fields: object) -> list[bytes]:
    data = {"v": 1, "req": 1, "epoch": "", "after": 0, **fields}
    return [ID, b"hello", json.dumps({k: v for k, v in data.items() if v != "DROP"}).encode()]


# ------------------------------------------------------------------ hello


def test_a_well_formed_hello_parses():
    assert parse_hello(hello(req=3, epoch="ab12", after=41)) == (3, "ab12", 41)


@pytest.mark.parametrize(
    "frames",
    [
        [ID],
        [ID, b"hello"],
        [ID, b"HELLO", hello()[2]],
        [ID, b"hello", hello()[2], b"extra"],
        [ID, b"hello", b"not json"],
        [ID, b"hello", b"\xff\xfe"],
        [ID, b"hello", b"[1, 2, 3]"],
        [ID, b"hello", b" " * 300 + hello()[2]],  # too long
        hello(v=2),
        hello(req=-1),
        hello(req=True),
        hello(req=1.5),
        hello(after=2**70),
        hello(after="0"),
        hello(epoch=7),
        hello(epoch="x" * 33),
        hello(code="import os"),  # an unknown key: not a hello
        hello(after="DROP"),
        # an execute_request, as a client would send it to a kernel
        [ID, b"<IDS|MSG>", b"sig", b'{"msg_type": "execute_request"}', b"{}", b"{}", b"{}"],
    ],
)
def test_anything_else_is_ignored(frames):
    assert parse_hello(frames) is None


# ---------------------------------------------------------------- backlog


def fill(backlog: Backlog, stream: str) -> None:
    """'c' = a cell's execute_input, 'o' = any other message."""
    for i, kind in enumerate(stream):
        backlog.append(f"{kind}{i}".encode(), starts_cell=kind == "c")


def test_backlog_keeps_the_last_cells_from_their_start():
    backlog = Backlog(cells=2)
    fill(backlog, "oo" + "cooo" + "coo" + "co")
    assert (backlog.first, backlog.last) == (7, 11)
    assert backlog.since(0) == (7, [b"c6", b"o7", b"o8", b"c9", b"o10"])


def test_backlog_before_the_limit_keeps_everything():
    backlog = Backlog(cells=5)
    fill(backlog, "ooco")
    assert backlog.since(0) == (1, [b"o0", b"o1", b"c2", b"o3"])
    assert backlog.since(3) == (4, [b"o3"])
    assert backlog.since(4) == (5, [])


def test_backlog_caps_records_and_bytes_even_within_a_cell():
    backlog = Backlog(cells=20, max_records=3)
    fill(backlog, "cooooo")
    assert backlog.since(0) == (4, [b"o3", b"o4", b"o5"])
    assert not backlog.starts  # the cell start fell out
    by_size = Backlog(cells=20, max_bytes=7)
    fill(by_size, "coooo")  # 2 + 2 + 2 + 2 + 2 bytes
    assert by_size.since(0) == (3, [b"o2", b"o3", b"o4"])
    assert by_size.size == 6


def test_backlog_of_zero_cells_holds_from_the_newest_cell_on_never():
    backlog = Backlog(cells=0)
    fill(backlog, "oco")
    assert backlog.since(0) == (3, [b"o2"])


# --------------------------------------------------------------- sequencer


def welcome(seq: Sequencer, epoch: str, first: int, records: list[bytes]) -> list[bytes] | None:
    meta = {
        "v": 1,
        "req": seq.req,
        "epoch": epoch,
        "first": first,
        "last": first + len(records) - 1,
    }
    return seq.welcome(meta, records)


def test_a_fresh_viewer_gets_the_backlog_then_live_without_dupes():
    seq = Sequencer()
    payload = json.loads(seq.hello())
    assert payload == {"v": 1, "req": 1, "epoch": "", "after": 0}
    # live records arrive before the welcome: held back
    assert seq.live(b"E", 5, [b"r5", b"r6"]) == []
    assert welcome(seq, "E", 3, [b"r3", b"r4", b"r5"]) == [b"r3", b"r4", b"r5", b"r6"]
    assert seq.live(b"E", 6, [b"r6", b"r7"]) == [b"r7"]  # r6 again: a duplicate
    assert (seq.last, seq.syncing, seq.notices) == (7, False, [])


def test_a_gap_asks_to_catch_up_and_is_filled_exactly():
    seq = Sequencer()
    seq.hello()
    assert welcome(seq, "E", 1, [b"r1"]) == [b"r1"]
    assert seq.live(b"E", 4, [b"r4", b"r5"]) == []  # r2, r3 dropped on the way
    assert seq.need_hello and seq.syncing
    assert json.loads(seq.hello())["after"] == 1
    assert seq.live(b"E", 6, [b"r6"]) == []
    assert welcome(seq, "E", 2, [b"r2", b"r3", b"r4"]) == [b"r2", b"r3", b"r4", b"r5", b"r6"]
    assert seq.notices == [] and seq.missed == 0


def test_what_the_backlog_lost_is_counted_and_said():
    seq = Sequencer()
    seq.hello()
    welcome(seq, "E", 1, [b"r1"])
    seq.live(b"E", 40, [b"r40"])
    seq.hello()
    assert welcome(seq, "E", 30, [b"r30"]) == [b"r30"]  # r40 is held: r31.. are missing
    assert seq.need_hello
    assert seq.missed == 28  # r2 .. r29
    assert seq.notices == ["28 events missed (this viewer fell behind the relay's backlog)"]


def test_a_tick_beyond_what_we_have_means_the_tail_was_lost():
    seq = Sequencer()
    seq.hello()
    welcome(seq, "E", 1, [b"r1", b"r2"])
    seq.tick(b"E", 2)
    assert not seq.need_hello
    seq.tick(b"E", 3)
    assert seq.need_hello


def test_a_new_relay_epoch_starts_over_and_says_so():
    seq = Sequencer()
    seq.hello()
    welcome(seq, "OLD", 1, [b"a1", b"a2"])
    seq.tick(b"NEW", 1)
    assert seq.need_hello
    seq.live(b"OLD", 3, [b"a3"])  # a straggler of the old run: never delivered
    seq.hello()
    assert welcome(seq, "NEW", 1, [b"b1"]) == [b"b1"]
    assert (seq.epoch, seq.last) == (b"NEW", 1)
    assert seq.notices == ["the relay restarted: what ran while it was down is not shown"]


def test_welcomes_are_ignored_unless_catching_up_and_must_be_consistent():
    seq = Sequencer()
    seq.hello()
    assert seq.welcome({"epoch": "E", "first": 1, "last": 5}, [b"r1"]) is None  # 1 record != 5
    assert seq.welcome({"epoch": 3, "first": 1, "last": 1}, [b"r1"]) is None
    assert welcome(seq, "E", 1, [b"r1"]) == [b"r1"]
    assert welcome(seq, "E", 1, [b"r1", b"r2"]) is None  # not syncing: stale
    assert seq.last == 1


def test_held_records_are_bounded():
    seq = Sequencer(max_held=3)
    seq.hello()
    seq.live(b"E", 1, [b"r1", b"r2", b"r3", b"r4", b"r5"])
    assert len(seq.held) == 3
    assert welcome(seq, "E", 1, [b"r1"]) == [b"r1"]  # r3.. is a gap now
    assert seq.need_hello


# ------------------------------------------------------------------- bind


def test_bind_pair_and_advertised_addresses(monkeypatch):
    assert bind_pair("tcp://127.0.0.1:7788") == ("tcp://127.0.0.1:7788", "tcp://127.0.0.1:7789")
    assert bind_pair("tcp://0.0.0.0:0") == ("tcp://0.0.0.0:*", "tcp://0.0.0.0:*")
    assert bind_pair("tcp://[::1]:9000")[1] == "tcp://[::1]:9001"
    for bad in ("127.0.0.1:7788", "tcp://127.0.0.1", "ipc:///tmp/x", "tcp://h:65535"):
        with pytest.raises(MirrorError) as err:
            bind_pair(bad)
        assert err.value.status == ExitStatus.ADDRESS
    monkeypatch.setattr("socket.getfqdn", lambda: "lab.example.org")
    assert advertised("tcp://127.0.0.1:40001", None) == "tcp://127.0.0.1:40001"
    assert advertised("tcp://0.0.0.0:40001", None) == "tcp://lab.example.org:40001"
    assert advertised("tcp://0.0.0.0:40001", "10.0.0.5") == "tcp://10.0.0.5:40001"


def test_records_held_while_catching_up_are_capped_in_bytes():
    from ipymirror.transports.share.viewer import HELD_BYTES

    seq = Sequencer()
    seq.hello()  # syncing: live records are held
    record = b"x" * 60_000
    for n in range(1, 2001):  # 120 MB of live records while no welcome comes
        seq.live(b"e1", n, [record])
    assert seq.held_bytes <= HELD_BYTES
    assert sum(len(r) for _, _, r in seq.held) == seq.held_bytes
    assert seq.held[-1][1] == 2000  # the newest are kept
