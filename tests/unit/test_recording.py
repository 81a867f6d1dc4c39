"""The recording codec (docs/recording-format.md): lines, header, files, damage."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import UTC, datetime

import pytest
from recording_support import (
    KERNEL_INFO,
    cell_messages,
    run_ipymirror,
    stdout,
    write_recording,
)

from ipymirror.cli import main
from ipymirror.core.events import Stream
from ipymirror.core.protocol import to_event
from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.recording import files as recording
from ipymirror.recording.files import RecordingWriter, read_recording
from ipymirror.recording.format import (
    Record,
    RecordError,
    decode_header,
    decode_record,
    encode_record,
    header_record,
)


def live_message() -> dict:
    """A message as jupyter_client's Session.deserialize returns it: datetimes, memoryviews."""
    when = datetime(2026, 11, 25, 13, 2, 11, 48123, tzinfo=UTC)
    return {
        "header": {"msg_id": "k_7", "msg_type": "stream", "session": "k", "date": when},
        "msg_id": "k_7",
        "msg_type": "stream",
        "parent_header": {"msg_id": "req", "session": "peer", "username": "bob", "date": when},
        "metadata": {},
        "content": {"name": "stdout", "text": "héllo ☃ 日本\n"},
        "buffers": [memoryview(b"\x00\x01binary\xff")],
    }


def test_round_trip_keeps_the_message_shape():
    line = encode_record(live_message(), 1.25)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    obj = json.loads(line)
    assert obj["t"] == 1.25 and obj["channel"] == "iopub" and obj["msg_type"] == "stream"
    assert obj["header"]["date"] == "2026-11-25T13:02:11.048123Z"
    assert "héllo ☃ 日本" in line.decode("utf-8")  # readable, not \u-escaped

    record = decode_record(line)
    assert isinstance(record, Record)
    assert (record.t, record.channel, record.msg_type, record.parent_id) == (
        1.25,
        "iopub",
        "stream",
        "req",
    )
    assert set(record.msg) == {
        "header",
        "msg_id",
        "msg_type",
        "parent_header",
        "metadata",
        "content",
        "buffers",
    }
    assert record.msg["buffers"] == [b"\x00\x01binary\xff"]
    ev = to_event(record.msg)
    assert isinstance(ev, Stream)
    assert (ev.peer.username, ev.peer.session, ev.text) == ("bob", "peer", "héllo ☃ 日本\n")
    assert decode_record(line.decode()) == record  # str works as well as bytes


def test_lone_surrogates_are_escaped_not_fatal():
    msg = live_message()
    msg["content"]["text"] = "bad \ud800 half"
    line = encode_record(msg, 0.5)
    line.decode("utf-8")  # valid UTF-8
    assert decode_record(line).msg["content"]["text"] == "bad \ud800 half"


def test_header_is_an_allow_list():
    info = dict(KERNEL_INFO, key="s3cret", shell_port=50001, ip="127.0.0.1", transport="tcp")
    started = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    line = header_record(info, "python3", started=started, version="9.9")
    obj = json.loads(line)
    assert set(obj) == {"ipymirror_recording", "version", "started", "kernel"}
    assert obj["ipymirror_recording"] == 1 and obj["version"] == "9.9"
    assert obj["started"] == "2026-01-02T03:04:05.678Z"
    assert set(obj["kernel"]) == {
        "name",
        "language_info",
        "implementation",
        "implementation_version",
        "protocol_version",
        "banner",
    }
    assert b"s3cret" not in line and b"50001" not in line and b"127.0.0.1" not in line
    header = decode_header(line)
    assert (header.language, header.lexer, header.kernel["name"]) == (
        "python",
        "ipython3",
        "python3",
    )
    assert header.started_at == started
    assert header.describe() == "python kernel (ipython)"


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b"not json\n", "not JSON"),
        (b"[1, 2]\n", "not an object"),
        (b'{"t": -1, "header": {"msg_type": "x"}, "content": {}}\n', "not a time"),
        (b'{"t": "1", "header": {"msg_type": "x"}, "content": {}}\n', "not a time"),
        (b'{"t": true, "header": {"msg_type": "x"}, "content": {}}\n', "not a time"),
        (b'{"t": 1, "content": {}}\n', "'header'"),
        (b'{"t": 1, "header": {"msg_type": "x"}, "content": []}\n', "'content'"),
        (b'{"t": 1, "header": {}, "content": {}}\n', "msg_type"),
        (b'{"t": 1, "header": {"msg_type": "x"}, "content": {}, "buffers": ["@@"]}\n', "base64"),
        (b'{"ipymirror_recording": 1}\n', "second header"),
    ],
)
def test_decode_record_rejects(line, why):
    with pytest.raises(RecordError, match=why):
        decode_record(line)


