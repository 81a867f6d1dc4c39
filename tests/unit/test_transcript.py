"""ipymirror.core.transcript: event sequences -> committed text and live lines."""

from __future__ import annotations

import json
from pathlib import Path

from ipymirror.core.events import (
    KERNEL,
    ClearOutput,
    Display,
    Error,
    ExecuteInput,
    KernelRestart,
    KernelRestarted,
    Peer,
    Result,
    Status,
    Stream,
)
from ipymirror.core.pipeline import Pipeline
from ipymirror.core.protocol import to_event
from ipymirror.core.render import RESET, Renderer
from ipymirror.core.transcript import (
    MAX_LIVE_LINES,
    MAX_OPEN_CELLS,
    MAX_PARTIAL,
    MAX_STREAM_TEXT,
    Transcript,
)

BOB = Peer("8ce7a1b2-0000-4000-8000-000000000001", "bob")
CAROL = Peer("4058c3d4-0000-4000-8000-000000000002", "carol")
ME = Peer("8fd6e5f6-0000-4000-8000-000000000003", "alice")

BOB_HEADER = "┌ bob·8ce7"
CAROL_HEADER = "┌ carol·4058"


def plain(me: str = "") -> Transcript:
    return Transcript(Renderer(color=False), me=me)


def feed(t: Transcript, *events) -> str:
    """Feed events; return the committed text since the last take()."""
    for ev in events:
        t.feed(ev)
    return "".join(t.take())


def idle(peer: Peer, cell: str) -> Status:
    return Status(peer, cell, "idle", "execute_request")


def busy(peer: Peer, cell: str) -> Status:
    return Status(peer, cell, "busy", "execute_request")


def out(peer: Peer, cell: str, text: str, name: str = "stdout") -> Stream:
    return Stream(peer, cell, name, text)


# ------------------------------------------------------------ headers, gutters


def test_peer_cell_header_code_and_output():
    t = plain()
    code = 'for i in range(3):\n    print("line", i)'
    text = feed(
        t,
        busy(BOB, "c3"),
        ExecuteInput(BOB, "c3", code, 3),
        out(BOB, "c3", "line 0\nline 1\n"),
        out(BOB, "c3", "line 2\n"),
        idle(BOB, "c3"),
    )
    assert text == (
        "┌ bob·8ce7  In [3]\n"
        "│ for i in range(3):\n"
        '│     print("line", i)\n'
        "│ line 0\n"
        "│ line 1\n"
        "│ line 2\n"
    )
    assert t.live() == []


def test_own_cells_have_no_header_or_gutter():
    t = plain(me=ME.session)
    text = feed(
        t,
        busy(ME, "m1"),
        ExecuteInput(ME, "m1", "print('hi')", 1),
        out(ME, "m1", "hi\n"),
        out(ME, "m1", "warn\n", "stderr"),
        Result(ME, "m1", {"text/plain": "42"}, 1),
        idle(ME, "m1"),
    )
    # The prompt already showed the code: nothing but the output.
    assert text == "hi\nwarn\nOut[1]: 42\n"
    assert "┌" not in text and "│" not in text


def test_peer_stderr_has_its_own_gutter_without_color():
    t = plain()
    text = feed(t, ExecuteInput(BOB, "c1", "x", 1), out(BOB, "c1", "oops\n", "stderr"))
    assert text.endswith("┆ oops\n")


def test_interleaved_peers_get_a_header_when_the_speaker_changes():
    t = plain()
    text = feed(
        t,
        ExecuteInput(BOB, "b1", "slow()", 5),
        ExecuteInput(CAROL, "c1", "fast()", 6),
        out(CAROL, "c1", "carol 1\n"),
        out(BOB, "b1", "bob 1\n"),
        out(BOB, "b1", "bob 2\n"),
        out(CAROL, "c1", "carol 2\n"),
    )
    assert text.split("\n") == [
        f"{BOB_HEADER}  In [5]",
        "│ slow()",
        f"{CAROL_HEADER}  In [6]",
        "│ fast()",
        "│ carol 1",
        f"{BOB_HEADER}  In [5] …",  # bob speaks again: a continuation header
        "│ bob 1",
        "│ bob 2",
        f"{CAROL_HEADER}  In [6] …",
        "│ carol 2",
        "",
    ]


