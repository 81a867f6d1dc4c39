"""The Recorder sink on the pipeline, in process: counts, timing, write errors."""

from __future__ import annotations

import io
import json
import os

import pytest
from recording_support import KERNEL_INFO, cell_messages, run_ipymirror, stdout

from ipymirror.commands.record import NoTranscript, Recorder
from ipymirror.core.pipeline import Pipeline
from ipymirror.core.render import Renderer
from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.recording.files import read_recording


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingPipeline(Pipeline):
    """Keeps the committed text of every update, to prove nothing is shown."""

    out: io.StringIO

    def feed(self, msgs):  # type: ignore[override]
        update = super().feed(msgs)
        self.out.write("".join(update.lines))
        return update


def recording_mirror(recorder: Recorder) -> tuple[Pipeline, io.StringIO]:
    renderer = Renderer(color=False)  # what `ipymirror record` does: nothing rendered
    pipeline = RecordingPipeline(renderer, transcript=NoTranscript(renderer))
    pipeline.out = io.StringIO()
    pipeline.sinks.append(recorder.write)
    return pipeline, pipeline.out


def test_sink_records_every_message_with_its_time(tmp_path):
    path = tmp_path / "r.ipym"
    recorder = Recorder.create(str(path), KERNEL_INFO, "python3")
    clock = Clock()
    recorder.clock, recorder.start = clock, clock.now
    mirror, out = recording_mirror(recorder)
    first = cell_messages("print(1)", [stdout("1\n")], 1)
    second = cell_messages("print(2)", [stdout("2\n")], 2, username="bob", session="b0b")
    clock.now += 1.5
    mirror.feed(first)
    clock.now += 2.0
    mirror.feed(second)
    recorder.close()
    assert out.getvalue() == ""  # nothing rendered, nothing shown
    assert (recorder.messages, recorder.cells) == (8, 2)
    assert recorder.status(mirror.presence).startswith("● rec 8 messages │ 2 cells │ 2 peers │ ")
    header, records = read_recording(str(path))
    assert header.kernel["name"] == "python3"
    got = list(records)
    assert [r.msg["msg_id"] for r in got] == [m["msg_id"] for m in first + second]
    assert [r.t for r in got] == [1.5] * 4 + [3.5] * 4
    assert recorder.bytes == path.stat().st_size  # header included


def test_a_write_error_stops_the_recording_and_says_so_once(tmp_path):
    path = tmp_path / "r.ipym"
    said: list[str] = []
    recorder = Recorder.create(str(path), KERNEL_INFO, on_error=said.append)
    mirror, _ = recording_mirror(recorder)
    mirror.feed(cell_messages("print(1)", [stdout("1\n")], 1))
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, recorder.writer.fd)  # the disk fills up
    os.close(full)
    mirror.feed(cell_messages("print(2)", [stdout("2\n")] * 5, 2))
    mirror.feed(cell_messages("print(3)", [], 3))
    assert recorder.messages == 4
    assert len(said) == 1 and "No space left on device" in said[0]
    assert recorder.error is not None
    recorder.close()


def test_create_refuses_existing_files_and_reports_unwritable_ones(tmp_path):
    existing = tmp_path / "old.ipym"
    existing.write_text("x")
    with pytest.raises(MirrorError, match="already exists") as info:
        Recorder.create(str(existing), KERNEL_INFO)
    assert info.value.status == ExitStatus.RECORDING
    with pytest.raises(MirrorError, match="is a directory"):
        Recorder.create(str(tmp_path), KERNEL_INFO)
    with pytest.raises(MirrorError, match="No such file or directory") as info:
        Recorder.create(str(tmp_path / "missing" / "r.ipym"), KERNEL_INFO)
    assert info.value.status == ExitStatus.RECORDING
    empty = tmp_path / "empty.ipym"
    empty.touch()  # an empty file (mktemp) is fine
    Recorder.create(str(empty), KERNEL_INFO).close()
    assert json.loads(empty.read_text())["ipymirror_recording"] == 1


def test_record_to_a_full_disk_is_one_line_and_exit_6(kernel):
    proc = run_ipymirror("record", "/dev/full", "--existing", kernel.connection_file)
    assert proc.returncode == 6
    assert (
        proc.stderr
        == "ipymirror: error: cannot write recording /dev/full: No space left on device\n"
    )
