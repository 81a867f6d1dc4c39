"""The two framings of a Jupyter Server's kernel websocket.  Pure: bytes in, bytes out.

* ``v1.kernel.websocket.jupyter.org`` (binary; jupyter_server >= 2 and JupyterLab
  >= 3.6 offer it): ``n`` as 8-byte little-endian, then ``n`` offsets (8 bytes
  each, from the frame's start), then the channel name and the message parts
  (header, parent_header, metadata, content, buffers...) back to back; offset
  ``i`` starts item ``i`` and the last offset is the frame's end.  The parts are
  the kernel's own bytes: the server relays them unparsed.
* Legacy (no subprotocol): one JSON text frame per message with a ``channel``
  key; a message with buffers is a binary frame: ``nbufs`` as 4-byte big-endian,
  ``nbufs`` offsets (4 bytes each), the JSON, then the buffers.

Decoding validates every offset: a frame that does not parse raises
:class:`FrameError` (never IndexError or a half message).  Decoded messages have
the shape of jupyter_client's ``Session.deserialize`` (header dates stay strings).
"""

from __future__ import annotations

import itertools
import json
import struct
from collections.abc import Sequence
from typing import Any

from jupyter_client.jsonutil import json_default

__all__ = [
    "SUBPROTOCOL",
    "FrameError",
    "decode",
    "decode_legacy",
    "decode_v1",
    "encode",
    "encode_legacy",
    "encode_v1",
    "message_from_parts",
]

SUBPROTOCOL = "v1.kernel.websocket.jupyter.org"
MAX_PARTS = 1 << 16  # offsets in one frame: far above any real message

Message = dict[str, Any]


class FrameError(ValueError):
    """A websocket frame that is not a kernel message."""


def _dumps(value: Any) -> bytes:
    return json.dumps(value, default=json_default, ensure_ascii=False, allow_nan=False).encode()


def encode_v1(channel: str, parts: Sequence[bytes]) -> bytes:
    """A v1 frame of ``channel`` and message ``parts`` (already serialised)."""
    name = channel.encode()
    n = len(parts) + 2
    offsets = [8 * (n + 1)]
    offsets.append(offsets[-1] + len(name))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = struct.pack(f"<{n + 1}Q", n, *offsets)
    return b"".join([head, name, *parts])


def decode_v1(frame: bytes) -> tuple[str, list[bytes]]:
    """(channel, parts) of a v1 frame."""
    if len(frame) < 8:
        raise FrameError("v1 frame shorter than its header")
    (n,) = struct.unpack_from("<Q", frame)
    if not 2 <= n <= MAX_PARTS or len(frame) < 8 * (n + 1):
        raise FrameError(f"v1 frame with a bad offset count ({n})")
    offsets = struct.unpack_from(f"<{n}Q", frame, 8)
    if offsets[0] != 8 * (n + 1) or offsets[-1] > len(frame):
        raise FrameError("v1 frame offsets point outside the frame")
    if any(b < a for a, b in itertools.pairwise(offsets)):
        raise FrameError("v1 frame offsets go backwards")
    ends = [*offsets, len(frame)]
    try:
        channel = frame[ends[0] : ends[1]].decode()
    except UnicodeDecodeError:
        raise FrameError("v1 frame channel is not text") from None
    return channel, [frame[ends[i] : ends[i + 1]] for i in range(1, n - 1)]


def message_from_parts(parts: Sequence[bytes]) -> Message:
    """A message dict from (header, parent_header, metadata, content, *buffers)."""
    if len(parts) < 4:
        raise FrameError(f"a message has 4 parts, not {len(parts)}")
    try:
        header, parent, metadata, content = (json.loads(p) for p in parts[:4])
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"message part is not JSON: {exc}") from None
    return _message(header, parent, metadata, content, list(parts[4:]))


def _message(header: Any, parent: Any, metadata: Any, content: Any, buffers: list) -> Message:
    if not isinstance(header, dict):
        raise FrameError("message header is not an object")
    return {
        "header": header,
        "msg_id": header.get("msg_id"),
        "msg_type": header.get("msg_type"),
        "parent_header": parent if isinstance(parent, dict) else {},
        "metadata": metadata if isinstance(metadata, dict) else {},
        "content": content if isinstance(content, dict) else {},
        "buffers": buffers,
    }


def _parts(msg: Message) -> list[bytes]:
    return [
        _dumps(msg.get("header") or {}),
        _dumps(msg.get("parent_header") or {}),
        _dumps(msg.get("metadata") or {}),
        _dumps(msg.get("content") or {}),
        *(bytes(b) for b in msg.get("buffers") or ()),
    ]


def encode_legacy(channel: str, msg: Message) -> str | bytes:
    """A legacy frame: JSON text, or the binary layout when ``msg`` has buffers."""
    body = {k: msg.get(k) or {} for k in ("header", "parent_header", "metadata", "content")}
    body["channel"] = channel
    buffers = [bytes(b) for b in msg.get("buffers") or ()]
    if not buffers:
        return _dumps(body).decode()
    blobs = [_dumps(body), *buffers]
    offsets = [4 * (len(blobs) + 1)]
    for blob in blobs[:-1]:
        offsets.append(offsets[-1] + len(blob))
    return struct.pack(f"!{len(blobs) + 1}I", len(blobs), *offsets) + b"".join(blobs)


def decode_legacy(frame: str | bytes) -> tuple[str, Message]:
    """(channel, message) of a legacy frame."""
    buffers: list[bytes] = []
    if isinstance(frame, bytes):
        if len(frame) < 4:
            raise FrameError("legacy binary frame shorter than its header")
        (n,) = struct.unpack_from("!I", frame)
        if not 1 <= n <= MAX_PARTS or len(frame) < 4 * (n + 1):
            raise FrameError(f"legacy binary frame with a bad buffer count ({n})")
        offsets = [*struct.unpack_from(f"!{n}I", frame, 4), len(frame)]
        if any(b < a for a, b in itertools.pairwise(offsets)) or offsets[0] < 4 * (n + 1):
            raise FrameError("legacy binary frame offsets are out of order")
        blobs = [frame[offsets[i] : offsets[i + 1]] for i in range(n)]
        text: str | bytes = blobs[0]
        buffers = blobs[1:]
    else:
        text = frame
    try:
        body = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"legacy frame is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise FrameError("legacy frame is not a JSON object")
    channel = body.get("channel")
    msg = _message(
        body.get("header"),
        body.get("parent_header"),
        body.get("metadata"),
        body.get("content"),
        buffers,
    )
    return channel if isinstance(channel, str) else "shell", msg


def encode(protocol: str | None, channel: str, msg: Message) -> str | bytes:
    """A frame for ``msg`` in the framing the server chose (``protocol``)."""
    if protocol == SUBPROTOCOL:
        return encode_v1(channel, _parts(msg))
    return encode_legacy(channel, msg)


def decode(protocol: str | None, frame: str | bytes) -> tuple[str, Message]:
    """(channel, message) of a frame in the framing the server chose."""
    if protocol == SUBPROTOCOL:
        if not isinstance(frame, bytes):
            raise FrameError("a text frame on the v1 protocol")
        channel, parts = decode_v1(frame)
        return channel, message_from_parts(parts)
    return decode_legacy(frame)