def test_output_without_execute_input_still_gets_a_header():
    # Silent executions and output after idle have no execute_input.
    t = plain()
    assert feed(t, out(BOB, "silent", "1\n")) == f"{BOB_HEADER} …\n│ 1\n"


def test_header_label_is_sanitised():
    t = plain()
    eve = Peer("eeee-1", "eve\x1b]0;pwned\x07\x1b[2J")
    text = feed(t, ExecuteInput(eve, "e1", "x", 1))
    assert text.startswith("┌ eve·eeee  In [1]\n")
    assert "pwned" not in text and "\x1b" not in text


# --------------------------------------------------------- partial lines, \r


def test_partial_line_stays_live_until_its_newline():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    assert feed(t, out(BOB, "c1", "abc")) == ""
    assert t.live() == ["│ abc"]
    assert feed(t, out(BOB, "c1", "def")) == ""
    assert t.live() == ["│ abcdef"]
    assert feed(t, out(BOB, "c1", "ghi\nnext")) == "│ abcdefghi\n"
    assert t.live() == ["│ next"]
    assert feed(t, out(BOB, "c1", "\n")) == "│ next\n"
    assert t.live() == []
    assert feed(t, idle(BOB, "c1")) == ""  # committed once, not again at idle


def test_partial_line_of_a_cell_without_header_shows_one_live():
    t = plain()
    feed(t, out(BOB, "c1", "half"))
    assert t.live() == [BOB_HEADER, "│ half"]


def test_idle_commits_partial_lines():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    feed(t, out(BOB, "c1", "no newline"), out(BOB, "c1", "err", "stderr"))
    assert t.live() == ["│ no newline", "┆ err"]  # stderr is marked while live, too
    assert feed(t, idle(BOB, "c1")) == "│ no newline\n┆ err\n"
    assert t.live() == []


def test_carriage_return_progress_is_one_live_line():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "progress()", 1))
    version = t.version
    for i in range(1000):
        t.feed(out(BOB, "c1", f"\r{i}"))
        assert t.live() == [f"│ {i}"]
    assert t.take() == []  # nothing committed until the newline
    assert t.version > version  # the frontend is told the live line changed
    assert feed(t, out(BOB, "c1", "\n")) == "│ 999\n"
    assert t.live() == []


def test_carriage_return_at_end_of_write_progress():
    """``print(i, end='\\r')`` is as common as a leading ``\\r``: the next
    write replaces the line, it must not be appended to it."""
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "progress()", 1))
    for i in range(100):
        t.feed(out(BOB, "c1", f"{i}\r"))
    assert t.live() == ["│ 99"], t.live()
    assert feed(t, out(BOB, "c1", "done\n")) == "│ done\n"


def test_crlf_is_a_newline():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    assert feed(t, out(BOB, "c1", "a\r\nb\r\n")) == "│ a\n│ b\n"
    # split between two messages
    assert feed(t, out(BOB, "c1", "c\r"), out(BOB, "c1", "\nd\r\n")) == "│ c\n│ d\n"
    assert t.live() == []


def test_carriage_return_inside_a_chunk_keeps_the_last_write():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    assert feed(t, out(BOB, "c1", " 10%\r 50%\r100%\nnext\n")) == "│ 100%\n│ next\n"


def test_huge_partial_line_is_bounded_and_announced():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    feed(t, out(BOB, "c1", "x" * (MAX_PARTIAL + 5000)))
    live = "".join(t.live())
    assert live.count("x") <= MAX_PARTIAL
    text = feed(t, out(BOB, "c1", "\n"))
    assert text.count("x") <= MAX_PARTIAL
    # Module rule 5: whatever is dropped is announced by a notice with a count.
    notices = [line for line in text.split("\n") if "»" in line]
    assert any("5,000" in line for line in notices), f"no notice of the dropped 5,000: {notices}"


