"""ipymirror.core.render: MIME choice, image placeholders, rich/pygments rendering,
and that hostile text never survives any rendering path."""

from __future__ import annotations

import base64
import json
import re
import struct
from pathlib import Path

import pytest

from ipymirror.core.events import Peer
from ipymirror.core.images import image_summary
from ipymirror.core.render import RICH_LIMIT, Renderer, pick_mime
from ipymirror.core.sanitize import strip_sgr

# A real 1x1 PNG (the one tests/data/capture.py displays from a real kernel).
PNG_1X1 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAF"
    "BQIAX8jx0gAAAABJRU5ErkJggg=="
)
GIF_3X2 = base64.b64encode(b"GIF89a" + struct.pack("<HH", 3, 2) + b"\x00" * 20).decode()

SGR = re.compile(r"\x1b\[[0-9;:]*m")
ANY_ESC_BUT_SGR = re.compile(r"\x1b(?!\[[0-9;:]*m)|[\x07\x90\x98\x9b\x9c\x9d\x9e\x9f]")


# ------------------------------------------------------------------ pick_mime


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"text/plain": "p", "text/markdown": "m", "application/json": {}}, "text/markdown"),
        ({"text/plain": "p", "application/json": {}, "image/png": PNG_1X1}, "application/json"),
        ({"text/plain": "<Figure size 640x480>", "image/png": PNG_1X1}, "image/png"),
        ({"text/html": "<b>x</b>", "text/plain": "x"}, "text/plain"),
        ({"text/html": "<b>x</b>", "image/svg+xml": "<svg/>"}, "image/svg+xml"),
        ({"text/html": "<b>x</b>"}, "text/html"),
        ({"application/vnd.custom+json": {}}, "application/vnd.custom+json"),
        ({}, None),
        ({1: "not a mime type"}, None),
    ],
)
def test_pick_mime_preference(data, expected):
    assert pick_mime(data) == expected


# -------------------------------------------------------------- image_summary


def test_image_summary_real_png():
    assert image_summary("image/png", PNG_1X1, {}).startswith("[image/png 1×1, ")


def test_image_summary_png_byte_size_is_exact():
    # The decoded PNG is 70 bytes; base64 padding ("==") is not image data.
    assert len(base64.b64decode(PNG_1X1)) == 70
    assert image_summary("image/png", PNG_1X1, {}) == "[image/png 1×1, 70 B]"


def test_image_summary_captured_png():
    path = Path(__file__).parent.parent / "data" / "ipykernel_iopub.jsonl"
    with open(path, encoding="utf-8") as f:
        msgs = [json.loads(line) for line in f]
    (png,) = [
        m["content"]["data"]["image/png"]
        for m in msgs
        if m["msg_type"] == "display_data" and "image/png" in m["content"]["data"]
    ]
    assert "1×1" in image_summary("image/png", png, {})


def test_image_summary_gif():
    assert image_summary("image/gif", GIF_3X2, {}).startswith("[image/gif 3×2, ")


def test_image_summary_metadata_size_wins():
    meta = {"image/png": {"width": 640, "height": 480}}
    assert image_summary("image/png", PNG_1X1, meta).startswith("[image/png 640×480, ")


def test_image_summary_jpeg_without_dimensions_names_type_and_size():
    jpeg = base64.b64encode(b"\xff\xd8\xff" + b"\x00" * 2045).decode()
    assert image_summary("image/jpeg", jpeg, {}) == "[image/jpeg 2.0 kB]"


def test_image_summary_svg_size_in_bytes_and_its_declared_size():
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="12"><rect/></svg>'
    assert image_summary("image/svg+xml", svg, {}) == f"[image/svg+xml 10×12, {len(svg)} B]"
    assert image_summary("image/svg+xml", "é" * 600, {}) == "[image/svg+xml 1.2 kB]"


def test_image_summary_garbage_never_raises():
    assert image_summary("image/png", "!!not base64!!", {}).startswith("[image/png ")
    assert image_summary("image/png", None, {}) == "[image/png 0 B]"
    assert image_summary("image/png", PNG_1X1, {"image/png": "junk"}).startswith("[image/png 1×1")


def test_mime_image_is_one_placeholder_line():
    data = {"image/png": PNG_1X1, "text/plain": "<IPython.core.display.Image object>"}
    assert Renderer(color=False).mime(data) == [image_summary("image/png", PNG_1X1, {})]
    colored = Renderer(color=True).mime(data)
    assert len(colored) == 1 and strip_sgr(colored[0]).startswith("[image/png 1×1")


# ------------------------------------------------------------------ mime text


