"""Hostile input at the pure core: each class of issue 15, one mechanism each.

* rendering that could freeze the prompt is capped (rich/pygments per output);
* text decoded by a renderer (Markdown entities) is sanitised after decoding;
* a valid message nested deeper than Python recurses never stops a pipeline;
* every structure a peer can grow has a cap (cells, merged stream text,
  live displays);
* names a kernel chooses (kernel_info) are one safe line wherever printed.
"""

from __future__ import annotations

import time
from typing import Any

from ipymirror.core.cells import MAX_CELL_CHARS, MAX_DISPLAYS, CellBuilder
from ipymirror.core.events import ClearOutput, Display, ExecuteInput, Peer, Status, Stream
from ipymirror.core.pipeline import Pipeline
from ipymirror.core.protocol import kernel_description
from ipymirror.core.render import RICH_LIMIT, Renderer
from ipymirror.core.transcript import MAX_LIVE_LINES, Transcript

BOB = Peer("8ce7a1b2-0000-4000-8000-000000000001", "bob")
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def _deep(levels: int) -> Any:
    value: Any = []
    for _ in range(levels):
        value = [value]
    return value


def _msg(msg_type: str, content: dict[str, Any], cell: str = "c1") -> dict[str, Any]:
    return {
        "header": {"msg_type": msg_type, "msg_id": f"{cell}-{msg_type}"},
        "parent_header": {"session": BOB.session, "username": "bob", "msg_id": cell},
        "content": content,
    }


# ------------------------------------------------------------ sanitising


def test_markdown_entities_cannot_decode_into_control_characters():
    r = Renderer(color=True)
    entities = "".join(f"&#x{ord(c):X};" for c in BIDI) + " &#x9b;31m &#x1b;]52;c;QUJD&#7; x"
    lines = r.mime({"text/markdown": f"**bold** {entities}"})
    text = "\n".join(lines)
    assert "bold" in text and not any(c in text for c in BIDI)
    assert "\x9b" not in text and "\x1b]" not in text


def test_json_escapes_cannot_decode_into_control_characters():
    lines = Renderer(color=True).mime({"application/json": {"k": "a\u202eb\u009b2J"}})
    assert not any(c in "\n".join(lines) for c in BIDI + "\x9b")


def test_kernel_description_is_one_safe_line():
    hostile = {
        "implementation": "ipy\x1b]0;pwned\x07thon\n\u202eevil" + "x" * 500,
        "language_info": {"name": "py\x1b[2J\x1b[31mthon"},
    }
    text = kernel_description(hostile)
    assert text.startswith("python kernel (ipython evil")
    assert "\x1b" not in text and "\n" not in text and "\u202e" not in text
    assert len(text) < 100


# ------------------------------------------------------------ never frozen


def test_large_markdown_and_json_are_not_laid_out_by_rich():
    r = Renderer(color=True, width=98)
    table = "| a | b | c |\n|---|---|---|\n" + "| x | y | z |\n" * 10_000  # 140 kB
    start = time.monotonic()
    lines = r.mime({"text/markdown": table})
    assert time.monotonic() - start < 1.0  # rich takes ~5 s for this
    assert lines[2] == "| x | y | z |"  # shown as the text it is
    value = {f"k{i}": [i, "v" * 10] for i in range(10_000)}
    start = time.monotonic()
    r.mime({"application/json": value})
    assert time.monotonic() - start < 1.0


def test_small_markdown_is_still_rendered():
    lines = Renderer(color=True).mime({"text/markdown": "# Title\n\nsome **bold** text"})
    assert "**" not in "\n".join(lines) and RICH_LIMIT >= 1_000


def test_a_huge_traceback_is_elided():
    r = Renderer(color=False)
    frames = tuple(f"  File x.py, line {i}\n" * 10 for i in range(100_000))  # ~23 MB
    lines = r.traceback("E", "v", frames)
    assert any("of one message not shown" in line for line in lines)
    assert sum(map(len, lines)) < 9 * 1024 * 1024


# ------------------------------------------------------------ odd JSON