def test_giant_stream_message_is_elided_with_a_notice():
    t = Transcript(Renderer(color=False, width=120))  # its 99-character lines fit
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    line = "y" * 99 + "\n"
    n = MAX_STREAM_TEXT // len(line) + 20_000
    text = feed(t, out(BOB, "c1", f"first\n{line * n}last\n"))
    lines = text.split("\n")
    assert lines[0] == "│ first" and lines[-2] == "│ last"
    notes = [x for x in lines if "»" in x]
    assert len(notes) == 1 and "lines (" in notes[0] and "of one message not shown" in notes[0]
    shown = lines.count("│ " + "y" * 99)
    hidden = int(notes[0].split("… ")[1].split(" ")[0].replace(",", ""))
    assert shown + hidden == n
    assert len(text) <= MAX_STREAM_TEXT + 200_000


# ------------------------------------------------------- clear_output, displays


def test_clear_output_wait_loop_keeps_only_the_last_output():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "loop()", 1))
    for i in range(50):
        assert feed(t, ClearOutput(BOB, "c1", wait=True), out(BOB, "c1", f"tick {i}\n")) == ""
        assert t.live() == [f"│ tick {i}"]
    text = feed(t, idle(BOB, "c1"))
    assert text == "│ tick 49\n"
    assert t.live() == []


def test_clear_output_wait_without_new_output_keeps_the_old_one():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "x", 1), ClearOutput(BOB, "c1", wait=True))
    feed(t, out(BOB, "c1", "kept\n"), ClearOutput(BOB, "c1", wait=True))
    assert t.live() == ["│ kept"]
    assert feed(t, idle(BOB, "c1")) == "│ kept\n"


def test_clear_output_flushes_what_came_before_it():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    assert feed(t, out(BOB, "c1", "before"), ClearOutput(BOB, "c1")) == "│ before\n"
    feed(t, out(BOB, "c1", "after\n"))
    assert t.live() == ["│ after"]


def _md(text: str) -> dict[str, str]:
    return {"text/plain": text}


def test_display_with_id_is_updated_in_place_and_committed_at_idle():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "show()", 1))
    assert feed(t, Display(BOB, "c1", _md("step 1"), display_id="d1")) == ""
    assert t.live() == ["│ step 1"]
    for i in range(2, 20):
        assert feed(t, Display(BOB, "c1", _md(f"step {i}"), display_id="d1", update=True)) == ""
        assert t.live() == [f"│ step {i}"]
    feed(t, out(BOB, "c1", "after\n"))
    assert t.live() == ["│ step 19", "│ after"]
    # an update after more output still lands in place
    feed(t, Display(BOB, "c1", _md("final"), display_id="d1", update=True))
    assert t.live() == ["│ final", "│ after"]
    assert feed(t, idle(BOB, "c1")) == "│ final\n│ after\n"
    assert t.live() == []


def test_update_of_a_committed_display_shows_an_update_notice():
    t = plain()
    feed(
        t, ExecuteInput(BOB, "c1", "h = show()", 1), Display(BOB, "c1", _md("v1"), display_id="d1")
    )
    assert feed(t, idle(BOB, "c1")) == "│ v1\n"
    feed(t, ExecuteInput(BOB, "c2", "h.update()", 2))
    feed(t, Display(BOB, "c2", _md("v2"), display_id="d1", update=True))
    assert t.live() == ["│ » display d1 updated:", "│ v2"]
    assert feed(t, idle(BOB, "c2")) == "│ » display d1 updated:\n│ v2\n"


def test_update_without_display_id_is_ignored_and_plain_display_is_committed():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    assert feed(t, Display(BOB, "c1", _md("stray"), update=True)) == ""
    assert t.live() == []
    assert feed(t, Display(BOB, "c1", _md("shown"))) == "│ shown\n"


# ------------------------------------------------------------ results, errors


def test_execute_result_single_line():
    t = plain()
    text = feed(t, ExecuteInput(BOB, "c1", "6 * 7", 3), Result(BOB, "c1", _md("42"), 3))
    assert text.endswith("│ 6 * 7\n│ Out[3]: 42\n")