@pytest.mark.parametrize("color", [False, True])
def test_markdown_is_rendered(color):
    lines = Renderer(color=color).mime({"text/markdown": "# Title\n\nSome **bold** and `code`"})
    text = strip_sgr("\n".join(lines))
    assert "**" not in text and "`" not in text and "#" not in text
    assert "Some bold and code" in text
    assert "Title" in text
    assert (SGR.search("\n".join(lines)) is not None) is color


def test_json_is_pretty_printed():
    data = {"application/json": {"a": 1, "b": [1, 2]}, "text/plain": "<JSON>"}
    expected = ["{", '  "a": 1,', '  "b": [', "    1,", "    2", "  ]", "}"]
    assert Renderer(color=False).mime(data) == expected
    colored = Renderer(color=True).mime(data)
    assert [strip_sgr(line) for line in colored] == expected
    assert any(SGR.search(line) for line in colored)


def test_json_not_serialisable_falls_back():
    lines = Renderer(color=False).mime({"application/json": {"x": {1, 2}}})
    assert lines[0] == "{" and "{1, 2}" in lines[1]


def test_html_only_is_a_placeholder_line():
    lines = Renderer(color=False).mime({"text/html": "<table><tr><td>1</td></tr></table>"})
    assert lines == ["[text/html: 34 B, no text form]"]


def test_plain_text_lines():
    assert Renderer(color=False).mime({"text/plain": "a\nb\n"}) == ["a", "b"]
    assert Renderer(color=False).mime({"text/plain": ["a\n", "b"]}) == ["a", "b"]
    assert Renderer(color=False).mime({}) == []


