"""Pure parts of the Jupyter Server transport, table-tested: URLs, framing, kernel choice,
tokens, and the server's own messages as events.

Frames are the ones a real jupyter_server sent (``tests/data/server_frames.jsonl``,
written by ``tests/data/capture_server.py``): one v1 client and one legacy client
on a notebook's kernel while ``lab-bob`` ran cells, the kernel was restarted,
crashed, flooded IOPub and was shut down.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
from pathlib import Path

import pytest

from ipymirror.core.events import KERNEL, KernelRestart, OutputDropped, Peer, Status, Stream
from ipymirror.core.pipeline import Pipeline
from ipymirror.core.protocol import is_server_message, kernel_session_of, to_event
from ipymirror.core.render import Renderer
from ipymirror.core.transcript import Transcript
from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.transports.server import framing
from ipymirror.transports.server.choose import KernelRow, pick, rows
from ipymirror.transports.server.link import ServerLink
from ipymirror.transports.server.rest import ServerAPI, find_token, nodelay_socket
from ipymirror.transports.server.urls import ServerTarget, is_server_url, parse_server_url

DATA = Path(__file__).parent.parent / "data"

# ------------------------------------------------------------------ URLs

URLS = [
    # (pasted, base, kind, kernel_id, path, token)
    (
        "http://127.0.0.1:8888/lab/tree/work/a.ipynb?token=abc",
        "http://127.0.0.1:8888/",
        "notebook",
        "",
        "work/a.ipynb",
        "abc",
    ),
    (
        "https://hub.example.org/user/alice/lab/tree/My%20Notebook.ipynb",
        "https://hub.example.org/user/alice/",
        "notebook",
        "",
        "My Notebook.ipynb",
        "",
    ),
    (
        "http://h:1/user/alice/lab/workspaces/auto-x/tree/w/b.ipynb",
        "http://h:1/user/alice/",
        "notebook",
        "",
        "w/b.ipynb",
        "",
    ),
    ("http://h:1/notebooks/b.ipynb", "http://h:1/", "notebook", "", "b.ipynb", ""),
    ("http://h:1/tree/dir/b.ipynb", "http://h:1/", "notebook", "", "dir/b.ipynb", ""),
    ("http://h:1/doc/tree/b.ipynb", "http://h:1/", "notebook", "", "b.ipynb", ""),
    (
        "http://h:1/user/tree/lab/tree/x.ipynb",  # a hub user named "tree"
        "http://h:1/user/tree/",
        "notebook",
        "",
        "x.ipynb",
        "",
    ),
    ("http://h:1/tree/user/x.ipynb", "http://h:1/", "notebook", "", "user/x.ipynb", ""),
    ("http://h:1/api/kernels/0f1e-22", "http://h:1/", "kernel", "0f1e-22", "", ""),
    (
        "http://h:1/user/bob/api/kernels/k1/channels?session_id=s",
        "http://h:1/user/bob/",
        "kernel",
        "k1",
        "",
        "",
    ),
    ("http://h:1/user/alice/", "http://h:1/user/alice/", "root", "", "", ""),
    ("http://h:1/user/alice", "http://h:1/user/alice/", "root", "", "", ""),
    ("http://h:1/user/alice/lab?token=t#x", "http://h:1/user/alice/", "root", "", "", "t"),
    ("http://h:1/user/alice/tree/dir", "http://h:1/user/alice/", "root", "", "", ""),
    ("http://localhost:8888", "http://localhost:8888/", "root", "", "", ""),
    ("HTTP://H:1/lab", "http://h:1/", "root", "", "", ""),
    ("http://[::1]:8888/lab", "http://[::1]:8888/", "root", "", "", ""),
]


@pytest.mark.parametrize(("text", "base", "kind", "kernel_id", "path", "token"), URLS)
def test_urls(text, base, kind, kernel_id, path, token):
    target = parse_server_url(text)
    assert (target.base, target.kind, target.kernel_id, target.path, target.token) == (
        base,
        kind,
        kernel_id,
        path,
        token,
    )
    assert "token" not in target.display
    assert is_server_url(text)


@pytest.mark.parametrize("text", ["ftp://h/x", "http://", "notaurl", "http://h:99999999/"])
def test_bad_urls(text):
    with pytest.raises(ValueError):
        parse_server_url(text)


def test_files_are_not_server_urls():
    assert not is_server_url("kernel-1.json") and not is_server_url(None)


# ------------------------------------------------------------------ framing


def captured(client: str):
    for line in (DATA / "server_frames.jsonl").read_text().splitlines():
        frame = json.loads(line)
        if frame["client"] == client and not frame.get("closed"):
            data = base64.b64decode(frame["data"]) if frame["binary"] else frame["data"]
            yield frame, data


def test_every_captured_v1_frame_decodes_and_reencodes_byte_for_byte():
    frames = list(captured("v1"))
    assert len(frames) > 40
    for _, data in frames:
        channel, parts = framing.decode_v1(data)
        assert framing.encode_v1(channel, parts) == data
        msg = framing.message_from_parts(parts)
        assert msg["msg_type"] == msg["header"]["msg_type"]


def test_v1_and_legacy_clients_saw_the_same_messages():
    def ids(client, protocol):
        out = []
        for frame, data in captured(client):
            channel, msg = framing.decode(protocol, data)
            if frame["step"] == "flood":  # each connection has its own rate limiter
                continue
            if channel == "iopub" and msg["parent_header"].get("msg_type") == "execute_request":
                out.append((msg["msg_type"], msg["header"]["msg_id"]))
        return out

    v1, legacy = ids("v1", framing.SUBPROTOCOL), ids("legacy", None)
    assert v1 == legacy and len(v1) > 10


def test_legacy_round_trip_with_and_without_buffers():
    msg = {
        "header": {"msg_id": "1", "msg_type": "comm_msg"},
        "parent_header": {},
        "metadata": {},
        "content": {"data": {}},
        "buffers": [b"\x00\x01", b"xyz"],
    }
    frame = framing.encode_legacy("shell", msg)
    assert isinstance(frame, bytes)
    channel, back = framing.decode_legacy(frame)
    assert channel == "shell" and back["buffers"] == [b"\x00\x01", b"xyz"]
    assert back["content"] == {"data": {}}
    text = framing.encode_legacy("iopub", {**msg, "buffers": []})
    assert isinstance(text, str) and framing.decode_legacy(text)[0] == "iopub"


def test_v1_encode_then_decode_a_message_with_buffers():
    msg = {
        "header": {"msg_id": "1", "msg_type": "execute_request"},
        "parent_header": {},
        "metadata": {},
        "content": {"code": "1"},
        "buffers": [b"\xff"],
    }
    channel, back = framing.decode(
        framing.SUBPROTOCOL, framing.encode(framing.SUBPROTOCOL, "shell", msg)
    )
    assert channel == "shell" and back["content"] == {"code": "1"} and back["buffers"] == [b"\xff"]


BAD_V1 = [
    b"",
    b"\x01" * 7,
    struct.pack("<Q", 1) + b"\x00" * 8,  # fewer than 2 offsets
    struct.pack("<Q", 10**9),  # offsets beyond the frame
    struct.pack("<3Q", 2, 24, 99) + b"shell",  # last offset outside
    struct.pack("<4Q", 3, 32, 40, 35) + b"x" * 8,  # backwards
    struct.pack("<3Q", 2, 16, 24) + b"shell",  # the first offset is wrong
    struct.pack("<3Q", 2, 24, 26) + b"\xff\xfe",  # channel not UTF-8
]


@pytest.mark.parametrize("frame", BAD_V1)
def test_bad_v1_frames_raise_frame_error(frame):
    with pytest.raises(framing.FrameError):
        framing.decode(framing.SUBPROTOCOL, frame)


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1]",
        '{"header": 5}',
        b"\x00\x00",
        struct.pack("!I", 0),
        struct.pack("!2I", 1, 2) + b"{}",
    ],
)
def test_bad_legacy_frames_raise_frame_error(frame):
    with pytest.raises(framing.FrameError):
        framing.decode(None, frame)


def test_v1_rejects_text_and_short_messages():
    with pytest.raises(framing.FrameError):
        framing.decode(framing.SUBPROTOCOL, "{}")
    with pytest.raises(framing.FrameError):
        framing.decode(framing.SUBPROTOCOL, framing.encode_v1("iopub", [b"{}", b"{}"]))


# ------------------------------------- the server's own messages, as events


def iopub_of(step: str):
    for frame, data in captured("v1"):
        channel, msg = framing.decode(framing.SUBPROTOCOL, data)
        if channel == "iopub" and frame["step"] == step:
            yield frame, msg


def test_crash_restart_status_is_the_servers_word_and_no_kernel_session():
    found = [
        (f, m) for f, m in iopub_of("crash") if m["content"].get("execution_state") == "restarting"
    ]
    assert len(found) == 1
    frame, msg = found[0]
    assert msg["header"]["session"] == frame["session"]  # the server speaks as the receiver ...
    assert to_event(msg) == KernelRestart(KERNEL, "", restart=True, reason="died")  # nobody
    assert is_server_message(msg) and kernel_session_of(msg) == ""  # and no kernel process


def test_the_servers_messages_through_the_pipeline(tmp_path):
    """Every captured IOPub message of the v1 client, in order, through the one pipeline:
    one restart per real restart, one rate-limit notice, the nudges no one's."""
    frames = [
        (f, m) for f, m in ((f, framing.decode(framing.SUBPROTOCOL, d)) for f, d in captured("v1"))
    ]
    me = frames[0][0]["session"]
    p = Pipeline(Renderer(color=False), me)
    out = []
    for _, (channel, msg) in frames:
        if channel == "iopub":
            out += p.feed([msg]).lines
    text = "".join(out)
    assert text.count("kernel restarted by") == 1, text  # the REST restart
    assert text.count("the kernel died; the server restarted it") == 1, text  # the crash, once
    assert "kernel restarted by unknown" not in text  # the server's status is no other kernel
    assert (
        text.count("the server dropped output: rate limit; raise ServerApp.iopub_msg_rate_limit")
        == 1
    )
    assert "IOPub message rate exceeded" not in text
    assert "asked the kernel to shut down" in text  # the REST DELETE's claim
    bob = next(
        m["parent_header"]["session"]
        for _, (_, m) in frames
        if m["parent_header"].get("username") == "lab-bob"
    )
    assert bob in p.presence.peers


