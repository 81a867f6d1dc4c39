"""The recording format: one codec for files, replay, export and the relay's wire.

Specified in ``docs/recording-format.md``.  Pure: the file I/O (writer,
reader, gzip, torn lines) is :mod:`ipymirror.recording.files`.
Rules this codec and its files keep:

* A line is one JSON object and a newline.  The writer hands each complete
  line to the OS in one ``write(2)`` (gzip: compressed and sync-flushed first),
  so a crash tears at most the last line.
* The header comes from an allow-list of ``kernel_info_reply`` fields: the
  connection key, ports and paths can never be written.
* Reading, a torn last line costs that line and one warning; any other bad
  line is a :class:`RecordError` (a :class:`MirrorError` with the file name and
  line number from :func:`read_recording`).
* A message whose ``content`` is still the kernel's signed JSON bytes (the
  relay does not parse it) is written with those bytes as they are.
* Encoding never fails: a part of a message that JSON cannot hold as it is
  (nested deeper than Python recurses) is written as JSON *text* under
  ``raw`` and the part itself as ``{}``, as is every part of a malformed
  message the transport delivered raw; :func:`encode_checked` tells which.
"""

from __future__ import annotations

import binascii
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from jupyter_client.jsonutil import json_default

from ipymirror import __version__
from ipymirror.core.protocol import kernel_description, kernel_language

__all__ = [
    "FORMAT_VERSION",
    "Header",
    "Record",
    "RecordError",
    "decode_header",
    "decode_record",
    "encode_checked",
    "encode_record",
    "header_record",
    "iopub",
]

FORMAT_VERSION = 1
MAGIC = "ipymirror_recording"
GZIP_MAGIC = b"\x1f\x8b"
SYNC_MARK = b"\x00\x00\xff\xff"  # what Z_SYNC_FLUSH ends every flushed line with

#: kernel_info_reply fields copied into the header.  An allow-list on purpose.
KERNEL_FIELDS = (
    "language_info",
    "implementation",
    "implementation_version",
    "protocol_version",
    "banner",
    "help_links",
)

CHUNK = 256 * 1024  # bytes read at a time


class RecordError(ValueError):
    """A line that is not a valid record (or header)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded message: ``t`` seconds after the start, on ``channel``.

    ``msg`` has the shape of ``Session.deserialize``'s result (header dates
    stay ISO strings), so ``protocol.to_event(record.msg)`` works on it.
    """

    t: float
    channel: str
    msg: dict[str, Any]

    @property
    def msg_type(self) -> str:
        return self.msg["msg_type"]

    @property
    def parent_id(self) -> str:
        parent = self.msg["parent_header"]
        value = parent.get("msg_id") if isinstance(parent, Mapping) else None
        return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class Header:
    """The first line of a recording."""

    format: int
    version: str
    started: str
    kernel: Mapping[str, Any] = field(default_factory=dict)

    @property
    def language_info(self) -> Mapping[str, Any]:
        info = self.kernel.get("language_info")
        return info if isinstance(info, Mapping) else {}

    @property
    def language(self) -> str:
        """The language's name (``python``, ``bash``), '' if unknown."""
        name = self.language_info.get("name")
        return name if isinstance(name, str) else ""

    @property
    def lexer(self) -> str:
        """A pygments lexer name for the kernel's code (as KernelLink.language)."""
        return kernel_language(self.kernel)

    @property
    def started_at(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.started.replace("Z", "+00:00"))
        except ValueError:
            return None

    def describe(self) -> str:
        """'python kernel (ipython)', as the console says it."""
        return kernel_description(self.kernel)


# -------------------------------------------------------------------- encode


def _b64(buf: Any) -> str:
    return binascii.b2a_base64(bytes(buf), newline=False).decode("ascii")


def _default(value: Any) -> Any:
    """datetimes, bytes... as jupyter_client writes them; anything else as its repr."""
    try:
        return json_default(value)
    except TypeError:
        return repr(value)


def _dumps(obj: Mapping[str, Any]) -> bytes:
    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_default)
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: UTF-8 cannot hold them, \u escapes can
        return (json.dumps(obj, separators=(",", ":"), default=_default) + "\n").encode()


def encode_record(msg: Mapping[str, Any], t: float, channel: str = "iopub") -> bytes:
    """One message as one line of JSON, newline included."""
    return encode_checked(msg, t, channel)[0]


_PARTS = ("header", "parent_header", "metadata", "content")


def encode_checked(msg: Mapping[str, Any], t: float, channel: str = "iopub") -> tuple[bytes, bool]:
    """:func:`encode_record`, and whether any part of the message had to be kept raw."""
    header = msg.get("header") or {}
    msg_type = msg.get("msg_type")
    if not msg_type and isinstance(header, Mapping):
        msg_type = header.get("msg_type")
    obj: dict[str, Any] = {
        "t": round(t, 6),
        "channel": channel,
        "msg_type": msg_type if isinstance(msg_type, str) else "",
        "header": header,
        "parent_header": msg.get("parent_header") or {},
        "metadata": msg.get("metadata") or {},
        "content": msg.get("content") or {},
        "buffers": [_b64(b) for b in msg.get("buffers") or ()],
    }
    raw = msg.get("raw")
    if isinstance(raw, Mapping) and raw:
        obj["raw"] = {str(k): v if isinstance(v, str) else str(v) for k, v in raw.items()}
    content = msg.get("content")
    if isinstance(content, bytes | memoryview):  # signed JSON, passed on as it is
        del obj["content"]
        try:
            head = _dumps(obj)
        except (RecursionError, ValueError, TypeError):
            head = _dumps({"t": obj["t"], "channel": channel, "msg_type": obj["msg_type"]})
        return head[:-2] + b',"content":' + bytes(content).strip() + b"}\n", False
    try:
        return _dumps(obj), "raw" in obj
    except (RecursionError, ValueError, TypeError):
        pass
    kept = obj.setdefault("raw", {})
    for name in _PARTS:  # only the parts that cannot be written go raw
        try:
            _dumps(obj[name])
        except (RecursionError, ValueError, TypeError):
            kept[name] = _flat_json(obj[name])
            obj[name] = {}
    return _dumps(obj), True


