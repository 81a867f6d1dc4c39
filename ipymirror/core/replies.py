"""Replies to your own requests -> typed values.  Pure, like :mod:`~ipymirror.core.protocol`.

The console asks the kernel things (execute, complete, inspect, is_complete,
history) and answers its ``input_request``; this module is the one place that
reads those messages' dicts.  Every field is read defensively: a kernel may
send anything, and a wrong type becomes an empty value, never an exception.

``execute_reply`` payloads (the messaging spec's, as IPython sends them):

* ``page``: help text (``len?``, ``%magic``) for *this* client only; peers never see it.
* ``set_next_input``: text for your next prompt (``%load``, ``%recall``).
* ``ask_exit``: ``exit``/``quit`` was typed; ``keepkernel`` asks not to shut it down.
* ``edit_magic``: ``%edit`` wants an editor on ``filename`` at ``line_number``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AskExit",
    "CompleteReply",
    "EditMagic",
    "ExecuteReply",
    "HistoryEntry",
    "InputRequest",
    "InspectReply",
    "IsCompleteReply",
    "Match",
    "Page",
    "Payload",
    "SetNextInput",
    "complete_reply",
    "execute_reply",
    "history_reply",
    "input_request",
    "inspect_reply",
    "is_complete_reply",
    "kernel_banner",
]


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any, fallback: int | None = None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else fallback


def _content(msg: Any) -> Mapping[str, Any]:
    return _dict(_dict(msg).get("content"))


def _text_of(data: Mapping[str, Any]) -> str:
    """``text/plain`` of a MIME bundle (a list of strings is joined, as nbformat does)."""
    value = data.get("text/plain")
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return _str(value)


# -- execute_reply --------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Page:
    text: str  # text/plain, ANSI colours included: sanitise before showing
    start: int = 0  # the line to open the pager at


@dataclass(frozen=True, slots=True)
class SetNextInput:
    text: str
    replace: bool = False


@dataclass(frozen=True, slots=True)
class AskExit:
    keepkernel: bool = False


@dataclass(frozen=True, slots=True)
class EditMagic:
    filename: str
    line_number: int | None = None


Payload = Page | SetNextInput | AskExit | EditMagic


@dataclass(frozen=True, slots=True)
class ExecuteReply:
    status: str  # ok, error, aborted ('' when the kernel sent none)
    execution_count: int | None = None
    payloads: tuple[Payload, ...] = ()


def _payload(item: Mapping[str, Any]) -> Payload | None:
    source = _str(item.get("source"))
    if source == "page":
        data = _dict(item.get("data"))
        text = _text_of(data) if data else _str(item.get("text"))  # old form: a bare text
        return Page(text, max(0, _int(item.get("start"), 0) or 0)) if text else None
    if source == "set_next_input":
        return SetNextInput(_str(item.get("text")), item.get("replace") is True)
    if source == "ask_exit":
        return AskExit(item.get("keepkernel") is True)
    if source == "edit_magic":
        filename = _str(item.get("filename"))
        return EditMagic(filename, _int(item.get("line_number"))) if filename else None
    return None


def execute_reply(msg: Any) -> ExecuteReply:
    c = _content(msg)
    raw = c.get("payload")
    items = raw if isinstance(raw, list | tuple) else ()
    payloads = tuple(p for p in (_payload(_dict(i)) for i in items) if p is not None)
    return ExecuteReply(_str(c.get("status")), _int(c.get("execution_count")), payloads)


# -- complete_reply -------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Match:
    """One completion: replaces ``start:end`` of the code with ``text``."""

    text: str
    start: int
    end: int
    type: str = ""  # from _jupyter_types_experimental: function, module, keyword…
    signature: str = ""


@dataclass(frozen=True, slots=True)
class CompleteReply:
    matches: tuple[Match, ...] = ()


def complete_reply(msg: Any, cursor_pos: int) -> CompleteReply:
    """Matches with their types when the kernel sends ``_jupyter_types_experimental``."""
    c = _content(msg)
    if c.get("status") not in (None, "ok"):
        return CompleteReply()
    start = _int(c.get("cursor_start"), cursor_pos)
    end = _int(c.get("cursor_end"), cursor_pos)
    start = cursor_pos if start is None else start
    end = cursor_pos if end is None else end
    typed = _dict(c.get("metadata")).get("_jupyter_types_experimental")
    if isinstance(typed, list) and typed:
        out = []
        for item in typed:
            item = _dict(item)
            text = _str(item.get("text"))
            if text:
                s, e = _int(item.get("start"), start), _int(item.get("end"), end)
                out.append(
                    Match(
                        text,
                        start if s is None else s,
                        end if e is None else e,
                        _str(item.get("type")),
                        _str(item.get("signature")),
                    )
                )
        return CompleteReply(tuple(out))
    matches = c.get("matches")
    items = matches if isinstance(matches, list) else []
    return CompleteReply(tuple(Match(m, start, end) for m in items if isinstance(m, str) and m))


# -- inspect, is_complete, history, input -----------------------------------------
@dataclass(frozen=True, slots=True)
class InspectReply:
    found: bool
    text: str = ""


def inspect_reply(msg: Any) -> InspectReply:
    c = _content(msg)
    text = _text_of(_dict(c.get("data")))
    return InspectReply(c.get("found") is True and bool(text), text)


@dataclass(frozen=True, slots=True)
class IsCompleteReply:
    status: str  # complete, incomplete, invalid, unknown
    indent: str = ""


def is_complete_reply(msg: Any) -> IsCompleteReply:
    c = _content(msg)
    status = _str(c.get("status"))
    if status not in ("complete", "incomplete", "invalid", "unknown"):
        status = "unknown"
    indent = _str(c.get("indent"))
    return IsCompleteReply(status, indent if not indent.strip() else "")


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    session: int
    line: int
    source: str


def history_reply(msg: Any) -> tuple[HistoryEntry, ...]:
    raw = _content(msg).get("history")
    out = []
    for item in raw if isinstance(raw, list) else ():
        if isinstance(item, list | tuple) and len(item) >= 3:
            session, line, source = item[0], item[1], item[2]
            if isinstance(source, list | tuple):  # output=True: (input, output)
                source = source[0] if source else ""
            if isinstance(source, str):
                out.append(HistoryEntry(_int(session, 0) or 0, _int(line, 0) or 0, source))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class InputRequest:
    prompt: str
    password: bool = False


def input_request(msg: Any) -> InputRequest:
    c = _content(msg)
    return InputRequest(_str(c.get("prompt")), c.get("password") is True)


def kernel_banner(kernel_info: Any) -> str:
    """The ``banner`` of a ``kernel_info_reply``'s content ('' when none)."""
    return _str(_dict(kernel_info).get("banner"))