def test_execute_result_multi_line_has_the_prompt_on_its_own_line():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "df", 4))
    text = feed(t, Result(BOB, "c1", _md("   a\n0  1\n1  2"), 4))
    assert text == "│ Out[4]: \n│    a\n│ 0  1\n│ 1  2\n"


def test_result_flushes_a_partial_line_first():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "x", 1), out(BOB, "c1", "partial"))
    assert feed(t, Result(BOB, "c1", _md("1"), 1)) == "│ partial\n│ Out[1]: 1\n"


def test_error_traceback_is_committed():
    t = plain()
    tb = (
        "\x1b[0;31mZeroDivisionError\x1b[0m   Traceback (most recent call last)",
        "Cell \x1b[0;32mIn[2], line 1\x1b[0m\n----> 1 1 / 0",
        "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
    )
    feed(t, ExecuteInput(BOB, "c1", "1 / 0", 2))
    text = feed(t, Error(BOB, "c1", "ZeroDivisionError", "division by zero", tb))
    assert text == (
        "│ ZeroDivisionError   Traceback (most recent call last)\n"
        "│ Cell In[2], line 1\n"
        "│ ----> 1 1 / 0\n"
        "│ ZeroDivisionError: division by zero\n"
    )
    assert t.live() == []


def test_error_without_traceback_shows_name_and_value():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    assert feed(t, Error(BOB, "c1", "KeyError", "'k'", ())) == "│ KeyError: 'k'\n"


# ------------------------------------------------------------------- bounds


def test_live_block_is_bounded_and_the_commit_says_how_many_were_dropped():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "flood()", 1), ClearOutput(BOB, "c1"))
    feed(t, out(BOB, "c1", "".join(f"line {i}\n" for i in range(10_000))))
    live = t.live()
    assert len(live) <= MAX_LIVE_LINES + 1
    assert live[0] == f"│ » … {10_000 - MAX_LIVE_LINES:,} earlier lines not kept"
    assert live[-1] == "│ line 9999"
    text = feed(t, idle(BOB, "c1"))
    lines = text.rstrip("\n").split("\n")
    assert lines[0] == f"│ » … {10_000 - MAX_LIVE_LINES:,} lines not kept"
    assert lines[1] == f"│ line {10_000 - MAX_LIVE_LINES}"
    assert lines[-1] == "│ line 9999"
    assert len(lines) == MAX_LIVE_LINES + 1


def test_too_many_open_cells_commit_the_oldest():
    t = plain()
    for i in range(MAX_OPEN_CELLS):
        feed(t, out(BOB, f"c{i}", f"part {i}"))
    assert t.take() == []
    text = feed(t, out(BOB, f"c{MAX_OPEN_CELLS}", f"part {MAX_OPEN_CELLS}"))
    assert "part 0\n" in text
    assert "part 1" not in text
    live = "\n".join(t.live())
    assert "part 0" not in live
    assert "part 1" in live and f"part {MAX_OPEN_CELLS}" in live


def test_kernel_restart_commits_everything_and_says_so():
    t = plain()
    feed(t, ExecuteInput(BOB, "c1", "x", 1), out(BOB, "c1", "half"))
    assert feed(t, KernelRestart(CAROL, "r1", restart=True)) == ""  # a claim only
    text = feed(t, KernelRestarted(CAROL, "r1", "new-kernel"))
    assert (
        text == "│ half\n» kernel restarted by carol·4058 (a new kernel: its variables are gone)\n"
    )
    assert t.live() == []
    text = feed(t, KernelRestarted(KERNEL, "", "newer-kernel"))
    assert text == "» kernel restarted by unknown (a new kernel: its variables are gone)\n"


# -------------------------------------------------------------------- colour


