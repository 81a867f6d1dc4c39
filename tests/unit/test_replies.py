"""core/replies: the console's own replies as typed values, whatever the kernel sends."""

from __future__ import annotations

import pytest

from ipymirror.core.replies import (
    AskExit,
    EditMagic,
    ExecuteReply,
    HistoryEntry,
    InputRequest,
    Match,
    Page,
    SetNextInput,
    complete_reply,
    execute_reply,
    history_reply,
    input_request,
    inspect_reply,
    is_complete_reply,
    kernel_banner,
)


def reply(**content):
    return {"header": {"msg_type": "x"}, "content": content}


# What ipykernel 6/7 sends for len?, %load, exit(), exit(keep_kernel=True), %edit.
PAYLOADS = [
    (
        {
            "source": "page",
            "data": {"text/plain": "\x1b[31mSignature:\x1b[39m len(obj, /)"},
            "start": 0,
        },
        Page("\x1b[31mSignature:\x1b[39m len(obj, /)", 0),
    ),
    ({"source": "set_next_input", "text": "x = 1", "replace": False}, SetNextInput("x = 1", False)),
    ({"source": "set_next_input", "text": "y", "replace": True}, SetNextInput("y", True)),
    ({"source": "ask_exit", "keepkernel": False}, AskExit(False)),
    ({"source": "ask_exit", "keepkernel": True}, AskExit(True)),
    ({"source": "edit_magic", "filename": "/t/a.py", "line_number": 3}, EditMagic("/t/a.py", 3)),
    ({"source": "page", "text": "old style"}, Page("old style")),
]


@pytest.mark.parametrize(("item", "expected"), PAYLOADS)
def test_payloads(item, expected):
    got = execute_reply(reply(status="ok", execution_count=4, payload=[item]))
    assert got == ExecuteReply("ok", 4, (expected,))


@pytest.mark.parametrize(
    "payload",
    [None, 3, "page", [None, 1, "x"], [{"source": 7}], [{"source": "page", "data": 5}],
     [{"source": "edit_magic"}], [{"source": "unknown-thing"}]],
)  # fmt: skip
def test_odd_payloads_are_dropped_not_raised(payload):
    assert execute_reply(reply(status="ok", payload=payload)).payloads == ()


@pytest.mark.parametrize("msg", [None, 1, "x", {}, {"content": None}, {"content": []}])
def test_garbage_messages(msg):
    assert execute_reply(msg) == ExecuteReply("", None, ())
    assert complete_reply(msg, 3).matches == ()
    assert inspect_reply(msg).found is False
    assert is_complete_reply(msg).status == "unknown"
    assert history_reply(msg) == ()
    assert input_request(msg) == InputRequest("", False)


def test_complete_reply_uses_the_experimental_types():
    msg = reply(
        status="ok",
        matches=["OrderedDict"],
        cursor_start=12,
        cursor_end=19,
        metadata={
            "_jupyter_types_experimental": [
                {"start": 12, "end": 19, "text": "OrderedDict", "type": "class", "signature": ""},
                {"start": 12, "end": 19, "text": "", "type": "junk"},
                "not a dict",
            ]
        },
    )
    assert complete_reply(msg, 19).matches == (Match("OrderedDict", 12, 19, "class", ""),)


def test_complete_reply_plain_matches():
    msg = reply(status="ok", matches=["abc", 3, "", "abd"], cursor_start="bad", cursor_end=None)
    assert complete_reply(msg, 2).matches == (Match("abc", 2, 2), Match("abd", 2, 2))
    assert complete_reply(reply(status="error", matches=["x"]), 0).matches == ()


def test_inspect_is_complete_history_input():
    assert inspect_reply(reply(found=True, data={"text/plain": "Sig"})).text == "Sig"
    assert is_complete_reply(reply(status="incomplete", indent="    ")).indent == "    "
    # An "indent" that is not whitespace is not typed into your prompt.
    assert is_complete_reply(reply(status="incomplete", indent="rm -rf")).indent == ""
    assert is_complete_reply(reply(status="bogus")).status == "unknown"
    hist = reply(history=[[1, 2, "a = 1"], [1, 3, ["b", "out"]], ["x"], [1, 4, 5]])
    assert history_reply(hist) == (HistoryEntry(1, 2, "a = 1"), HistoryEntry(1, 3, "b"))
    assert input_request(reply(prompt="pw: ", password=True)) == InputRequest("pw: ", True)
    assert kernel_banner({"banner": "Python 3\nIPython"}) == "Python 3\nIPython"
    assert kernel_banner({"banner": 3}) == kernel_banner(None) == ""