def test_rest_restart_and_delete_are_shutdown_replies():
    restart = [
        to_event(m) for _, m in iopub_of("rest-restart") if m["msg_type"] == "shutdown_reply"
    ]
    delete = [to_event(m) for _, m in iopub_of("delete") if m["msg_type"] == "shutdown_reply"]
    assert [e.restart for e in restart] == [True] and [e.restart for e in delete] == [False]
    assert all(isinstance(e, KernelRestart) for e in restart + delete)


def test_rate_limit_text_is_output_dropped_not_stderr():
    events = [to_event(m) for _, m in iopub_of("flood")]
    dropped = [e for e in events if isinstance(e, OutputDropped)]
    assert dropped and dropped[0].limit == "message rate"
    assert dropped[0].setting == "ServerApp.iopub_msg_rate_limit"
    assert dropped[0].peer.username == "lab-bob"  # the cell whose output was dropped
    assert not any(isinstance(e, Stream) and "rate exceeded" in e.text for e in events)


def test_data_rate_text_and_one_notice_per_cell():
    data_text = (
        "IOPub data rate exceeded.\nThe Jupyter server will temporarily stop sending "
        "output\nto the client in order to avoid crashing it.\n"
    )
    bob = Peer("s1", "bob")
    msg = {
        "header": {"msg_type": "stream"},
        "parent_header": {"session": "s1", "username": "bob", "msg_id": "c1"},
        "content": {"name": "stderr", "text": data_text},
    }
    ev = to_event(msg)
    assert ev == OutputDropped(bob, "c1", "data rate", "ServerApp.iopub_data_rate_limit")
    t = Transcript(Renderer(color=False))
    for _ in range(3):
        t.feed(ev)
    t.feed(OutputDropped(bob, "c1", "message rate", "ServerApp.iopub_msg_rate_limit"))
    out = "".join(t.take())
    assert (
        out.count(
            "the server dropped output: data rate limit; raise ServerApp.iopub_data_rate_limit"
        )
        == 1
    )
    assert (
        out.count("the server dropped output: rate limit; raise ServerApp.iopub_msg_rate_limit")
        == 1
    )
    # a peer's own stderr that merely starts alike stays stderr
    msg["content"]["text"] = "IOPub data rate exceeded.\n(just kidding)\n"
    assert isinstance(to_event(msg), Stream)


