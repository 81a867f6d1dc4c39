"""What a shedding display handed on and what it said it dropped: the two
live shedding tests (over ZMQ and over a Jupyter Server) read them alike."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

SHED = re.compile(r"… ([\d,]+) lines not shown: this mirror could not keep up")


async def printed_by(batches: AsyncIterator[list[dict[str, Any]]], cell: str) -> list[str]:
    """The stream texts of ``cell`` handed on, up to its idle."""
    shown: list[str] = []
    async for batch in batches:
        for msg in batch:
            if msg["parent_header"].get("msg_id") != cell:
                continue
            if msg["msg_type"] == "stream":
                shown.append(msg["content"]["text"])
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                return shown
    raise AssertionError("IOPub ended")


def lines_counted(notices: Iterable[str]) -> int:
    """The lines the notices say were dropped; every notice must be one of those."""
    told = [SHED.fullmatch(n) for n in notices]
    assert told and all(told), notices
    return sum(int(m.group(1).replace(",", "")) for m in told if m)
