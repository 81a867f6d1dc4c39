"""Jupyter IOPub message -> typed event.  Pure: no sockets, no clocks.

Rules this module keeps:

* The peer is ``parent_header.session`` (with its ``username``), never the
  message's own ``header.session``, which is the kernel's.
* Kernels and peers may send anything: every field is read defensively, wrong
  types become empty values, and a message this module does not understand
  becomes ``None`` rather than an exception.
* Text is passed through as the kernel sent it; sanitising for the terminal is
  the renderer's job, so recordings keep the original bytes.  The one
  exception is :func:`kernel_description`, a line meant for display: it is
  sanitised here, so no command can print a kernel's name raw.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ipymirror.core.events import (
    KERNEL,
    ClearOutput,
    Display,
    Error,
    Event,
    ExecuteInput,
    KernelRestart,
    OutputDropped,
    Peer,
    Result,
    Status,
    Stream,
)
from ipymirror.core.sanitize import sanitize, strip_sgr

__all__ = [
    "is_server_message",
    "kernel_description",
    "kernel_language",
    "kernel_session_of",
    "msg_type_of",
    "peer_of",
    "to_event",
]


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):  # nbformat-style multiline strings
        return "".join(v for v in value if isinstance(v, str))
    return "" if value is None else str(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def msg_type_of(msg: Mapping[str, Any]) -> str:
    return _str(_dict(msg.get("header")).get("msg_type") or msg.get("msg_type"))


#: Characters kept of the identifiers a peer chooses (session, user name, msg_id,
#: display_id): they are kept in tables, so their size is capped too.
MAX_ID = 128


def _id(value: Any) -> str:
    return _str(value)[:MAX_ID]


def kernel_session_of(msg: Mapping[str, Any]) -> str:
    """The session of the kernel process that sent ``msg`` (its own ``header.session``).

    '' when it tells nothing: IRkernel puts the requester's session there.
    """
    if not isinstance(msg, Mapping) or is_server_message(msg):
        return ""
    session = _id(_dict(msg.get("header")).get("session"))
    return "" if session == _id(_dict(msg.get("parent_header")).get("session")) else session


def is_server_message(msg: Mapping[str, Any]) -> bool:
    """Sent by a Jupyter Server itself, not the kernel: its ``restarting``/``dead``
    status and its rate-limit stderr.  They carry the *receiver's* session in
    ``header.session``, which is no kernel's."""
    content = _dict(msg.get("content"))
    msg_type = msg_type_of(msg)
    if msg_type == "status":
        return content.get("execution_state") in ("restarting", "dead")
    if msg_type == "stream" and content.get("name") == "stderr":
        text = _str(content.get("text"))
        return any(text.startswith(start) for start, _, _ in _RATE_LIMITS) and (
            "Jupyter server will temporarily stop" in text
        )
    return False


def peer_of(msg: Mapping[str, Any]) -> tuple[Peer, str]:
    """The peer whose request caused ``msg``, and that request's msg_id."""
    parent = _dict(msg.get("parent_header"))
    session = _id(parent.get("session"))
    if not session:
        return KERNEL, _id(parent.get("msg_id"))
    return Peer(session, _id(parent.get("username"))), _id(parent.get("msg_id"))


def _execute_input(peer: Peer, cell: str, c: Mapping[str, Any]) -> Event:
    return ExecuteInput(peer, cell, _str(c.get("code")), _int(c.get("execution_count")))


#: What a Jupyter Server writes to a cell's stderr instead of the IOPub it drops
#: (jupyter_server ZMQChannelsWebsocketConnection._limit_rate; notebook < 7 alike).
_RATE_LIMITS = (
    ("IOPub message rate exceeded.\n", "message rate", "ServerApp.iopub_msg_rate_limit"),
    ("IOPub data rate exceeded.\n", "data rate", "ServerApp.iopub_data_rate_limit"),
)