@pytest.mark.parametrize("color", [False, True])
def test_huge_markdown_falls_back_to_plain(color):
    text = "**bold** " * (RICH_LIMIT // 9 + 10)
    assert len(text) > RICH_LIMIT
    lines = Renderer(color=color).mime({"text/markdown": text})
    assert lines == [text.rstrip("\n")]  # untouched: rich never saw it


def test_huge_json_falls_back_to_plain():
    value = {"k": "v" * (RICH_LIMIT + 10)}
    lines = Renderer(color=True).mime({"application/json": value})
    assert lines == ["{", f'  "k": "{"v" * (RICH_LIMIT + 10)}"', "}"]


# ------------------------------------------------------------------------ code


def test_code_highlighted_in_the_kernel_language():
    code = "def f(x):\n    return x + 1\n"
    colored = Renderer(color=True, language="python").code(code)
    assert len(colored) == 2
    assert all(SGR.search(line) for line in colored)
    assert [strip_sgr(line) for line in colored] == ["def f(x):", "    return x + 1"]


def test_code_plain_without_color():
    code = "def f(x):\n    return x + 1\n"
    assert Renderer(color=False, language="python").code(code) == ["def f(x):", "    return x + 1"]


@pytest.mark.parametrize("language", ["", "no-such-language-xyz"])
def test_code_unknown_language_is_plain(language):
    assert Renderer(color=True, language=language).code("echo $HOME\nls") == ["echo $HOME", "ls"]


def test_code_with_peer_colours_highlights_without_stray_escapes():
    # Sanitised code may still hold SGR; pygments must not split it into a
    # lone ESC (an "Error" token) plus visible "[1m" text.
    lines = Renderer(color=True, language="python").code("x = \x1b[1mbold\x1b[0m")
    assert ANY_ESC_BUT_SGR.search(lines[0]) is None, repr(lines[0])
    visible = SGR.sub("", lines[0])
    assert visible == "x = bold", repr(visible)


def test_markdown_without_color_has_no_peer_sgr():
    lines = Renderer(color=False).mime({"text/markdown": "\x1b[31mred\x1b[0m *em*"})
    assert "\x1b" not in "\n".join(lines), lines
    assert lines[0].rstrip() == "red em"


@pytest.mark.parametrize("language", ["python", "ipython3", "IPython", "python3"])
def test_code_language_info_names(language):
    lines = Renderer(color=True, language=language).code("import os")
    assert SGR.search(lines[0]) and strip_sgr(lines[0]) == "import os"


def test_code_bash_lexer():
    lines = Renderer(color=True, language="bash").code("echo hi")
    assert SGR.search(lines[0]) and strip_sgr(lines[0]) == "echo hi"


# ------------------------------------------------------------------- traceback

TB = (
    "\x1b[0;31m-----------------------------------------------------------\x1b[0m",
    "\x1b[0;31mZeroDivisionError\x1b[0m                Traceback (most recent call last)",
    "Cell \x1b[0;32mIn[11], line 1\x1b[0m\n\x1b[0;32m----> 1\x1b[0m 1 / 0\n",
    "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero",
)


def test_traceback_keeps_colours():
    lines = Renderer(color=True).traceback("ZeroDivisionError", "division by zero", TB)
    assert lines[1].startswith("\x1b[0;31mZeroDivisionError\x1b[0m")
    assert lines[-1] == "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"
    assert len(lines) == 6  # the multi-line frame is split into lines


def test_traceback_without_color_is_stripped():
    lines = Renderer(color=False).traceback("ZeroDivisionError", "division by zero", TB)
    assert "\x1b" not in "".join(lines)
    assert lines[-1] == "ZeroDivisionError: division by zero"
    assert lines[3] == "----> 1 1 / 0"


def test_traceback_empty_falls_back_to_name_and_value():
    r = Renderer(color=False)
    assert r.traceback("KeyError", "'x'", ()) == ["KeyError: 'x'"]
    assert r.traceback("KeyboardInterrupt", "", ()) == ["KeyboardInterrupt"]


# --------------------------------------------------------------------- hostile

SECRETS = ("U0VDUkVU", "PWNED-TITLE", "evil.example", "DCS-PAYLOAD", "APC-PAYLOAD")
HOSTILE = (
    "start \x1b]52;c;U0VDUkVU\x07 "  # clipboard write (BEL)
    "\x1b]0;PWNED-TITLE\x1b\\ "  # window title (ST)
    "\x1b]8;;https://evil.example/\x07link\x1b]8;;\x07 "  # hyperlink
    "\x1bPDCS-PAYLOAD\x1b\\ \x1b_APC-PAYLOAD\x1b\\ "
    "\x9d0;PWNED-TITLE\x9c "  # 8-bit OSC
    "\x1b[2J\x1b[H\x1b[10A\x1b[?1049h \u202eevil\u202c "
    "\x1b[31mred\x1b[0m end"
)


def _assert_safe(lines: list[str], escaped: bool = False) -> None:
    """No control sequence but SGR; no payload (unless ``escaped``: JSON shows
    control characters as inert ``\\u001b`` text, which is the data's honest form)."""
    text = "\n".join(lines)
    if escaped:
        assert "\\u001b]52;c;U0VDUkVU\\u0007" in strip_sgr(text)
    else:
        for secret in SECRETS:
            assert secret not in text, (secret, text)
    assert ANY_ESC_BUT_SGR.search(text) is None, repr(text)
    assert "\u202e" not in text
    assert "start" in text and "end" in text  # the visible text survives


def _paths(r: Renderer) -> dict[str, list[str]]:
    return {
        "code": r.code(HOSTILE),
        "traceback": r.traceback("E", "v", (HOSTILE, HOSTILE)),
        "traceback-evalue": r.traceback("E", HOSTILE, ()),
        "markdown": r.mime({"text/markdown": HOSTILE}),
        "plain": r.mime({"text/plain": HOSTILE}),
        "latex": r.mime({"text/latex": HOSTILE}),
        "json": r.mime({"application/json": {"k": HOSTILE}}),
        "json-key": r.mime({"application/json": {HOSTILE: 1}}),
    }


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("language", ["", "python", "bash"])
@pytest.mark.parametrize(
    "path",
    ["code", "traceback", "traceback-evalue", "markdown", "plain", "latex", "json", "json-key"],
)
def test_hostile_text_has_no_control_payload_after_rendering(color, language, path):
    lines = _paths(Renderer(color=color, language=language))[path]
    _assert_safe(lines, escaped=path.startswith("json"))
    if not color:
        assert "\x1b" not in "\n".join(lines)


@pytest.mark.parametrize("color", [False, True])
def test_hostile_peer_label_and_huge_hostile_text(color):
    r = Renderer(color=color)
    _assert_safe([r.header(Peer("abcd", "start " + HOSTILE), 3)])
    huge = HOSTILE * (RICH_LIMIT // len(HOSTILE) + 5)
    _assert_safe(r.mime({"text/markdown": huge}))
    _assert_safe(r.code(huge))


@pytest.mark.parametrize("value", ["\x9d", {"k": "\x9b2J\x9d0;title\x07"}, ["\x1b]52;c;eA==\x07"]])
def test_json_whose_strings_hold_c1_controls_renders_safely(value):
    """Sanitising the JSON text can leave it unparseable (a C1 OSC eats the quote):
    shown as plain text then, never an exception (found by the fuzz test)."""
    lines = Renderer(color=True).mime({"application/json": value})
    assert lines
    assert not any(c in line for line in lines for c in ("\x9b", "\x9d", "\x07"))
