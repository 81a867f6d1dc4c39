"""Signed messages that are not valid messages: kept, not dropped.

A kernel (or a peer through it) can sign anything: a null header, content
nested deeper than JSON parsers go.  Such a message is authentic, so it is
delivered with each part that is a JSON object kept and the others as text
under ``raw``, and counted as malformed, never as "wrong key".
"""

from __future__ import annotations

import hmac
import json
from typing import Any

__all__ = ["is_signed", "raw_message"]


def is_signed(session: Any, parts: list[Any]) -> bool:
    """Whether ``parts`` carry a valid signature (the digest history aside)."""
    if len(parts) < 5:
        return False
    if session.auth is None:
        return True
    signature = bytes(parts[0])
    return bool(signature) and hmac.compare_digest(signature, session.sign(parts[1:5]))


_PARTS = ("header", "parent_header", "metadata", "content")


def raw_message(parts: list[Any]) -> tuple[dict[str, Any], str]:
    """A signed message that is not one: each part that is a JSON object kept,
    the others as text under ``raw``; and what was wrong, in words."""
    msg: dict[str, Any] = {name: {} for name in _PARTS}
    raw: dict[str, str] = {}
    wrong: list[str] = []
    for name, part in zip(_PARTS, parts[1:5], strict=False):
        data = bytes(part)
        try:
            value = json.loads(data)
        except RecursionError:
            value, why = None, "nested too deeply"
        except ValueError:
            value, why = None, "not JSON"
        else:
            why = "null" if value is None else f"a JSON {type(value).__name__}"
        if isinstance(value, dict):
            msg[name] = value
        else:
            raw[name] = data.decode("utf-8", "replace")
            wrong.append(f"{name.replace('_', ' ')} {why}")
    header = msg["header"]
    msg_type, msg_id = header.get("msg_type"), header.get("msg_id")
    msg["msg_type"] = msg_type if isinstance(msg_type, str) else ""
    msg["msg_id"] = msg_id if isinstance(msg_id, str) else ""
    msg["buffers"] = [memoryview(bytes(b)) for b in parts[5:]]
    msg["raw"] = raw
    return msg, ", ".join(wrong) or "missing fields"