def test_server_status_dead_is_the_servers_word():
    msg = {
        "header": {"msg_type": "status", "session": "me"},
        "parent_header": {},
        "content": {"execution_state": "dead"},
    }
    assert to_event(msg) == KernelRestart(KERNEL, "", restart=False, reason="dead")
    assert is_server_message(msg) and kernel_session_of(msg) == ""
    kernel_msg = {
        "header": {"msg_type": "status", "session": "k"},
        "parent_header": {},
        "content": {"execution_state": "idle"},
    }
    assert not is_server_message(kernel_msg) and kernel_session_of(kernel_msg) == "k"


def test_nudges_carry_our_session_and_the_servers_username():
    """What ServerLink drops: busy/idle of kernel_info_requests the server sent itself."""
    nudges = [(f, m) for f, m in iopub_of("connect")]
    assert nudges
    for frame, msg in nudges:
        assert msg["parent_header"]["msg_type"] == "kernel_info_request"
        assert msg["parent_header"]["session"] == frame["session"]
        assert isinstance(to_event(msg), Status)


# ------------------------------------------------------------- kernel choice

TABLE = [
    {
        "id": "k-old",
        "name": "python3",
        "execution_state": "idle",
        "connections": 1,
        "last_activity": "2026-01-01T10:00:00.000000Z",
    },
    {
        "id": "k-new",
        "name": "ir",
        "execution_state": "busy",
        "connections": 2,
        "last_activity": "2026-01-02T10:00:00.000000Z",
    },
    {"bogus": 1},
]
SESSIONS = [{"path": "a.ipynb", "kernel": {"id": "k-old"}}, {"path": "b.ipynb", "kernel": None}]


