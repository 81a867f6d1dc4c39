"""ipymirror.core.presence and ipymirror.core.status: who is in the room, what runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ipymirror.core.events import (
    KERNEL,
    ExecuteInput,
    KernelBack,
    KernelGone,
    KernelRestart,
    KernelRestarted,
    Peer,
    Status,
    Stream,
    Submitted,
    Tick,
    tool_session,
)
from ipymirror.core.presence import Presence
from ipymirror.core.protocol import to_event
from ipymirror.core.render import Renderer
from ipymirror.core.sanitize import strip_sgr
from ipymirror.core.status import status_line, text_width

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


def test_peer_is_named_by_its_first_own_request_then_never_renamed():
    room = Presence()
    # a server nudges kernel_info with the browser's session id, under its own name
    room.feed(status(Peer(BOB.session, "server"), "b0", "busy", "kernel_info_request"))
    room.feed(status(BOB, "b1", "busy"))
    assert room.peers[BOB.session].username == "bob"
    room.feed(status(Peer(BOB.session, "mallory"), "b2", "busy"))
    room.feed(ExecuteInput(Peer(BOB.session, ""), "b2", "x", 3))
    assert room.canonical(Peer(BOB.session, "mallory")) == BOB


def test_restart_clears_running_and_resets_execution_count():
    room = Presence()
    room.feed(status(BOB, "b1", "busy"))
    room.feed(ExecuteInput(BOB, "b1", "x", 41))
    room.feed(KernelRestart(CAROL, "r1", restart=True))  # a claim: nothing ends yet
    assert room.state == "restarting" and list(room.running) == ["b1"]
    room.feed(KernelRestarted(CAROL, "r1", "new"))
    assert room.running == {}
    assert room.execution_count == 0 and room.next_count() == 1
    room.feed(status(KERNEL, "", "starting", ""))
    assert room.state == "starting"
    room.feed(KernelBack(KERNEL, "", "new"))  # kernel_info answered
    assert room.state == "idle"
    room.feed(KernelRestart(CAROL, "r2", restart=False))
    assert room.state == "shutting down"
    room.feed(KernelGone(KERNEL, "", for_good=True))
    assert room.state == "dead"


def test_a_claimed_restart_holds_through_the_old_kernels_last_words():
    """The shutdown_request's idle and kernel_info answers do not end the claim: the
    heartbeat must go on asking, for the new kernel may say nothing by itself."""
    room = Presence()
    room.feed(status(CAROL, "r1", "busy", "shutdown_request"))
    room.feed(KernelRestart(CAROL, "r1", restart=True))
    room.feed(status(CAROL, "r1", "idle", "shutdown_request"))
    room.feed(status(BOB, "k1", "busy", "kernel_info_request"))
    room.feed(status(BOB, "k1", "idle", "kernel_info_request"))
    assert room.state == "restarting"
    room.feed(status(BOB, "b1", "busy"))  # the old kernel runs a cell: the claim was not kept
    assert room.state == "busy"
    room.feed(KernelRestart(CAROL, "r2", restart=False))
    room.feed(status(CAROL, "r2", "idle", "shutdown_request"))
    assert room.state == "shutting down"
    room.feed(KernelBack(KERNEL, "", "old"))  # the heartbeat's probe: it still answers
    assert room.state == "busy"


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
    room.feed(Tick(KERNEL, "", 0.0))
    assert room.version == v
    room.feed(KernelGone(KERNEL, ""))
    assert room.version > v and room.state == "dead"


# ----------------------------------------------------------------- status line


def test_status_line_names_running_peer_count_and_code():
    r = Renderer(color=False)
    room = Presence(me=ME.session)
    room.feed(status(BOB, "b1", "busy"))
    room.feed(ExecuteInput(BOB, "b1", "train(model)\nsave()", 3))
    room.feed(status(CAROL, "k1", "busy", "kernel_info_request"))
    line = status_line(room, r, ME, width=200)
    assert line == "● busy │ ▶ bob·8ce7 [3] train(model) │ peers: bob·8ce7 │ you: alice·8fd6"
    room.feed(status(CAROL, "c1", "busy", "complete_request"))  # carol types: a person
    room.feed(status(BOB, "b1", "idle"))
    assert status_line(room, r, ME, width=200) == (
        "● idle │ peers: carol·4058 bob·8ce7 │ you: alice·8fd6"
    )


def test_status_line_my_own_cell_says_you():
    r = Renderer(color=False)
    room = Presence(me=ME.session)
    room.feed(status(ME, "m1", "busy"))
    room.feed(ExecuteInput(ME, "m1", "import time; time.sleep(10)", 2))
    assert status_line(room, r, ME, width=200) == (
        "● busy │ ▶ you [2] import time; time.sleep(10) │ no peers yet │ you: alice·8fd6"
    )


def test_status_line_is_bounded_and_sanitised():
    r = Renderer(color=False)
    room = Presence()
    for i in range(12):
        p = Peer(f"{i:04x}-session", f"u{i}")
        room.feed(status(p, f"c{i}", "busy"))
        room.feed(ExecuteInput(p, f"c{i}", "x" * 100 + "\x1b]0;pwned\x07", i + 1))
    line = status_line(room, r, width=400)
    assert line.count("▶") == 3 and "+9 running" in line
    assert "peers: u11·000b" in line and line.endswith(" +4")
    assert "pwned" not in line and "\x1b" not in line
    assert "x" * 41 not in line  # code is cut to 40 characters


def test_status_line_colours():
    r = Renderer(color=True)
    room = Presence()
    room.feed(status(BOB, "b1", "busy"))
    line = status_line(room, r)
    assert line.startswith("\x1b[33m● busy\x1b[0m")
    assert r.peer_sgr(BOB) + "▶ bob·8ce7" in line


# ------------------------------------------------------- people, not tools


def test_others_are_active_people_most_recent_first_never_tools_servers_or_me():
    room = Presence(me=ME.session, active_for=60)
    watcher = Peer(tool_session("watch", "77aa"), "alice")
    server = Peer("5e7e0000-0000-4000-8000-000000000009", "server")
    room.feed(Tick(KERNEL, "", 100.0))
    room.feed(status(BOB, "b1", "busy"))
    room.feed(Tick(KERNEL, "", 110.0))
    room.feed(status(CAROL, "c1", "busy", "inspect_request"))
    room.feed(status(ME, "m1", "busy"))
    for tool in (watcher, server):  # kernel_info and shutdown are not a person's
        room.feed(status(tool, "k" + tool.session, "busy", "kernel_info_request"))
    room.feed(status(server, "s1", "busy", "shutdown_request"))
    room.feed(status(watcher, "w1", "busy"))  # even a tool that runs code
    assert room.others() == [CAROL, BOB]
    assert watcher.label == "alice·77aa"
    room.feed(Tick(KERNEL, "", 165.0))  # bob idle for 65 s: dropped out
    assert room.others() == [CAROL]
    room.feed(Tick(KERNEL, "", 171.0))
    assert room.others() == []
    room.feed(status(BOB, "b2", "busy"))  # back
    assert room.others() == [BOB]


def test_dropping_out_redraws_the_status_line():
    room = Presence(active_for=10)
    room.feed(status(BOB, "b1", "busy"))
    v = room.version
    room.feed(Tick(KERNEL, "", 5.0))
    assert room.version == v
    room.feed(Tick(KERNEL, "", 11.0))
    assert room.version > v


def test_one_name_per_peer_everywhere_and_anonymous_for_an_empty_one():
    from ipymirror.core.pipeline import Pipeline

    nameless = Peer("abcd0000-0000-4000-8000-00000000000a", "  ")
    p = Pipeline(Renderer(color=False), me=ME.session)
    msg = {
        "header": {"msg_type": "execute_input", "session": "k"},
        "parent_header": {"session": nameless.session, "username": "  ", "msg_id": "n1"},
        "content": {"code": "1", "execution_count": 1},
    }
    busy = {
        "header": {"msg_type": "status", "session": "k"},
        "parent_header": {
            "session": nameless.session,
            "username": "",
            "msg_id": "n1",
            "msg_type": "execute_request",
        },
        "content": {"execution_state": "busy"},
    }
    renamed = dict(msg, parent_header=dict(msg["parent_header"], username="mallory"))
    text = "".join(p.feed([busy, msg, renamed]).lines)
    assert "┌ anonymous·abcd  In [1]" in text and "mallory" not in text
    line = status_line(p.presence, p.renderer, ME, width=120)
    assert "▶ anonymous·abcd [1]" in line and "peers: anonymous·abcd" in line


@pytest.mark.parametrize("width", [10, 24, 40, 61, 80])
def test_status_line_always_fits_one_line(width):
    r = Renderer(color=True)
    room = Presence(me=ME.session)
    for i in range(30):
        p = Peer(f"{i:04x}-session", "名前" * 3 + str(i))
        room.feed(status(p, f"c{i}", "busy"))
        room.feed(ExecuteInput(p, f"c{i}", "計算(" + "x" * 80, i + 1))
    line = status_line(room, r, ME, width=width)
    plain = strip_sgr(line)
    assert "\n" not in plain and text_width(plain) <= width
    assert plain.startswith("● busy"[: width - 1])
    if width >= 61:
        assert "30 peers" in plain  # the count survives any cut of the names


def test_status_line_cuts_names_before_the_count():
    r = Renderer(color=False)
    room = Presence(me=ME.session)
    for p in (BOB, CAROL):
        room.feed(status(p, "x" + p.session, "busy", "complete_request"))
    assert status_line(room, r, ME, width=60) == (
        "● idle │ peers: carol·4058 bob·8ce7 │ you: alice·8fd6"
    )
    assert status_line(room, r, ME, width=50) == "● idle │ peers: carol·4058 +1 │ you: alice·8fd6"
    assert status_line(room, r, ME, width=30) == "● idle │ 2 peers"
    assert status_line(room, r, ME, width=12) == "● idle │ 2 …"


def test_your_sent_cell_runs_from_the_start_until_its_idle_or_the_kernels_end():
    room = Presence(ME.session)
    room.feed(Submitted(ME, "m1", "import time"))
    assert [(r.peer, r.code) for r in room.running.values()] == [(ME, "import time")]
    room.feed(Status(ME, "m1", "busy", "execute_request"))
    room.feed(ExecuteInput(ME, "m1", "import time\ntime.sleep(1)", 3))
    assert room.running["m1"].count == 3 and len(room.running) == 1
    room.feed(Status(ME, "m1", "idle", "execute_request"))
    assert room.running == {}
    room.feed(Submitted(ME, "m2", "x"))
    room.feed(KernelGone(KERNEL, ""))  # its idle will never come
    assert room.running == {}