def test_decode_header_rejects_foreign_and_future_files():
    with pytest.raises(RecordError, match="no ipymirror_recording"):
        decode_header(b'{"version": 2, "width": 80, "height": 24}\n')  # an asciicast
    with pytest.raises(RecordError, match="format version 2"):
        decode_header(b'{"ipymirror_recording": 2}\n')


# --------------------------------------------------------------------- files


def records_of(n: int = 3) -> list[dict]:
    return cell_messages("print('hi')", [stdout("hi\n")] * n, 1)


@pytest.mark.parametrize("name", ["s.ipym", "s.ipym.gz"])
def test_writer_and_reader_round_trip(tmp_path, name):
    msgs = records_of()
    path = write_recording(tmp_path / name, [(i / 10, m) for i, m in enumerate(msgs)])
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    if name.endswith(".gz"):
        assert gzip.decompress(raw).count(b"\n") == len(msgs) + 1  # a valid, closed gzip file
    warnings: list[str] = []
    header, records = read_recording(str(path), warn=warnings.append)
    assert header.kernel["name"] == "python3"
    got = list(records)
    assert [r.msg["msg_id"] for r in got] == [m["msg_id"] for m in msgs]
    assert [r.t for r in got] == [i / 10 for i in range(len(msgs))]
    assert warnings == []


def test_compression_is_detected_by_content_not_name(tmp_path):
    path = tmp_path / "plain-name.ipym"
    with RecordingWriter(str(path), compress=True) as w:
        w.write_line(header_record(KERNEL_INFO))
        w.write(records_of()[0], 0.0)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    _, records = read_recording(str(path))
    assert len(list(records)) == 1


def test_each_line_is_one_write(tmp_path, monkeypatch):
    writes: list[bytes] = []
    real = recording.os.write

    def spy(fd, data):
        writes.append(bytes(data))
        return real(fd, data)

    monkeypatch.setattr(recording.os, "write", spy)
    with RecordingWriter(str(tmp_path / "a.ipym")) as w:
        for msg in records_of():
            w.write(msg, 0.0)
    assert len(writes) == len(records_of()) and all(d.endswith(b"\n") for d in writes)


def test_gzip_without_trailer_reads_whole_without_warning(tmp_path):
    """What a killed recorder leaves: every line sync-flushed, no gzip trailer."""
    path = tmp_path / "killed.ipym.gz"
    msgs = records_of(50)
    w = RecordingWriter(str(path))
    w.write_line(header_record(KERNEL_INFO))
    for msg in msgs:
        w.write(msg, 0.0)
    recording.os.close(w.fd)  # no close(): no Z_FINISH, as after SIGKILL
    assert path.read_bytes().endswith(recording.SYNC_MARK)
    warnings: list[str] = []
    _, records = read_recording(str(path), warn=warnings.append)
    assert len(list(records)) == len(msgs)
    assert warnings == []
    # Cut into the last line's compressed bytes: that line is torn.
    path.write_bytes(path.read_bytes()[:-7])
    _, records = read_recording(str(path), warn=warnings.append)
    got = list(records)
    assert len(msgs) - 1 <= len(got) < len(msgs) + 1
    assert len(warnings) == 1 and "cut short" in warnings[0]


def test_concatenated_gzip_members(tmp_path):
    one = tmp_path / "one.ipym.gz"
    write_recording(one, [(0.0, m) for m in records_of(1)])
    extra = zlib.compressobj(6, zlib.DEFLATED, 31)
    tail = encode_record(records_of(1)[0], 9.0)
    one.write_bytes(one.read_bytes() + extra.compress(tail) + extra.flush())
    _, records = read_recording(str(one))
    got = list(records)
    assert len(got) == len(records_of(1)) + 1 and got[-1].t == 9.0


def test_utf8_split_across_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(recording, "CHUNK", 7)  # every multi-byte character gets split somewhere
    msg = cell_messages("print('☃')", [stdout("☃ 日本語 ünïcödé\n" * 3)], 1)
    for name in ("u.ipym", "u.ipym.gz"):
        path = write_recording(tmp_path / name, [(0.0, m) for m in msg])
        _, records = read_recording(str(path))
        texts = [r.msg["content"].get("text") for r in records if r.msg_type == "stream"]
        assert texts == ["☃ 日本語 ünïcödé\n" * 3]