def test_rows_sort_most_recent_first_with_notebooks():
    table = rows(TABLE, SESSIONS)
    assert [r.id for r in table] == ["k-new", "k-old"]
    assert table[1].notebooks == ("a.ipynb",) and table[0].connections == 2


@pytest.mark.parametrize(
    ("target", "kernel", "why"),
    [
        (ServerTarget("http://h/", "notebook", path="a.ipynb"), "k-old", "notebook a.ipynb"),
        (ServerTarget("http://h/", "root"), "k-new", "most recently active of 2"),
        (ServerTarget("http://h/", "kernel", kernel_id="k9"), "k9", ""),
    ],
)
def test_pick(target, kernel, why):
    choice = pick(target, rows(TABLE, SESSIONS))
    assert choice.kernel_id == kernel and why in choice.why


def test_pick_only_kernel_and_errors():
    only = [KernelRow("k1", "python3", "idle", 0, "")]
    assert "the only kernel" in pick(ServerTarget("http://h/"), only).why
    for target, table in [
        (ServerTarget("http://h/"), []),
        (ServerTarget("http://h/", "notebook", path="zz.ipynb"), only),
    ]:
        with pytest.raises(MirrorError) as info:
            pick(target, table)
        assert info.value.status == ExitStatus.NOT_FOUND


# ------------------------------------------------------------------ tokens


def test_token_sources_in_order(tmp_path):
    t = parse_server_url("http://127.0.0.1:8888/user/a/?token=url")
    bare = parse_server_url("http://localhost:8888/user/a/lab")
    env = {"JUPYTER_TOKEN": "env", "JUPYTERHUB_API_TOKEN": "hub"}
    assert find_token(t, "opt", env, None) == ("opt", "--token")
    assert find_token(t, None, env, None) == ("url", "the URL")
    assert find_token(bare, None, env, None) == ("env", "JUPYTER_TOKEN")
    assert find_token(bare, None, {"JUPYTERHUB_API_TOKEN": "hub"}, None)[0] == "hub"
    (tmp_path / "jpserver-1.json").write_text(
        json.dumps({"url": "http://127.0.0.1:8888/user/a/", "token": "file"})
    )
    (tmp_path / "jpserver-2.json").write_text(
        json.dumps({"url": "http://127.0.0.1:9999/", "token": "other"})
    )
    (tmp_path / "jpserver-3.json").write_text("{torn")
    assert find_token(bare, None, {}, str(tmp_path)) == ("file", "jpserver-1.json")
    other = parse_server_url("http://127.0.0.1:7777/")
    assert find_token(other, None, {}, str(tmp_path)) == ("", "")


def test_sockets_have_nodelay():
    sock = nodelay_socket((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)))
    try:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        sock.close()


def test_the_servers_nudges_are_filtered_and_our_own_probes_never_are():
    """A server nudges under the browser's session and its own username; our probes'
    busy/idle must reach the pipeline even when we go by that same name (the heartbeat
    waits for them to know IOPub delivers)."""
    target = ServerTarget("http://127.0.0.1:9/", "kernel", "k1")
    link = ServerLink(ServerAPI(target, ""), target, "alice")

    def status(msg_id: str, session: str) -> dict:
        parent = {"msg_type": "kernel_info_request", "session": session, "msg_id": msg_id}
        return {"msg_type": "status", "parent_header": {**parent, "username": "alice"}}

    assert link._server_nudge(status("n1", link.session_id))  # on our session, not ours
    assert link._server_nudge(status("n2", "browser-session"))  # the server's name, learnt
    link._sent.append("p1")
    assert not link._server_nudge(status("p1", link.session_id))  # our own probe
