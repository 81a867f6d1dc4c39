"""ipymirror.core.presence and ipymirror.core.status: who is in the room, what runs."""

from __future__ import annotations

import json
from pathlib import Path

from ipymirror.core.events import KERNEL, ExecuteInput, KernelRestart, Peer, Status, Stream
from ipymirror.core.presence import Presence
from ipymirror.core.protocol import to_event
from ipymirror.core.render import Renderer
from ipymirror.core.status import status_line

DATA = Path(__file__).parent.parent / "data"
CELLS: dict[str, str] = json.loads((DATA / "ipykernel_cells.json").read_text())

BOB = Peer("8ce7a1b2-0000-4000-8000-000000000001", "bob")
CAROL = Peer("4058c3d4-0000-4000-8000-000000000002", "carol")
ME = Peer("8fd6e5f6-0000-4000-8000-000000000003", "alice")


def _captured() -> list:
    with open(DATA / "ipykernel_iopub.jsonl", encoding="utf-8") as f:
        events = [to_event(json.loads(line)) for line in f]
    return [ev for ev in events if ev is not None]


def status(peer: Peer, cell: str, state: str, request: str = "execute_request") -> Status:
    return Status(peer, cell, state, request)


def test_execute_busy_idle_tracks_running_by_parent_msg_id():
    room = Presence()
    room.feed(status(BOB, "b1", "busy"))
    assert room.state == "busy" and list(room.running) == ["b1"]
    room.feed(ExecuteInput(BOB, "b1", "for i in range(3):\n    work(i)", 7))
    assert (room.running["b1"].count, room.running["b1"].code) == (7, "for i in range(3):")
    room.feed(status(CAROL, "c1", "busy"))  # queued behind bob's cell
    assert list(room.running) == ["b1", "c1"]
    room.feed(status(BOB, "b1", "idle"))
    assert list(room.running) == ["c1"] and room.state == "busy"
    room.feed(status(CAROL, "c1", "idle"))
    assert room.running == {} and room.state == "idle"
    assert room.execution_count == 7 and room.next_count() == 8


def test_idle_of_another_msg_id_does_not_end_a_cell():
    room = Presence()
    room.feed(status(BOB, "b1", "busy"))
    room.feed(status(BOB, "other", "idle"))
    assert list(room.running) == ["b1"] and room.state == "busy"


def test_kernel_info_and_complete_traffic_is_not_running():
    room = Presence()
    for request in ("kernel_info_request", "complete_request", "inspect_request"):
        room.feed(status(CAROL, "q-" + request, "busy", request))
        assert room.running == {}
        assert room.state != "busy", request
        room.feed(status(CAROL, "q-" + request, "idle", request))
        assert room.state == "idle"
    # ... nor does it end a running cell or make it look idle
    room.feed(status(BOB, "b1", "busy"))
    room.feed(status(CAROL, "k1", "busy", "kernel_info_request"))
    room.feed(status(CAROL, "k1", "idle", "kernel_info_request"))
    assert list(room.running) == ["b1"] and room.state == "busy"


def test_peers_seen_include_kernel_info_only_sessions_but_not_me():
    room = Presence(me=ME.session)
    room.feed(status(ME, "m1", "busy"))
    room.feed(ExecuteInput(ME, "m1", "x", 1))
    room.feed(status(CAROL, "k1", "busy", "kernel_info_request"))
    room.feed(status(CAROL, "k1", "idle", "kernel_info_request"))
    room.feed(Stream(BOB, "b1", "stdout", "hi\n"))
    room.feed(Stream(KERNEL, "", "stdout", "kernel's own\n"))
    assert list(room.peers) == [CAROL.session, BOB.session]
    assert room.peers[CAROL.session] == CAROL
    # My own cell does run (it is in running) even though I am not a peer.
    assert list(room.running) == ["m1"]


def test_peer_username_learnt_later_is_kept():
    room = Presence()
    room.feed(status(Peer(BOB.session), "b0", "busy", "kernel_info_request"))
    room.feed(status(BOB, "b1", "busy"))
    assert room.peers[BOB.session].username == "bob"


