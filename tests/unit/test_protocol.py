"""ipymirror.core.protocol: real IOPub messages (captured from real kernels by
tests/data/capture.py) and hand-made malformed ones -> typed events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ipymirror.core.events import (
    KERNEL,
    ClearOutput,
    Display,
    Error,
    ExecuteInput,
    KernelRestart,
    Peer,
    Result,
    Status,
    Stream,
)
from ipymirror.core.protocol import msg_type_of, peer_of, to_event

DATA = Path(__file__).parent.parent / "data"


def _load(name: str) -> list[dict[str, Any]]:
    with open(DATA / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


IPYKERNEL = _load("ipykernel_iopub.jsonl")
BASH = _load("bash_iopub.jsonl")
CELLS: dict[str, str] = json.loads((DATA / "ipykernel_cells.json").read_text())
BASH_CELLS: dict[str, str] = json.loads((DATA / "bash_cells.json").read_text())
ALL = [("ipykernel", i, m) for i, m in enumerate(IPYKERNEL)] + [
    ("bash", i, m) for i, m in enumerate(BASH)
]

# msg_type -> expected event class (None: ignored)
EXPECTED_TYPE: dict[str, type | None] = {
    "status": Status,
    "execute_input": ExecuteInput,
    "stream": Stream,
    "execute_result": Result,
    "display_data": Display,
    "update_display_data": Display,
    "clear_output": ClearOutput,
    "error": Error,
    "shutdown_reply": KernelRestart,
    "iopub_welcome": None,
}


def _of_cell(msgs: list[dict[str, Any]], msg_id: str, msg_type: str) -> list[dict[str, Any]]:
    return [
        m for m in msgs if m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == msg_type
    ]


def test_captured_data_is_what_the_tests_expect():
    types = {m["msg_type"] for m in IPYKERNEL}
    # Every message type the capture script provokes is there (iopub_welcome
    # only comes from kernels with an XPUB IOPub socket, ipykernel >= 7).
    assert types <= set(EXPECTED_TYPE), types
    assert set(EXPECTED_TYPE) - {"iopub_welcome"} <= types, types
    assert {m["msg_type"] for m in BASH} == {"status", "execute_input", "stream"}
    # Both users and the silent run are present; the key never is (it only signs).
    sessions = {m["parent_header"].get("username") for m in IPYKERNEL}
    assert {"alice", "bob"} <= sessions
    assert _of_cell(IPYKERNEL, CELLS["silent"], "stream")
    for m in IPYKERNEL + BASH:
        assert "key" not in m and "signature" not in m


@pytest.mark.parametrize(
    ("source", "index", "msg"), ALL, ids=[f"{s}-{i}-{m['msg_type']}" for s, i, m in ALL]
)
def test_every_captured_message_maps_to_its_event(source, index, msg):
    ev = to_event(msg)
    expected = EXPECTED_TYPE[msg["msg_type"]]
    if expected is None:
        assert ev is None
        return
    assert type(ev) is expected
    parent = msg["parent_header"]
    content = msg["content"]

    # Attribution: the requester (parent_header), never the kernel's own header.session.
    assert ev.cell == parent.get("msg_id", "")
    if parent.get("session"):
        assert ev.peer == Peer(parent["session"], parent["username"])
        assert ev.peer.session != msg["header"]["session"]
    else:
        assert ev.peer == KERNEL

    if isinstance(ev, Status):
        assert ev.state == content["execution_state"]
        assert ev.request == parent.get("msg_type", "")
    elif isinstance(ev, ExecuteInput):
        assert ev.code == content["code"]
        assert ev.execution_count == content["execution_count"]
        assert isinstance(ev.execution_count, int)
    elif isinstance(ev, Stream):
        assert (ev.name, ev.text) == (content["name"], content["text"])
    elif isinstance(ev, Result):
        assert ev.data == content["data"]
        assert ev.execution_count == content["execution_count"]
    elif isinstance(ev, Display):
        assert ev.data == content["data"]
        assert ev.metadata == content["metadata"]
        assert ev.display_id == content["transient"].get("display_id")
        assert ev.update is (msg["msg_type"] == "update_display_data")
    elif isinstance(ev, ClearOutput):
        assert ev.wait is content["wait"]
    elif isinstance(ev, Error):
        assert (ev.ename, ev.evalue) == (content["ename"], content["evalue"])
        assert ev.traceback == tuple(content["traceback"])
    elif isinstance(ev, KernelRestart):
        assert ev.restart is content["restart"]


def _one(msgs: list[dict[str, Any]], cell: str, msg_type: str) -> Any:
    found = _of_cell(msgs, CELLS[cell] if msgs is IPYKERNEL else BASH_CELLS[cell], msg_type)
    assert len(found) == 1, (cell, msg_type, found)
    return to_event(found[0])


def test_specific_cells():
    ev = _one(IPYKERNEL, "streams", "execute_input")
    assert ev.code == "import sys\nprint('hello')\nprint('oops', file=sys.stderr)"
    assert ev.peer.username == "alice"
    streams = [to_event(m) for m in _of_cell(IPYKERNEL, CELLS["streams"], "stream")]
    assert [(s.name, s.text) for s in streams] == [("stdout", "hello\n"), ("stderr", "oops\n")]

    result = _one(IPYKERNEL, "result", "execute_result")
    assert result.data["text/plain"] == "42"
    assert result.execution_count == 2

    disp = _one(IPYKERNEL, "display_id", "display_data")
    upd = _one(IPYKERNEL, "display_id", "update_display_data")
    assert (disp.display_id, disp.update, disp.data["text/markdown"]) == (
        "progress-1",
        False,
        "step 1",
    )
    assert (upd.display_id, upd.update, upd.data["text/markdown"]) == ("progress-1", True, "step 2")

    plain = _one(IPYKERNEL, "markdown", "display_data")
    assert plain.display_id is None  # transient is {}

    clears = [to_event(m) for m in _of_cell(IPYKERNEL, CELLS["clear_output"], "clear_output")]
    assert len(clears) == 3 and all(c.wait for c in clears)

    err = _one(IPYKERNEL, "error", "error")
    assert err.ename == "ZeroDivisionError"
    assert "division by zero" in err.traceback[-1]

    bash = _one(BASH, "echo", "stream")
    assert (bash.name, bash.text, bash.peer.username) == ("stdout", "hi\n", "alice")
    assert _one(BASH, "echo", "execute_input").code == "echo hi"


def test_silent_execution_is_attributed_to_alice():
    alice = {m["parent_header"]["session"] for m in _of_cell(IPYKERNEL, CELLS["result"], "status")}
    assert len(alice) == 1
    # A silent execution broadcasts no execute_input, but its output is still alice's.
    assert not _of_cell(IPYKERNEL, CELLS["silent"], "execute_input")
    ev = _one(IPYKERNEL, "silent", "stream")
    assert ev == Stream(Peer(alice.pop(), "alice"), CELLS["silent"], "stdout", "1\n")


def test_status_request_is_the_parent_msg_type():
    bob = [to_event(m) for m in _of_cell(IPYKERNEL, CELLS["bob_kernel_info"], "status")]
    assert [(s.state, s.request, s.peer.username) for s in bob] == [
        ("busy", "kernel_info_request", "bob"),
        ("idle", "kernel_info_request", "bob"),
    ]
    comp = [to_event(m) for m in _of_cell(IPYKERNEL, CELLS["bob_complete"], "status")]
    assert [s.request for s in comp] == ["complete_request", "complete_request"]
    # The restarted kernel's "starting" has no parent: it is the kernel's own.
    starting = [m for m in IPYKERNEL if m["content"].get("execution_state") == "starting"]
    assert [to_event(m) for m in starting] == [Status(KERNEL, "", "starting", "")]


def test_peer_of_ignores_header_session():
    msg = {
        "header": {"msg_type": "stream", "session": "KERNEL-SESSION", "username": "kernel"},
        "parent_header": {"session": "abcd-1234", "username": "carol", "msg_id": "req-1"},
        "content": {"name": "stdout", "text": "x"},
    }
    assert peer_of(msg) == (Peer("abcd-1234", "carol"), "req-1")
    assert to_event(msg) == Stream(Peer("abcd-1234", "carol"), "req-1", "stdout", "x")
    assert peer_of({"header": {"session": "KERNEL-SESSION"}}) == (KERNEL, "")


# ------------------------------------------------------------------ malformed


def _msg(msg_type: str, content: Any, parent: Any = None) -> dict[str, Any]:
    return {
        "header": {"msg_type": msg_type, "session": "k"},
        "parent_header": {"session": "s-1", "username": "eve", "msg_id": "m1"}
        if parent is None
        else parent,
        "content": content,
    }


EVE = Peer("s-1", "eve")

MALFORMED: list[tuple[str, Any, Any]] = [
    # (id, message, expected event)
    ("not-a-dict-none", None, None),
    ("not-a-dict-str", "status", None),
    ("not-a-dict-list", [{"header": {"msg_type": "status"}}], None),
    ("not-a-dict-int", 42, None),
    ("empty", {}, None),
    ("missing-header-no-type", {"content": {"name": "stdout", "text": "x"}}, None),
    (
        "missing-header-top-level-type",  # the flat form some libraries use
        {"msg_type": "stream", "content": {"name": "stdout", "text": "x"}},
        Stream(KERNEL, "", "stdout", "x"),
    ),
    ("header-not-a-dict", {"header": "stream", "content": {"text": "x"}}, None),
    ("msg-type-not-a-string", {"header": {"msg_type": 7}, "content": {}}, None),
    ("msg-type-dict", {"header": {"msg_type": {"a": 1}}, "content": {}}, None),
    ("unknown-msg-type", _msg("comm_msg", {"data": {}}), None),
    ("unknown-msg-type-2", _msg("execute_reply", {"status": "ok"}), None),
    ("status-content-not-dict", _msg("status", "busy"), None),
    ("status-content-none", _msg("status", None), None),
    ("status-no-state", _msg("status", {}), None),
    (
        "status-parent-not-dict",
        _msg("status", {"execution_state": "busy"}, parent="p"),
        Status(KERNEL, "", "busy", ""),
    ),
    (
        "parent-session-not-str",
        _msg("status", {"execution_state": "idle"}, parent={"session": 12, "msg_id": None}),
        Status(Peer("12", ""), "", "idle", ""),
    ),
    ("stream-content-list", _msg("stream", ["x"]), None),
    ("stream-text-none", _msg("stream", {"name": "stdout", "text": None}), None),
    ("stream-text-empty", _msg("stream", {"name": "stdout", "text": ""}), None),
    (
        "stream-text-int",
        _msg("stream", {"name": "stdout", "text": 123}),
        Stream(EVE, "m1", "stdout", "123"),
    ),
    (
        "stream-text-list",  # nbformat-style multiline string
        _msg("stream", {"name": "stderr", "text": ["a\n", "b\n", 3]}),
        Stream(EVE, "m1", "stderr", "a\nb\n"),
    ),
    (
        "stream-bad-name",
        _msg("stream", {"name": "/dev/tty", "text": "x"}),
        Stream(EVE, "m1", "stdout", "x"),
    ),
    (
        "execute-input-content-not-dict",
        _msg("execute_input", 5),
        ExecuteInput(EVE, "m1", "", None),
    ),
    (
        "execute-input-count-str",
        _msg("execute_input", {"code": "x", "execution_count": "3"}),
        ExecuteInput(EVE, "m1", "x", None),
    ),
    (
        "execute-input-count-bool",
        _msg("execute_input", {"code": "x", "execution_count": True}),
        ExecuteInput(EVE, "m1", "x", None),
    ),
    (
        "result-data-not-dict",
        _msg("execute_result", {"data": "42", "execution_count": 1}),
        Result(EVE, "m1", {}, 1),
    ),
    (
        "display-data-not-dict",
        _msg("display_data", {"data": ["x"], "metadata": "m", "transient": "t"}),
        Display(EVE, "m1", {}, {}, None, False),
    ),
    (
        "display-id-empty",
        _msg("update_display_data", {"data": {}, "transient": {"display_id": ""}}),
        Display(EVE, "m1", {}, {}, None, True),
    ),
    (
        "display-id-int",
        _msg("display_data", {"data": {}, "transient": {"display_id": 5}}),
        Display(EVE, "m1", {}, {}, "5", False),
    ),
    (
        "error-traceback-str",
        _msg("error", {"ename": "E", "evalue": "v", "traceback": "not a list"}),
        Error(EVE, "m1", "E", "v", ()),
    ),
    (
        "error-traceback-mixed",
        _msg("error", {"ename": None, "evalue": 1, "traceback": ["a", 2, None]}),
        Error(EVE, "m1", "", "1", ("a", "2", "")),
    ),
    ("error-content-none", _msg("error", None), Error(EVE, "m1", "", "", ())),
    ("clear-output-content-str", _msg("clear_output", "wait"), ClearOutput(EVE, "m1", False)),
    (
        "shutdown-reply-no-content",
        {"header": {"msg_type": "shutdown_reply"}},
        KernelRestart(KERNEL, "", False),
    ),
]


@pytest.mark.parametrize(
    ("msg", "expected"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_messages_never_raise(msg, expected):
    assert to_event(msg) == expected


def test_msg_type_of_prefers_header():
    assert msg_type_of({"header": {"msg_type": "stream"}, "msg_type": "status"}) == "stream"
    assert msg_type_of({"header": {}, "msg_type": "status"}) == "status"
    assert msg_type_of({}) == ""
