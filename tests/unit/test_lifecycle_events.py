"""ipymirror.core.lifecycle through the Pipeline: restarts nobody announced,
shutdowns nobody proved, all told once, as events (pure: captured messages)."""

from __future__ import annotations

import json
from pathlib import Path

from ipymirror.core.events import (
    KERNEL,
    KernelBack,
    KernelGone,
    KernelRestart,
    KernelRestarted,
    Peer,
)
from ipymirror.core.pipeline import Pipeline
from ipymirror.core.render import Renderer
from ipymirror.core.status import status_line

DATA = Path(__file__).parent.parent / "data"
BOB = Peer("8ce7a1b2-0000-4000-8000-000000000001", "bob")
MGR = Peer("0b67aaa7-0000-4000-8000-000000000002", "username")


def msg(kind, content, *, kernel="k1", peer=BOB, cell="c1", request="execute_request"):
    parent = {"session": peer.session, "username": peer.username, "msg_id": cell}
    if peer.session:
        parent["msg_type"] = request
    else:
        parent = {}
    return {
        "header": {"msg_type": kind, "session": kernel},
        "parent_header": parent,
        "content": content,
    }


def cell(code, count, *, kernel="k1", cell="c1", out="", peer=BOB):
    msgs = [
        msg("status", {"execution_state": "busy"}, kernel=kernel, cell=cell, peer=peer),
        msg("execute_input", {"code": code, "execution_count": count}, kernel=kernel, cell=cell),
    ]
    if out:
        msgs.append(msg("stream", {"name": "stdout", "text": out}, kernel=kernel, cell=cell))
    return msgs


def idle(kernel="k1", cell="c1"):
    return msg("status", {"execution_state": "idle"}, kernel=kernel, cell=cell)


def text_of(p: Pipeline, *batches) -> str:
    return "".join("".join(p.feed(b).lines) for b in batches)


def test_unannounced_restart_is_one_notice_ends_old_cells_and_shows_the_next_cell_whole():
    p = Pipeline(Renderer(color=False), me="me")
    restarted = []
    p.listeners.append(lambda ev: restarted.append(ev) if isinstance(ev, KernelRestarted) else 0)
    text_of(p, cell("import time; time.sleep(60)", 4, out="half"))
    assert list(p.presence.running) == ["c1"]
    new = [
        msg("iopub_welcome", {"subscription": ""}, kernel="k2", peer=KERNEL),
        msg("status", {"execution_state": "starting"}, kernel="k2", peer=KERNEL),
    ]
    text = text_of(p, new)
    assert text == (
        "│ half\n» kernel restarted by unknown (a new kernel: its variables are gone)\n"
    )
    assert p.presence.running == {} and p.presence.state == "starting"
    assert [ev.session for ev in restarted] == ["k2"]
    p.feed_events([KernelBack(KERNEL, "", "k2")])  # the heartbeat's kernel_info answered
    assert status_line(p.presence, p.renderer, width=80).startswith("● idle")
    text = text_of(p, [*cell("print('after')", 1, cell="c2", kernel="k2", out="after\n")])
    assert text == "┌ bob·8ce7  In [1]\n│ print('after')\n│ after\n"
    assert len(restarted) == 1


def test_a_restart_first_seen_on_the_busy_of_the_next_cell_keeps_that_cell_whole():
    p = Pipeline(Renderer(color=False))
    text_of(p, cell("x = 1", 7), [idle()])
    text = text_of(p, cell("print(2)", 1, kernel="k2", cell="c2", out="2\n"))
    assert text.split("\n")[1:] == ["┌ bob·8ce7  In [1]", "│ print(2)", "│ 2", ""]
    assert p.presence.next_count() == 2