def test_restart_clears_running_and_resets_execution_count():
    room = Presence()
    room.feed(status(BOB, "b1", "busy"))
    room.feed(ExecuteInput(BOB, "b1", "x", 41))
    room.feed(KernelRestart(CAROL, "r1", restart=True))
    assert room.running == {}
    assert room.state == "restarting"
    assert room.execution_count == 0 and room.next_count() == 1
    room.feed(status(KERNEL, "", "starting", ""))
    assert room.state == "starting"
    room.feed(KernelRestart(CAROL, "r2", restart=False))
    assert room.state == "dead"


def test_starting_status_clears_running():
    room = Presence()
    room.feed(status(BOB, "b1", "busy"))
    room.feed(ExecuteInput(BOB, "b1", "x", 5))
    room.feed(status(KERNEL, "", "starting", ""))
    assert room.running == {} and room.execution_count == 0 and room.state == "starting"


def test_captured_session():
    events = _captured()
    restart = next(i for i, ev in enumerate(events) if isinstance(ev, KernelRestart))
    alice = next(ev.peer for ev in events if isinstance(ev, ExecuteInput))

    room = Presence(me=alice.session)
    for ev in events[:restart]:
        room.feed(ev)
        if isinstance(ev, Status) and ev.request == "execute_request" and ev.state == "busy":
            assert list(room.running) == [ev.cell]
    assert room.running == {} and room.state == "idle"
    assert room.execution_count == 11
    usernames = sorted(p.username for p in room.peers.values())
    assert "bob" in usernames and "alice" not in usernames  # bob only sent kernel_info/complete

    for ev in events[restart:]:
        room.feed(ev)
    assert room.state == "starting" and room.execution_count == 0


def test_version_bumps_on_change():
    room = Presence()
    v = room.version
    room.feed(status(BOB, "b1", "busy"))
    assert room.version > v
    v = room.version
    room.set_state("busy")
    assert room.version == v
    room.set_state("dead")
    assert room.version > v and room.state == "dead"


# ----------------------------------------------------------------- status line


def test_status_line_names_running_peer_count_and_code():
    r = Renderer(color=False)
    room = Presence(me=ME.session)
    room.feed(status(BOB, "b1", "busy"))
    room.feed(ExecuteInput(BOB, "b1", "train(model)\nsave()", 3))
    room.feed(status(CAROL, "k1", "busy", "kernel_info_request"))
    line = status_line(room, r, ME)
    assert line == (
        "● busy │ ▶ bob·8ce7 [3] train(model) │ peers: bob·8ce7 carol·4058 │ you: alice·8fd6"
    )
    room.feed(status(BOB, "b1", "idle"))
    assert status_line(room, r, ME) == "● idle │ peers: bob·8ce7 carol·4058 │ you: alice·8fd6"


def test_status_line_my_own_cell_says_you():
    r = Renderer(color=False)
    room = Presence(me=ME.session)
    room.feed(status(ME, "m1", "busy"))
    room.feed(ExecuteInput(ME, "m1", "import time; time.sleep(10)", 2))
    assert status_line(room, r, ME) == (
        "● busy │ ▶ you [2] import time; time.sleep(10) │ no peers yet │ you: alice·8fd6"
    )


def test_status_line_is_bounded_and_sanitised():
    r = Renderer(color=False)
    room = Presence()
    for i in range(12):
        p = Peer(f"{i:04x}-session", f"u{i}")
        room.feed(status(p, f"c{i}", "busy"))
        room.feed(ExecuteInput(p, f"c{i}", "x" * 100 + "\x1b]0;pwned\x07", i + 1))
    line = status_line(room, r)
    assert line.count("▶") == 3 and "+9 running" in line
    assert "peers: " in line and line.endswith(" +4")
    assert "pwned" not in line and "\x1b" not in line
    assert "x" * 41 not in line  # code is cut to 40 characters


def test_status_line_colours():
    r = Renderer(color=True)
    room = Presence()
    room.feed(status(BOB, "b1", "busy"))
    line = status_line(room, r)
    assert line.startswith("\x1b[33m● busy\x1b[0m")
    assert r.peer_sgr(BOB) + "▶ bob·8ce7" in line