def test_deeply_nested_json_never_stops_the_pipeline():
    pipeline = Pipeline(Renderer(color=False))
    deep = _deep(100_000)
    batch = [
        _msg("execute_input", {"code": "x", "execution_count": 1}),
        _msg("execute_result", {"data": {"application/json": deep}, "execution_count": 1}),
        _msg("display_data", {"data": {"text/plain": "x", "application/weird": deep}}),
        _msg("stream", {"name": "stdout", "text": "still here\n"}),
    ]
    text = "".join(pipeline.feed(batch).lines)
    assert "still here" in text
    assert "nested too deeply" in text or "could not be shown" in text


def test_a_failing_event_is_announced_and_the_next_one_shown():
    pipeline = Pipeline(Renderer(color=False))

    def broken(ev: Any) -> None:
        if isinstance(ev, Stream) and "boom" in ev.text:
            raise RecursionError("too deep")

    pipeline.listeners.append(broken)
    batch = [
        _msg("stream", {"name": "stdout", "text": "boom\n"}),
        _msg("stream", {"name": "stdout", "text": "after\n"}),
    ]
    text = "".join(pipeline.feed(batch).lines)
    assert "could not be shown (RecursionError)" in text and "after" in text


def test_cells_keep_deeply_nested_json_out_of_the_notebook():
    b = CellBuilder()
    b.feed(0, ExecuteInput(BOB, "c1", "x", 1))
    b.feed(1, Display(BOB, "c1", {"application/json": _deep(5_000)}))
    b.feed(1, Display(BOB, "c1", {"text/x-odd": _deep(5_000)}))
    cell = b.cells[0]
    assert cell.dropped == 1  # the JSON value cannot be written: not kept, counted
    assert cell.outputs[0]["data"]["text/x-odd"].endswith("nested too deeply to keep]")


# ------------------------------------------------------------ bounded memory


def test_merged_stream_text_of_a_cell_is_capped():
    b = CellBuilder(max_chars=1_000_000)
    b.feed(0, ExecuteInput(BOB, "c1", "flood", 1))
    chunk = "y" * 99 + "\n"
    for _ in range(20_000):  # 2 MB into a 1 MB cell
        b.feed(1, Stream(BOB, "c1", "stdout", chunk))
    cell = b.cells[0]
    assert len(cell.outputs) == 1 and len(cell.outputs[0]["text"]) == 1_000_000
    assert cell.dropped_chars == 1_000_000
    assert MAX_CELL_CHARS <= 64 * 1024 * 1024


def test_display_ids_tracked_by_cells_are_capped():
    b = CellBuilder()
    b.feed(0, ExecuteInput(BOB, "c1", "x", 1))
    for i in range(MAX_DISPLAYS + 500):  # cleared as it goes: the cell never fills
        b.feed(1, Display(BOB, "c1", {"text/plain": "d"}, display_id=f"id{i}"))
        b.feed(1, ClearOutput(BOB, "c1"))
    assert len(b._displays) == MAX_DISPLAYS


def test_empty_live_displays_are_capped():
    t = Transcript(Renderer(color=False))
    t.feed(ExecuteInput(BOB, "c1", "x", 1))
    for i in range(20_000):  # no lines each: capped by count, not only by lines
        t.feed(Display(BOB, "c1", {}, display_id=f"id{i}"))
    (cell,) = t._cells.values()
    assert len(cell.items) <= MAX_LIVE_LINES and len(t._displays) <= MAX_LIVE_LINES


def test_a_display_updated_with_a_huge_output_stays_capped():
    t = Transcript(Renderer(color=False))
    t.feed(ExecuteInput(BOB, "c1", "x", 1))
    t.feed(Display(BOB, "c1", {"text/plain": "small"}, display_id="d"))
    t.feed(Display(BOB, "c1", {"text/plain": "line\n" * 100_000}, display_id="d", update=True))
    assert len(t.live()) <= MAX_LIVE_LINES + 5
    t.feed(Status(BOB, "c1", "idle", "execute_request"))
    assert "lines not kept" in "".join(t.take())


def test_identifiers_a_peer_chooses_are_capped():
    from ipymirror.core.protocol import MAX_ID, to_event

    huge = "x" * 10_000_000
    msg = _msg("display_data", {"data": {"text/plain": "d"}, "transient": {"display_id": huge}})
    msg["parent_header"] = {"session": huge, "username": huge, "msg_id": huge}
    ev = to_event(msg)
    assert isinstance(ev, Display)
    assert max(len(ev.peer.session), len(ev.peer.username), len(ev.cell)) <= MAX_ID
    assert ev.display_id is not None and len(ev.display_id) <= MAX_ID