def test_shutdown_reply_names_who_restarted_only_when_the_new_kernel_follows():
    p = Pipeline(Renderer(color=False))
    text_of(p, cell("x = 1", 1), [idle()])
    claim = msg(
        "shutdown_reply", {"restart": True}, peer=MGR, cell="r1", request="shutdown_request"
    )
    own_idle = msg("status", {"execution_state": "idle"}, peer=MGR, cell="r1")
    welcome = msg("iopub_welcome", {}, kernel="k2", peer=KERNEL)
    assert text_of(p, [claim, own_idle]) == ""
    assert text_of(p, [welcome]).startswith("» kernel restarted by username·0b67 ")
    # a claim the old kernel contradicts (it speaks on) names nobody
    claim3 = msg("shutdown_reply", {"restart": True}, kernel="k2", peer=MGR, cell="r3")
    text_of(p, [claim3], cell("y = 2", 1, kernel="k2", cell="c3"))
    later = msg("status", {"execution_state": "starting"}, kernel="k3", peer=KERNEL)
    assert text_of(p, [later]).startswith("» kernel restarted by unknown ")


def test_a_shutdown_claim_ends_nothing_until_the_heartbeat_confirms_it():
    p = Pipeline(Renderer(color=False))
    gone = []
    p.listeners.append(lambda ev: gone.append(ev) if isinstance(ev, KernelGone) else 0)
    claim = msg("shutdown_reply", {"restart": False}, cell="c1")
    text = text_of(p, cell("fake()", 3), [claim])
    assert text.endswith("» bob·8ce7 asked the kernel to shut down\n")
    assert not any(ev.for_good for ev in gone)
    p.feed_events([KernelGone(KERNEL, "")])  # and now the heart stops: confirmed
    assert [ev.for_good for ev in gone] == [True] and gone[0].peer == BOB
    assert p.presence.state == "dead" and p.presence.running == {}


def test_a_silence_that_began_before_the_claim_still_ends_named():
    """The heartbeat missed first (a server too busy in a flood to answer its REST
    check), then the shutdown was claimed: the clock's end is the shutdown, named."""
    p = Pipeline(Renderer(color=False))
    gone = []
    p.listeners.append(lambda ev: gone.append(ev) if isinstance(ev, KernelGone) else 0)
    text_of(p, cell("x = 1", 3), [idle()])
    p.feed_events([KernelGone(KERNEL, "")])  # missed checks: not for good yet
    text_of(p, [msg("shutdown_reply", {"restart": False}, cell="s1")])
    p.feed_events([KernelGone(KERNEL, "", for_good=True)])  # silent past a restart's time
    assert [(ev.for_good, ev.peer) for ev in gone] == [(False, KERNEL), (True, BOB)]


def test_kernel_info_answered_after_a_real_shutdown_reply_keeps_the_claim():
    """A kernel shutting down still answers kernel_info (a server's nudge, another
    mirror's probe) before its heart stops: that is not the kernel going on, so the
    end is still the shutdown, named, not an unnamed "gone" ten seconds later."""
    p = Pipeline(Renderer(color=False))
    gone = []
    p.listeners.append(lambda ev: gone.append(ev) if isinstance(ev, KernelGone) else 0)
    text_of(p, cell("x = 1", 3), [idle()])
    claim = msg("shutdown_reply", {"restart": False}, cell="s1", request="shutdown_request")
    nudged = [
        msg(
            "status", {"execution_state": state}, peer=MGR, cell="n1", request="kernel_info_request"
        )
        for state in ("busy", "idle")
    ]
    text_of(p, [claim, idle(cell="s1")], nudged)
    p.feed_events([KernelGone(KERNEL, "")])  # the heart stops
    assert [(ev.for_good, ev.peer) for ev in gone] == [(True, BOB)]
    # ... but work of another cell is the kernel going on: the claim is not kept
    p = Pipeline(Renderer(color=False))
    gone.clear()
    p.listeners.append(lambda ev: gone.append(ev) if isinstance(ev, KernelGone) else 0)
    text_of(p, [claim], cell("y = 2", 4, cell="c2"))
    p.feed_events([KernelGone(KERNEL, "")])
    assert [ev.for_good for ev in gone] == [False]