def test_color_peer_stderr_is_red_and_reset():
    r = Renderer(color=True)
    t = Transcript(r)
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    text = feed(t, out(BOB, "c1", "oops\n", "stderr"))
    assert text == r.gutter(BOB, stderr=True) + "\x1b[31moops\x1b[0m\n"
    # partial stderr committed at idle is red too
    feed(t, out(BOB, "c1", "tail", "stderr"))
    assert feed(t, idle(BOB, "c1")) == r.gutter(BOB, stderr=True) + "\x1b[31mtail\x1b[0m\n"


def test_color_peer_sgr_lines_end_with_a_reset():
    r = Renderer(color=True)
    t = Transcript(r)
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    text = feed(t, out(BOB, "c1", "\x1b[32mgreen\nstill green\x1b[1m\n"))
    assert text == (
        f"{r.gutter(BOB)}\x1b[32mgreen{RESET}\n{r.gutter(BOB)}still green\x1b[1m{RESET}\n"
    )
    feed(t, out(BOB, "c1", "\x1b[35mlive"))
    assert all(line.endswith(RESET) for line in t.live())


def test_color_live_partial_stderr_is_red_like_when_committed():
    r = Renderer(color=True)
    t = Transcript(r)
    feed(t, ExecuteInput(BOB, "c1", "x", 1), out(BOB, "c1", "50%", "stderr"))
    committed_style = r.gutter(BOB, stderr=True) + "\x1b[31m50%\x1b[0m"
    assert t.live() == [committed_style]
    assert feed(t, idle(BOB, "c1")) == committed_style + "\n"


def test_color_own_stderr_is_red_without_gutter():
    t = Transcript(Renderer(color=True), me=ME.session)
    assert feed(t, out(ME, "m1", "bad\n", "stderr")) == "\x1b[31mbad\x1b[0m\n"


def test_color_hostile_stream_is_sanitised():
    t = Transcript(Renderer(color=True))
    text = feed(t, out(BOB, "c1", "a\x1b]52;c;U0VDUkVU\x07b\x1b[2J\x1b[H\n"))
    assert "U0VDUkVU" not in text and "\x1b]" not in text and "\x1b[2J" not in text
    assert "ab\x1b[0m\n" in text or text.endswith("ab\n")


# ----------------------------------------------------- a real captured session


def _captured() -> list:
    path = Path(__file__).parent.parent / "data" / "ipykernel_iopub.jsonl"
    with open(path, encoding="utf-8") as f:
        events = [to_event(json.loads(line)) for line in f]
    return [ev for ev in events if ev is not None]


def test_captured_ipykernel_session_as_a_peer():
    pipeline = Pipeline(Renderer(color=False))
    t = pipeline.transcript
    path = Path(__file__).parent.parent / "data" / "ipykernel_iopub.jsonl"
    with open(path, encoding="utf-8") as f:
        text = "".join(pipeline.feed([json.loads(line) for line in f]).lines)
    assert t.live() == []
    lines = [line.rstrip() for line in text.split("\n")]  # rich pads to the width
    alice = next(line for line in lines if line.startswith("┌ alice·"))
    assert alice.endswith("In [1]")
    assert "│ hello" in lines
    assert "┆ oops" in lines
    assert "│ Out[2]: 42" in lines
    assert "│ Out[3]:" in lines and "│ [0," in lines and "│  29]" in lines
    assert "│ Some bold text" in lines  # markdown rendered, no ** left
    assert not any(line.startswith("│ Some **") for line in lines)
    assert any(line.startswith("│ [image/png 1×1") for line in lines)
    # display_id: only the last version of cell 7, then a late update notice
    assert "│ step 1" not in lines
    assert "│ step 2" in lines
    assert "│ » display progress updated:" in lines and "│ step 3" in lines
    # clear_output(wait=True): only the last tick; \r progress: only the last value
    assert "│ tick 0" not in lines and "│ tick 1" not in lines and "│ tick 2" in lines
    assert "│ 4" in lines and "│ 0" not in lines
    assert "│ ZeroDivisionError: division by zero" in lines
    # silent print(1), attributed to alice after a continuation header
    assert "│ 1" in lines
    assert lines[-2].startswith("» kernel restarted by username·")