def test_torn_last_line_is_skipped_with_one_warning(tmp_path):
    msgs = records_of()
    path = write_recording(tmp_path / "t.ipym", [(0.0, m) for m in msgs])
    with open(path, "ab") as f:
        f.write(encode_record(msgs[0], 5.0)[:40])
    warnings: list[str] = []
    _, records = read_recording(str(path), warn=warnings.append)
    assert len(list(records)) == len(msgs)
    assert len(warnings) == 1 and f"line {len(msgs) + 2}" in warnings[0]


def test_whole_last_line_without_newline_is_kept(tmp_path):
    msgs = records_of()
    path = write_recording(tmp_path / "t.ipym", [(0.0, m) for m in msgs])
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    warnings: list[str] = []
    _, records = read_recording(str(path), warn=warnings.append)
    assert len(list(records)) == len(msgs) and warnings == []


def test_blank_lines_are_ignored(tmp_path):
    path = write_recording(tmp_path / "b.ipym", [(0.0, m) for m in records_of()])
    path.write_bytes(path.read_bytes().replace(b"\n", b"\n\n", 2))
    _, records = read_recording(str(path))
    assert len(list(records)) == len(records_of())


HEADER = header_record(KERNEL_INFO).decode()
GOOD = encode_record(records_of()[0], 0.0).decode()

BAD_FILES = {
    "empty": b"",
    "text": b"hello world\n",
    "json-not-header": b'{"t": 0, "header": {"msg_type": "x"}, "content": {}}\n',
    "asciicast": b'{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "hi"]\n',
    "binary": bytes(range(256)) * 4,
    "future-version": b'{"ipymirror_recording": 7}\n',
    "bad-middle": f"{HEADER}{GOOD}{{oops\n{GOOD}".encode(),
    "not-object-middle": f"{HEADER}{GOOD}[1]\n{GOOD}".encode(),
    "gzip-garbage": b"\x1f\x8b\x08\x00" + bytes(range(200)),
    "gzip-of-text": gzip.compress(b"hello\n"),
    "torn-header": HEADER[:20].encode(),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_foreign_or_corrupt_files_raise_recording_errors(tmp_path, kind):
    path = tmp_path / f"{kind}.ipym"
    path.write_bytes(BAD_FILES[kind])
    with pytest.raises(MirrorError) as info:
        _, records = read_recording(str(path), warn=lambda text: None)
        list(records)
    assert info.value.status == ExitStatus.RECORDING
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    if kind.endswith("middle"):
        assert "line 3" in str(info.value)


def test_missing_file_is_a_recording_error(tmp_path):
    with pytest.raises(MirrorError, match="cannot read recording") as info:
        read_recording(str(tmp_path / "nope.ipym"))
    assert info.value.status == ExitStatus.RECORDING


@pytest.mark.parametrize("kind", ["empty", "asciicast", "bad-middle", "gzip-garbage"])
@pytest.mark.parametrize("command", [["replay", "--no-wait"], ["export", "--to", "ipynb"]])
def test_cli_says_one_line_and_exits_6(tmp_path, capsys, kind, command):
    path = tmp_path / f"{kind}.ipym"
    path.write_bytes(BAD_FILES[kind])
    rc = main([command[0], str(path), *command[1:]])
    err = capsys.readouterr().err
    if (kind, command[0]) == ("bad-middle", "export"):  # export leaves one bad line out
        assert rc == 0 and err.count("\n") == 1, err
        assert err.startswith("ipymirror: warning: ") and ": line 3: a corrupt record" in err
        return
    assert rc == 6
    assert err.startswith("ipymirror: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / f"{kind}.ipynb").exists()  # no half-written export


@pytest.mark.e2e  # runs ipymirror as a process
def test_cli_error_in_a_real_process_has_no_traceback(tmp_path):
    path = tmp_path / "foreign.ipym"
    path.write_text("just some text\n")
    for args in (["replay", str(path), "--no-wait"], ["export", str(path), "--to", "html"]):
        proc = run_ipymirror(*args)
        assert proc.returncode == 6
        assert proc.stderr.startswith("ipymirror: error: ") and proc.stderr.count("\n") == 1
        assert "Traceback" not in proc.stderr and proc.stdout == ""