def test_a_kernel_dying_while_it_answers_kernel_info_keeps_the_claim():
    """ipykernel, shut down while a mirror's probe was in flight, prints its last words
    on stderr in the probe's cell, or in none ("Task was destroyed but it is pending!"):
    seen under load as a real shutdown told "gone (no heartbeat)", unnamed. Output of a
    cell no probe made still means the kernel goes on."""
    claim = msg("shutdown_reply", {"restart": False}, cell="s1", request="shutdown_request")
    probe = msg(
        "status", {"execution_state": "busy"}, peer=MGR, cell="n1", request="kernel_info_request"
    )
    for where, for_good in (("n1", True), ("", True), ("c9", False)):
        p = Pipeline(Renderer(color=False))
        gone = []
        p.listeners.append(lambda ev, g=gone: g.append(ev) if isinstance(ev, KernelGone) else 0)
        text_of(p, cell("x = 1", 3), [idle()])
        stderr = {"name": "stderr", "text": "Task was destroyed but it is pending!\n"}
        last = msg("stream", stderr, peer=MGR, cell=where, request="kernel_info_request")
        text_of(p, [claim, idle(cell="s1")], [probe, last])
        p.feed_events([KernelGone(KERNEL, "")])  # the heart stops
        assert [(ev.for_good, ev.peer) for ev in gone] == [
            (for_good, BOB if for_good else KERNEL)
        ], where


def test_gone_then_back_from_another_kernel_is_one_restart_notice():
    p = Pipeline(Renderer(color=False))
    p.feed_events([KernelBack(KERNEL, "", "k1")])
    text_of(p, cell("work()", 2))
    first = "".join(p.feed_events([KernelGone(KERNEL, "")]).lines)
    assert first == "» the kernel stopped answering (no heartbeat)\n"
    assert p.presence.running == {} and p.presence.state == "dead"
    text = "".join(p.feed_events([KernelBack(KERNEL, "", "k2")]).lines)
    assert text == (
        "» the kernel is answering again; kernel restarted by unknown "
        "(a new kernel: its variables are gone)\n"
    )
    assert p.presence.state == "idle"
    # the new kernel's own broadcasts say nothing more
    assert text_of(p, [msg("iopub_welcome", {}, kernel="k2", peer=KERNEL)]) == ""
    # gone and back with the same kernel (a pause): no restart
    p.feed_events([KernelGone(KERNEL, "")])
    text = "".join(p.feed_events([KernelBack(KERNEL, "", "k2")]).lines)
    assert text == "» the kernel is answering again\n"


def test_irkernel_echoes_the_requester_session_and_restarts_show_in_the_count():
    lines = (DATA / "irkernel_iopub.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    p = Pipeline(Renderer(color=False, language="r"))
    seen = []
    p.listeners.append(lambda ev: seen.append(ev) if isinstance(ev, KernelRestarted) else 0)
    other = json.loads(json.dumps(records))  # the same cells asked by another client
    for m in other:
        m["header"]["session"] = m["parent_header"]["session"] = "another-client"
        if m["header"]["msg_type"] == "execute_input":
            m["content"]["execution_count"] += 2
    text = text_of(p, records, other)
    assert seen == []  # a new requester is not a new kernel
    assert "│ [1] 42" in text  # text/plain, not the Markdown's bare "42"
    assert "│   x y" in text and "│ 1 1 a" in text
    for m in other:  # counts start again: a new kernel
        if m["header"]["msg_type"] == "execute_input":
            m["content"]["execution_count"] = 1
    text_of(p, other[:2])
    assert len(seen) == 1 and seen[0].peer == KERNEL


def test_a_restart_the_edge_makes_is_one_notice_named_after_it_however_first_seen():
    """ipymirror restarting the kernel it started: its own claim comes first; the new
    kernel's IOPub (or the heartbeat's probe, whichever is first) is that restart."""
    me = Peer("6f5e0000-0000-4000-8000-000000000003", "host")
    for first in ("iopub", "probe"):
        p = Pipeline(Renderer(color=False), me=me.session)
        text_of(p, cell("x = 1", 3), [idle()])
        p.feed_events([KernelGone(KERNEL, "")])
        p.feed_events([KernelRestart(me, "", restart=True)])
        welcome = [msg("iopub_welcome", {"subscription": ""}, kernel="k2", peer=KERNEL)]
        if first == "iopub":
            text = text_of(p, welcome) + "".join(
                p.feed_events([KernelBack(KERNEL, "", "k2")]).lines
            )
        else:
            text = "".join(p.feed_events([KernelBack(KERNEL, "", "k2")]).lines) + text_of(
                p, welcome
            )
        assert text.count("kernel restarted by") == 1, (first, text)
        assert "the kernel is answering again; kernel restarted by host·6f5e" in text, first
