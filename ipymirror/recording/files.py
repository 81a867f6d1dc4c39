"""Recording files: the writer (one write(2) per line, optional gzip) and the reader.

The reader survives what a crash leaves: a torn last line (plain or gzip) costs
that line and one warning, never the recording.  The codec is
:mod:`ipymirror.recording.format`.
"""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.recording.format import (
    CHUNK,
    GZIP_MAGIC,
    SYNC_MARK,
    Header,
    Record,
    RecordError,
    decode_header,
    decode_record,
    encode_checked,
)

__all__ = ["RecordingWriter", "Records", "read_recording"]


class RecordingWriter:
    """Append lines to a recording, each in one write(2), nothing buffered.

    ``compress`` (default: the name ends in ``.gz``) writes one gzip member
    whose every line is sync-flushed; :meth:`close` writes its trailer.
    """

    def __init__(self, path: str, *, compress: bool | None = None) -> None:
        self.path = path
        if compress is None:
            compress = path.endswith(".gz")
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self.fd = os.open(path, flags, 0o644)
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31) if compress else None
        self.lines = 0
        self.bytes = 0  # bytes of JSON written (before compression)
        self.raw = 0  # messages written with a part kept raw (see format.encode_checked)

    def write_line(self, line: bytes) -> None:
        """Write one complete line (ending in a newline).  Raises OSError."""
        z = self._z
        data = line if z is None else z.compress(line) + z.flush(zlib.Z_SYNC_FLUSH)
        self._write(data)
        self.lines += 1
        self.bytes += len(line)

    def write(self, msg: Mapping[str, Any], t: float, channel: str = "iopub") -> int:
        line, raw = encode_checked(msg, t, channel)
        self.write_line(line)
        self.raw += raw
        return len(line)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def close(self) -> None:
        if self.fd < 0:
            return
        try:
            if self._z is not None:
                self._write(self._z.flush(zlib.Z_FINISH))
        finally:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Torn(Exception):
    """The data ended in the middle of a line."""


def _plain_chunks(f: Any, first: bytes) -> Iterator[bytes]:
    yield first
    while chunk := f.read(CHUNK):
        yield chunk


def _gzip_chunks(f: Any, first: bytes) -> Iterator[bytes]:
    """Decompressed data of every gzip member; raises _Torn if cut short mid-line."""
    d = zlib.decompressobj(31)
    tail = b""
    data = first
    while data:
        tail = (tail + data)[-len(SYNC_MARK) :]
        while data:
            yield d.decompress(data)
            if not d.eof:
                break
            data = d.unused_data  # another member follows (an appended file)
            d = zlib.decompressobj(31)
            if not data:
                tail = b""  # the member ended cleanly here
        data = f.read(CHUNK)
    if not d.eof and tail and tail != SYNC_MARK:
        yield d.flush()
        raise _Torn


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Split into lines (newline kept); a last line without one is yielded as is."""
    rest = b""
    for chunk in chunks:
        if not chunk:
            continue
        rest += chunk
        if b"\n" not in chunk:
            continue
        *whole, rest = rest.split(b"\n")
        for line in whole:
            yield line + b"\n"
    if rest:
        yield rest


def read_recording(
    path: str,
    *,
    warn: Callable[[str], None] | None = None,
    skip: Callable[[int, str], None] | None = None,
) -> tuple[Header, Records]:
    """Open a recording: its header now, its records lazily (in file order).

    ``warn`` is called once if the last line is torn (default: print
    ``ipymirror: warning: ...`` to stderr).  A foreign, empty or corrupt file
    raises :class:`MirrorError` with :attr:`ExitStatus.RECORDING`, the header's
    problems here, a bad line's while iterating -- unless ``skip`` is given:
    then a bad line is skipped and ``skip(line number, why)`` told.
    :attr:`Records.line` is the line number of the record last returned.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 -- the records iterator closes it
    except OSError as exc:
        raise MirrorError(
            f"cannot read recording {path}: {exc.strerror or exc}", ExitStatus.RECORDING
        ) from None
    try:
        first = f.read(CHUNK)
        if not first:
            raise _fail(path, "", "empty file, not an ipymirror recording")
        chunks = _gzip_chunks(f, first) if first[:2] == GZIP_MAGIC else _plain_chunks(f, first)
        lines = enumerate(_lines(chunks), 1)
        header = _read_header(path, lines)
    except BaseException:
        f.close()
        raise
    return header, Records(f, _records(path, f, lines, warn or _warn_stderr, skip))


class Records(Iterator[Record]):
    """The records of an open recording, in file order; closes the file when done."""

    def __init__(self, f: Any, records: Iterator[tuple[int, Record]]) -> None:
        self._f = f
        self._records = records
        self.line = 0

    def __next__(self) -> Record:
        self.line, record = next(self._records)
        return record

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Records:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self._f.close()


def _fail(path: str, where: str, why: str) -> MirrorError:
    return MirrorError(f"{path}: {where}{why}", ExitStatus.RECORDING)


def _read_header(path: str, lines: Iterator[tuple[int, bytes]]) -> Header:
    number = 0
    try:
        for number, line in lines:  # noqa: B007 -- the handlers use number
            if line.strip():
                return decode_header(line)
    except RecordError as exc:
        raise _fail(path, f"line {number}: ", f"not an ipymirror recording ({exc})") from None
    except (_Torn, zlib.error, OSError) as exc:
        why = "cut short" if isinstance(exc, _Torn) else str(exc)
        raise _fail(path, "", f"unreadable, no header ({why})") from None
    raise _fail(path, "", "no header, not an ipymirror recording")


def _warn_stderr(text: str) -> None:
    print(f"ipymirror: warning: {text}", file=sys.stderr)


def _records(
    path: str,
    f: Any,
    lines: Iterator[tuple[int, bytes]],
    warn: Callable[[str], None],
    skip: Callable[[int, str], None] | None,
) -> Iterator[tuple[int, Record]]:
    torn = "the last line is incomplete (the recording was cut short); it was skipped"
    number = 1
    try:
        for number, line in lines:
            if not line.strip():
                continue
            try:
                record = decode_record(line)
            except RecordError as exc:
                if not line.endswith(b"\n"):
                    warn(f"{path}: line {number}: {torn}")
                    return
                if skip is None:
                    raise _fail(path, f"line {number}: ", f"corrupt recording ({exc})") from None
                skip(number, f"a corrupt record ({exc})")
                continue
            yield number, record
    except _Torn:
        warn(f"{path}: after line {number}: {torn}")
    except (zlib.error, OSError) as exc:
        raise _fail(path, f"after line {number}: ", f"unreadable ({exc})") from None
    finally:
        f.close()
