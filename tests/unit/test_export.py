"""``ipymirror export``: notebook, asciicast, HTML, Markdown.

The format tests run over real messages captured from ipykernel
(tests/data/ipykernel_iopub.jsonl); the round trip records a real kernel.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pyte
import pytest
from recording_support import (
    RecorderProcess,
    has_idle,
    run_ipymirror,
    session_recording,
    wait_for_records,
    write_recording,
)

from ipymirror.cli import main
from ipymirror.commands.export import default_output
from ipymirror.core.sanitize import strip_sgr
from ipymirror.recording.files import read_recording
from ipymirror.recording.notebook import notebook_cells, to_notebook

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture
def captured(tmp_path) -> Path:
    """A recording of the captured ipykernel session, 10 ms between messages."""
    msgs = [json.loads(line) for line in (DATA / "ipykernel_iopub.jsonl").read_text().splitlines()]
    return write_recording(tmp_path / "captured.ipym", [(i / 100, m) for i, m in enumerate(msgs)])


def export(path: Path, fmt: str, *extra: str) -> str:
    rc = main(["export", str(path), "--to", fmt, *extra])
    assert rc == 0
    return Path(default_output(str(path), fmt)).read_text(encoding="utf-8")


def test_default_output_names():
    assert default_output("s.ipym", "ipynb") == "s.ipynb"
    assert default_output("dir/s.ipym.gz", "asciicast") == "dir/s.cast"
    assert default_output("s.ipym", "html") == "s.html"
    assert default_output("s.ipym", "markdown") == "s.md"
    assert default_output("noext", "markdown") == "noext.md"


def test_notebook_of_the_captured_session(captured, capsys):
    nb = nbformat.reads(export(captured, "ipynb"), as_version=4)
    assert "wrote" in capsys.readouterr().out
    nbformat.validate(nb)
    cells = nb.cells
    assert [c.execution_count for c in cells] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert cells[0].source == "import sys\nprint('hello')\nprint('oops', file=sys.stderr)"
    assert [(o.name, o.text) for o in cells[0].outputs] == [
        ("stdout", "hello\n"),
        ("stderr", "oops\n"),
    ]
    assert cells[1].outputs[0].output_type == "execute_result"
    assert cells[1].outputs[0].data["text/plain"] == "42"
    assert cells[1].outputs[0].execution_count == 2
    assert cells[3].outputs[0].data["text/markdown"].startswith("# Title")
    assert cells[4].outputs[0].data["application/json"] == {"a": 1, "b": [1, 2]}
    assert "image/png" in cells[5].outputs[0].data
    # update_display_data changes the display where it is, even from a later cell
    assert [o.data["text/markdown"] for o in cells[6].outputs] == ["step 3"]
    assert cells[7].outputs == []
    # clear_output(wait=True): only what came after the last clear
    assert [o.text for o in cells[8].outputs] == ["tick 2\n"]
    assert cells[9].outputs[0].text == "\r0\r1\r2\r3\r4\n"
    assert cells[10].outputs[0].output_type == "error"
    assert cells[10].outputs[0].ename == "ZeroDivisionError"
    assert all(c.metadata.ipymirror.peer == "alice" for c in cells)
    assert cells[0].metadata.ipymirror.session == "37c5c9e9-e774f0e185295bf589e7efa5"
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.language_info.name == "python"


def test_markdown_of_the_captured_session(captured):
    text = export(captured, "markdown")
    assert "```python\nimport sys\nprint('hello')\nprint('oops', file=sys.stderr)\n```" in text
    assert "```\nhello\noops\n```" in text
    assert "**alice·37c5** · In [2]" in text
    assert "```\nOut[2]: 42\n```" in text
    assert "```\n4\n```" in text  # the \r progress as a terminal leaves it
    assert "ZeroDivisionError" in text and "\x1b" not in text
    # the image is a file next to the .md, linked (test_export_images.py has more)
    (link,) = re.findall(r"!\[image/png\]\((captured_files/output_\d+_\d+\.png)\)", text)
    assert (captured.parent / link).read_bytes().startswith(b"\x89PNG")


def test_markdown_fences_survive_backticks(tmp_path):
    from recording_support import cell_messages, stdout

    msgs = cell_messages("s = '```'", [stdout("```\n")], 1)
    path = write_recording(tmp_path / "ticks.ipym", [(0.0, m) for m in msgs])
    text = export(path, "markdown")
    assert "````python\ns = '```'\n````" in text
    assert "````\n```\n````" in text


def test_asciicast_is_valid_and_looks_like_the_terminal(captured):
    lines = export(captured, "asciicast").splitlines()
    header = json.loads(lines[0])
    assert header["version"] == 2 and (header["width"], header["height"]) == (100, 30)
    assert isinstance(header["timestamp"], int) and header["env"]["TERM"] == "xterm-256color"
    events = [json.loads(line) for line in lines[1:]]
    assert events and all(
        isinstance(t, float | int) and kind == "o" and isinstance(data, str)
        for t, kind, data in events
    )
    times = [t for t, _, _ in events]
    assert times == sorted(times) and times[-1] <= 0.63
    assert all("\n" not in data.replace("\r\n", "") for _, _, data in events)  # CRLF, as a pty
    assert any("\x1b[" in data for _, _, data in events)  # colours on
    # What a terminal shows when it plays this: the transcript, progress collapsed.
    screen = pyte.Screen(100, 200)
    stream = pyte.Stream(screen)
    for _, _, data in events:
        stream.feed(data)
    shown = [line.rstrip() for line in screen.display]
    assert "┌ alice·37c5  In [1]" in shown
    assert "│ print('hello')" in shown
    assert "│ Out[2]: 42" in shown
    assert "│ tick 2" in shown and "│ tick 0" not in shown
    assert "│ 4" in shown
    assert any(line.startswith("│ ZeroDivisionError") for line in shown)


def test_asciicast_draws_live_lines_in_place(tmp_path):
    from recording_support import cell_messages

    updates = []
    for i in range(5):
        updates += [
            ("clear_output", {"wait": True}),
            ("stream", {"name": "stdout", "text": f"step {i}\n"}),
        ]
    msgs = cell_messages("progress()", updates, 1)
    path = write_recording(tmp_path / "live.ipym", [(i * 0.5, m) for i, m in enumerate(msgs)])
    events = [json.loads(line) for line in export(path, "asciicast").splitlines()[1:]]
    # a frame when something changes: the input, each new step, the end of the cell
    assert [t for t, _, _ in events] == [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.0]

    def screen_at(t: float) -> list[str]:
        screen = pyte.Screen(100, 30)
        stream = pyte.Stream(screen)
        for _, _, data in (e for e in events if e[0] <= t):
            stream.feed(data)
        return [line.rstrip() for line in screen.display if line.strip()]

    head = ["┌ alice·a11c  In [1]", "│ progress()"]
    assert screen_at(0.5) == head
    assert screen_at(1.5) == [*head, "│ step 0"]
    assert screen_at(3.5) == [*head, "│ step 2"]  # redrawn in place, not appended
    assert screen_at(6.0) == [*head, "│ step 4"]


def test_html_is_a_page_with_the_code(captured):
    page = export(captured, "html")
    assert page.startswith("<!DOCTYPE html>") and "<title>ipymirror session: python kernel" in page
    assert "hello" in page and "oops" in page and "ZeroDivisionError" in page
    assert re.search(r"Out\[2\]: </span></pre><pre>42</pre>", page)
    assert "\x1b" not in page
    # Looks like the notebook: Markdown rendered, the image embedded, colours kept.
    assert "<h1>Title</h1>" in page
    assert '<img src="data:image/png;base64,iVBOR' in page
    assert '<span class="f1">ZeroDivisionError</span>' in page
    assert "<p>step 3</p>" in page and "<p>step 2</p>" not in page  # the update applied
    assert "<script" not in page and 'http-equiv="Content-Security-Policy"' in page


def test_html_export_sanitises_peer_html(tmp_path):
    msgs = [json.loads(line) for line in (DATA / "ipykernel_iopub.jsonl").read_text().splitlines()]
    start = next(m for m in msgs if m["msg_type"] == "execute_input")
    display = json.loads(json.dumps(start))
    display["msg_type"] = display["header"]["msg_type"] = "display_data"
    display["content"] = {
        "data": {
            "text/html": "<script>alert(1)</script><img src=x onerror=alert(2)>"
            "<img src='http://evil.example/x.png'><a href='javascript:alert(3)'>l</a><b>kept</b>",
            "text/plain": "<HTML>",
        },
        "metadata": {},
    }
    path = write_recording(tmp_path / "h.ipym", [(0.0, start), (0.1, display)])
    page = export(path, "html")
    assert "<b>kept</b>" in page
    for gone in ("alert", "onerror", "evil.example", "javascript"):
        assert gone not in page


def test_output_to_stdout(captured, capsys):
    assert main(["export", str(captured), "--to", "markdown", "-o", "-"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Recorded with ipymirror from a python kernel")
    assert not Path(default_output(str(captured), "markdown")).exists()


def test_output_path_and_refusal_to_overwrite_the_input(captured, tmp_path, capsys):
    target = tmp_path / "elsewhere.ipynb"
    assert main(["export", str(captured), "--to", "ipynb", "-o", str(target)]) == 0
    nbformat.validate(nbformat.read(target, as_version=4))
    assert main(["export", str(captured), "--to", "ipynb", "-o", str(captured)]) == 2
    assert "is the recording itself" in capsys.readouterr().err


@pytest.mark.e2e  # runs ipymirror as a process
def test_every_format_from_the_command_line(tmp_path):
    path = session_recording(tmp_path / "s.ipym.gz")
    for fmt, ext in (
        ("ipynb", "ipynb"),
        ("asciicast", "cast"),
        ("html", "html"),
        ("markdown", "md"),
    ):
        proc = run_ipymirror("export", str(path), "--to", fmt)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"wrote {tmp_path / f's.{ext}'}\n"
        assert "hello 42" in strip_sgr((tmp_path / f"s.{ext}").read_text())


# ------------------------------------------------------------ real kernel

CELLS = [
    "import sys\nprint('out'); print('err', file=sys.stderr); print('more out')",
    "6 * 7",
    "from IPython.display import Markdown, display\ndisplay(Markdown('# Title'))",
    "for i in range(3):\n    print(i, flush=True)",
    "undefined_name",
    "{'a': [1, 2]}",
]


def test_record_then_export_notebook_matches_what_ran(kernel, peer, tmp_path):
    out = tmp_path / "real.ipym"
    rec = RecorderProcess.record(out, kernel)
    try:
        alice, bob = peer(kernel, "alice"), peer(kernel, "bob")
        results = []
        for i, code in enumerate(CELLS):
            who = bob if i == 4 else alice
            results.append((who, who.run(code)))
        wait_for_records(out, has_idle(results[-1][1]["reply"]["parent_header"]["msg_id"]))
        assert rec.stop() == 0
    finally:
        rec.close()
    proc = run_ipymirror("export", str(out), "--to", "ipynb")
    assert proc.returncode == 0, proc.stderr
    nb = nbformat.read(tmp_path / "real.ipynb", as_version=4)
    nbformat.validate(nb)
    assert [c.source for c in nb.cells] == CELLS
    for cell, (who, result) in zip(nb.cells, results, strict=True):
        reply = result["reply"]["content"]
        assert cell.execution_count == reply["execution_count"]
        assert cell.metadata.ipymirror.peer == who.username
        assert cell.metadata.ipymirror.session == who.session_id
        for name in ("stdout", "stderr"):
            got = "".join(
                o.text for o in cell.outputs if o.output_type == "stream" and o.name == name
            )
            assert got == who.stream_text(result, name)
        kinds = [
            m["msg_type"]
            for m in result["iopub"]
            if m["msg_type"] in ("execute_result", "display_data", "error")
        ]
        assert [o.output_type for o in cell.outputs if o.output_type != "stream"] == kinds
        names = [m["content"]["name"] for m in result["iopub"] if m["msg_type"] == "stream"]
        merged = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
        assert [o.name for o in cell.outputs if o.output_type == "stream"] == merged
    assert nb.cells[1].outputs[0].data == {"text/plain": "42"}
    assert nb.cells[2].outputs[0].data["text/markdown"] == "# Title"
    assert nb.cells[3].outputs[0].text == "0\n1\n2\n"  # three messages, one merged output
    assert nb.cells[4].outputs[0].ename == "NameError"
    # and the cells module agrees with the notebook it made
    header, records = read_recording(str(out))
    assert len(to_notebook(header, notebook_cells(records)).cells) == len(CELLS)
    assert not re.search(r"\"key\"", (tmp_path / "real.ipynb").read_text())