# ------------------------------------------------ what you see is right (issue 9)


def test_peer_line_wider_than_the_terminal_keeps_its_gutter_on_every_row():
    from wcwidth import wcswidth

    t = Transcript(Renderer(color=False, width=20))
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    text = feed(t, out(BOB, "c1", "a" * 45 + "\n" + "名" * 15 + "\n"))
    rows = text.split("\n")[:-1]
    assert rows == ["│ " + "a" * 20, "│ " + "a" * 20, "│ aaaaa", "│ " + "名" * 10, "│ " + "名" * 5]
    assert all(wcswidth(row) <= 22 for row in rows)
    # live (unfinished) lines and coloured lines too; a colour goes on across the cut
    t = Transcript(Renderer(color=True, width=20))
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    feed(t, out(BOB, "c1", "\x1b[32m" + "g" * 30 + "\x1b[0m"))
    live = t.live()
    assert live == ["│ \x1b[32m" + "g" * 20 + RESET, "│ \x1b[32m" + "g" * 10 + "\x1b[0m"]
    # your own lines are left to the terminal: no gutter to keep
    t = Transcript(Renderer(color=False, width=20), me=BOB.session)
    assert feed(t, ExecuteInput(BOB, "c1", "x", 1), out(BOB, "c1", "a" * 45 + "\n")) == (
        "a" * 45 + "\n"
    )


def test_carriage_return_progress_on_stderr_is_neutral_real_stderr_stays_red():
    r = Renderer(color=True)
    t = Transcript(r)
    feed(t, ExecuteInput(BOB, "c1", "x", 1))
    for i in range(3):  # what tqdm writes
        feed(t, out(BOB, "c1", f"\r{i * 50:3d}%|{'#' * i}  |", "stderr"))
    assert t.live()[-1] == "│ 100%|##  |"  # no red
    bar = feed(t, out(BOB, "c1", "\n", "stderr"))
    assert bar == "│ 100%|##  |\n"
    warn = feed(t, out(BOB, "c1", "Warning: real\n", "stderr"))
    assert warn == "│ \x1b[31mWarning: real\x1b[0m\n"
    mixed = feed(t, out(BOB, "c1", "\r 1%\r 2%\ndone?\n", "stderr"))
    assert mixed == "│  2%\n│ \x1b[31mdone?\x1b[0m\n"
    p = Transcript(Renderer(color=False))  # without colour: the stderr gutter marks it
    feed(p, ExecuteInput(BOB, "c1", "x", 1), out(BOB, "c1", "\r50%\r99%\n", "stderr"))
    assert feed(p, out(BOB, "c1", "oops\n", "stderr")) == "┆ oops\n"
    assert feed(p, out(BOB, "c1", "\r1%\r2%", "stderr"), idle(BOB, "c1")) == "│ 2%\n"


def test_your_output_after_a_peer_block_is_under_your_own_prompt_again():
    me = Peer("ffff0000-0000-4000-8000-00000000000f", "me")
    t = Transcript(Renderer(color=False), me=me.session)
    feed(t, ExecuteInput(me, "m1", "loop()", 5))
    assert feed(t, out(me, "m1", "mine 1\n")) == "mine 1\n"
    text = feed(t, out(BOB, "b1", "bob's\n"), out(me, "m1", "mine 2\n"))
    assert text == "┌ bob·8ce7 …\n│ bob's\nIn [5] …\nmine 2\n"


def test_a_peer_reusing_your_msg_id_never_writes_into_your_cell():
    me = Peer("ffff0000-0000-4000-8000-00000000000f", "me")
    t = Transcript(Renderer(color=False), me=me.session)
    feed(t, ExecuteInput(me, "same", "x", 1), ClearOutput(me, "same"))  # your cell is live
    feed(t, out(me, "same", "mine\n"))
    feed(t, ExecuteInput(BOB, "same", "y", 2), ClearOutput(BOB, "same"))
    feed(t, out(BOB, "same", "forged\n"))
    assert t.live() == ["mine", "│ forged"]  # (bob's header was committed with his code)