def _stream(peer: Peer, cell: str, c: Mapping[str, Any]) -> Event | None:
    text = _str(c.get("text"))
    if not text:
        return None
    name = "stderr" if c.get("name") == "stderr" else "stdout"
    if (
        name == "stderr"
        and text.startswith("IOPub ")
        and "Jupyter server will temporarily stop" in text
    ):
        for start, limit, setting in _RATE_LIMITS:
            if text.startswith(start):
                return OutputDropped(peer, cell, limit, setting)
    return Stream(peer, cell, name, text)


def _result(peer: Peer, cell: str, c: Mapping[str, Any]) -> Event:
    return Result(
        peer, cell, _dict(c.get("data")), _int(c.get("execution_count")), _dict(c.get("metadata"))
    )


def _display(peer: Peer, cell: str, c: Mapping[str, Any], update: bool) -> Event:
    transient = _dict(c.get("transient"))
    display_id = transient.get("display_id")
    return Display(
        peer,
        cell,
        _dict(c.get("data")),
        _dict(c.get("metadata")),
        _id(display_id) if display_id not in (None, "") else None,
        update,
    )


def _error(peer: Peer, cell: str, c: Mapping[str, Any]) -> Event:
    tb = c.get("traceback")
    lines = tuple(_str(t) for t in tb) if isinstance(tb, list | tuple) else ()
    return Error(peer, cell, _str(c.get("ename")), _str(c.get("evalue")), lines)


def _status(peer: Peer, cell: str, c: Mapping[str, Any], parent: Mapping[str, Any]) -> Event | None:
    state = _str(c.get("execution_state"))
    if not state:
        return None
    if state == "restarting":  # a Jupyter Server's own: it restarts a kernel that died
        return KernelRestart(peer, cell, restart=True, reason="died")
    if state == "dead":  # a Jupyter Server's own: that restart failed
        return KernelRestart(peer, cell, restart=False, reason="dead")
    return Status(peer, cell, state, _str(parent.get("msg_type")))


_HANDLERS: dict[str, Callable[[Peer, str, Mapping[str, Any]], Event | None]] = {
    "execute_input": _execute_input,
    "stream": _stream,
    "execute_result": _result,
    "display_data": lambda p, m, c: _display(p, m, c, update=False),
    "update_display_data": lambda p, m, c: _display(p, m, c, update=True),
    "clear_output": lambda p, m, c: ClearOutput(p, m, bool(c.get("wait"))),
    "error": _error,
    "shutdown_reply": lambda p, m, c: KernelRestart(p, m, c.get("restart") is True),
    "shutdown": lambda p, m, c: KernelRestart(p, m, c.get("restart") is True),  # xeus
}


def to_event(msg: Mapping[str, Any]) -> Event | None:
    """Turn one deserialised IOPub message into an event, or ``None`` to ignore it."""
    if not isinstance(msg, Mapping):
        return None
    msg_type = msg_type_of(msg)
    content = _dict(msg.get("content"))
    peer, cell = peer_of(msg)
    if msg_type == "status":
        return _status(peer, cell, content, _dict(msg.get("parent_header")))
    handler = _HANDLERS.get(msg_type)
    return handler(peer, cell, content) if handler else None


def kernel_language(kernel_info: Mapping[str, Any]) -> str:
    """A pygments lexer name for a kernel's code (``kernel_info_reply`` content):
    ``language_info.pygments_lexer``, else its ``name``; '' when unknown."""
    info = _dict(_dict(kernel_info).get("language_info"))
    return _str(info.get("pygments_lexer") or info.get("name"))


def kernel_description(kernel_info: Mapping[str, Any]) -> str:
    """``python kernel (ipython)``: how every frontend names the kernel it shows."""
    kernel_info = _dict(kernel_info)
    language = _shown(_str(_dict(kernel_info.get("language_info")).get("name"))) or "?"
    impl = _shown(_str(kernel_info.get("implementation")))
    return f"{language} kernel" + (f" ({impl})" if impl else "")


def _shown(text: str, limit: int = 40) -> str:
    """A kernel-chosen name as one short, safe line: no controls, no colours, no newlines."""
    text = " ".join(strip_sgr(sanitize(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