class _Mark:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _flat_json(value: Any) -> str:
    """JSON text of ``value`` without recursion (any depth; cycles as ``null``)."""
    out: list[str] = []
    todo: list[Any] = [value]
    open_ids: set[int] = set()
    while todo:
        item = todo.pop()
        if isinstance(item, _Mark):
            if item.text[:1] in "]}" and item.text[1:]:
                open_ids.discard(int(item.text[1:]))
                out.append(item.text[0])
            else:
                out.append(item.text)
        elif isinstance(item, Mapping | list | tuple):
            if id(item) in open_ids:
                out.append("null")
                continue
            open_ids.add(id(item))
            is_map = isinstance(item, Mapping)
            todo.append(_Mark(("}" if is_map else "]") + str(id(item))))
            entries = list(item.items() if isinstance(item, Mapping) else enumerate(item))
            for i, (key, v) in reversed(list(enumerate(entries))):
                todo.append(v)
                sep = "," if i else ""
                todo.append(_Mark(sep + json.dumps(str(key)) + ":" if is_map else sep))
            out.append("{" if is_map else "[")
        else:
            try:
                out.append(json.dumps(item, ensure_ascii=False, default=_default))
            except (RecursionError, ValueError, TypeError):
                out.append(json.dumps(repr(item)))
    return "".join(out)


def header_record(
    kernel_info: Mapping[str, Any],
    kernel_name: str = "",
    *,
    started: datetime | None = None,
    version: str = __version__,
) -> bytes:
    """The header line for a kernel that answered ``kernel_info`` with ``kernel_info``."""
    kernel: dict[str, Any] = {"name": kernel_name}
    for key in KERNEL_FIELDS:
        if key in kernel_info:
            kernel[key] = kernel_info[key]
    when = (started or datetime.now(UTC)).astimezone(UTC)
    return _dumps(
        {
            MAGIC: FORMAT_VERSION,
            "version": version,
            "started": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "kernel": kernel,
        }
    )


# -------------------------------------------------------------------- decode


def _load(line: bytes | str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8
        raise RecordError(f"not JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise RecordError(f"a JSON {type(obj).__name__}, not an object")
    return obj


def decode_header(line: bytes | str) -> Header:
    obj = _load(line)
    fmt = obj.get(MAGIC)
    if fmt is None:
        raise RecordError("no ipymirror_recording header")
    if fmt != FORMAT_VERSION or isinstance(fmt, bool):
        raise RecordError(f"format version {fmt!r}, this ipymirror reads {FORMAT_VERSION}")
    kernel = obj.get("kernel")
    version, started = obj.get("version"), obj.get("started")
    return Header(
        fmt,
        version if isinstance(version, str) else "",
        started if isinstance(started, str) else "",
        kernel if isinstance(kernel, dict) else {},
    )


def _obj(obj: Mapping[str, Any], key: str, required: bool = False) -> dict[str, Any]:
    value = obj.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"{key!r} is not an object")
    return value


def decode_record(line: bytes | str) -> Record:
    """One line back into a :class:`Record`; :class:`RecordError` if it is not one."""
    obj = _load(line)
    if MAGIC in obj:
        raise RecordError("a second header")
    t = obj.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t) or t < 0:
        raise RecordError(f"'t' is not a time: {t!r}")
    channel = obj.get("channel", "iopub")
    if not isinstance(channel, str):
        raise RecordError("'channel' is not a string")
    header = _obj(obj, "header", required=True)
    content = _obj(obj, "content", required=True)
    msg_type = header.get("msg_type") or obj.get("msg_type")
    if not isinstance(msg_type, str):
        raise RecordError("no msg_type")
    raw = obj.get("buffers") or []
    if not isinstance(raw, list):
        raise RecordError("'buffers' is not a list")
    try:
        buffers = [binascii.a2b_base64(b.encode("ascii"), strict_mode=True) for b in raw]
    except (AttributeError, UnicodeEncodeError, binascii.Error):
        raise RecordError("a buffer is not base64") from None
    msg_id = header.get("msg_id")
    msg = {
        "header": header,
        "msg_id": msg_id if isinstance(msg_id, str) else "",
        "msg_type": msg_type,
        "parent_header": _obj(obj, "parent_header"),
        "metadata": _obj(obj, "metadata"),
        "content": content,
        "buffers": buffers,
    }
    if isinstance(obj.get("raw"), dict):
        msg["raw"] = obj["raw"]  # parts kept as text: readers show or skip them
    return Record(float(t), channel, msg)


def iopub(records: Iterable[Record]) -> Iterator[Record]:
    """The IOPub records only: readers skip channels they do not know (spec)."""
    return (record for record in records if record.channel == "iopub")
