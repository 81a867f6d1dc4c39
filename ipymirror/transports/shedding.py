"""Shedding a backlog a display cannot keep up with: whole stream lines, counted.

IOPub is lossless on our side, so when a peer's output outruns this process (a
flood on a CPU-starved machine: the kernel's two threads get more of the CPU
than our one) the unread messages wait inside ZMQ, about 2.8 KB each, without
bound.  A display (console, watch) would rather show fewer lines and say how
many than grow: once :data:`BACKLOG` messages wait, the stream messages among
them that hold whole lines are dropped before they are decoded.  Telling one
apart costs about half of decoding it, and the pipeline and the screen are spared
too, so shedding catches up with the kernel (``benchmarks/decode_bench.py``).

Kept always: every other message (status, results, errors, displays, input),
and a stream message that ends a line begun before it or leaves one open, so no
shown line is ever a splice of two.  A recorder and a relay never shed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["BACKLOG", "Shedder"]

BACKLOG = 8192  # messages waiting at once: from here on this process is behind
MAX_OPEN = 1024  # streams remembered as ending mid-line (oldest forgotten)


class Shedder:
    """Decides, message by message, what a display that is behind may drop.

    It reads as little as it can: the header and parent by pattern (their JSON is
    flat), only the content parsed.  It checks no signature: only the kernel
    publishes on IOPub, and code in the kernel can sign whatever it likes.
    """

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], None] = {}  # (cell, stream) ending mid-line
        self.lines = 0  # lines dropped and not yet told (see take)

    def saw(self, msg: Mapping[str, Any]) -> None:
        """A message that is shown: note whether its stream text left a line open."""
        if msg.get("msg_type") == "stream":
            content, parent = msg.get("content"), msg.get("parent_header")
            if isinstance(content, Mapping) and isinstance(parent, Mapping):
                self._note(
                    (str(parent.get("msg_id")), str(content.get("name"))), content.get("text")
                )

    def sheds(self, parts: list[bytes]) -> bool:
        """Whether to drop the message of ``parts`` (signature, header, parent,
        metadata, content): a stream message of whole lines, counted."""
        if len(parts) < 5 or _STREAM.search(parts[1]) is None:
            return False
        try:
            content = json.loads(parts[4])
            found = _MSG_ID.search(parts[2])
            cell = json.loads(found.group(1)) if found else None
        except (ValueError, RecursionError):
            return False  # the full decode judges it
        return self._whole_lines(cell, content)

    def sheds_msg(self, msg: Mapping[str, Any]) -> bool:
        """:meth:`sheds` for a message already decoded (a websocket frame is
        decoded whole, to know its channel)."""
        if msg.get("msg_type") != "stream":
            return False
        parent = msg.get("parent_header")
        cell = parent.get("msg_id") if isinstance(parent, Mapping) else None
        return self._whole_lines(cell, msg.get("content"))

    def _whole_lines(self, cell: object, content: object) -> bool:
        if not isinstance(content, dict) or not isinstance(text := content.get("text"), str):
            return False
        key = (str(cell), str(content.get("name")))
        if key in self._open or not text.endswith("\n"):
            self._note(key, text)
            return False
        self.lines += text.count("\n")
        return True

    def notice(self) -> str | None:
        """What to tell of the lines dropped since the last call, if any were."""
        lines, self.lines = self.lines, 0
        return f"… {lines:,} lines not shown: this mirror could not keep up" if lines else None

    def _note(self, key: tuple[str, str], text: object) -> None:
        if not isinstance(text, str) or not text:
            return
        if text.endswith("\n"):
            self._open.pop(key, None)
            return
        self._open[key] = None
        if len(self._open) > MAX_OPEN:
            del self._open[next(iter(self._open))]


_STREAM = re.compile(rb'"msg_type"\s*:\s*"stream"')
_MSG_ID = re.compile(rb'"msg_id"\s*:\s*("(?:[^"\\]|\\.)*")')
