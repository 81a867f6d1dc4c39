"""Tests for ipymirror.core.sanitize: peers' kernel output is hostile terminal input."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.text import Text

from ipymirror.core.sanitize import has_sgr, sanitize, strip_sgr

ESC = "\x1b"
ST = "\x1b\\"
BEL = "\x07"

_VALID_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]

HOSTILE: list[tuple[str, str, str]] = [
    # (id, input, expected output)
    # --- OSC: clipboard, title, hyperlinks ---
    ("osc52-bel", "a\x1b]52;c;U0VDUkVU\x07b", "ab"),
    ("osc52-st", "a\x1b]52;c;U0VDUkVU\x1b\\b", "ab"),
    ("osc52-8bit-st", "a\x1b]52;c;U0VDUkVU\x9cb", "ab"),
    ("osc52-query", "\x1b]52;c;?\x07", ""),
    ("osc0-title", "\x1b]0;pwned\x07ok", "ok"),
    ("osc2-title-st", "\x1b]2;pwned\x1b\\ok", "ok"),
    ("osc8-link-st", "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\ here", "click here"),
    ("osc8-link-bel", "\x1b]8;id=1;https://evil.example/\x07click\x1b]8;;\x07", "click"),
    ("osc-payload-has-csi", "\x1b]0;a\x1b[31mb\x07c", "c"),
    ("osc-then-sgr", "\x1b]0;x\x1b\\\x1b[31mc", "\x1b[31mc"),
    ("osc-unterminated", "ok\x1b]52;c;SECRET and\nmore lines\n", "ok"),
    ("osc-unterminated-bare", "\x1b]", ""),
    # --- DCS / SOS / PM / APC ---
    ("dcs-decrqss", "x\x1bP$qm\x1b\\y", "xy"),
    ("dcs-sixel", "x\x1bPq#0;2;0;0;0#0~~@@vv\x1b\\y", "xy"),
    ("dcs-bel", "x\x1bPpayload\x07y", "xy"),
    ("dcs-unterminated", "x\x1bPpayload to the end", "x"),
    ("apc-kitty-graphics", "\x1b_Gf=100,a=T;iVBORw0KGgo=\x1b\\z", "z"),
    ("pm", "\x1b^private message\x1b\\z", "z"),
    ("sos", "\x1bXstart of string\x1b\\z", "z"),
    # --- CSI: cursor, erase, modes ---
    ("cursor-up", "a\x1b[2Ab", "ab"),
    ("cursor-pos", "a\x1b[10;20Hb", "ab"),
    ("cursor-home", "a\x1b[Hb", "ab"),
    ("cursor-save-restore", "\x1b[s\x1b[uok", "ok"),
    ("erase-screen", "\x1b[2Jok", "ok"),
    ("erase-scrollback", "\x1b[3Jok", "ok"),
    ("erase-line", "ok\x1b[K", "ok"),
    ("alt-screen-on", "\x1b[?1049hok", "ok"),
    ("alt-screen-off", "ok\x1b[?1049l", "ok"),
    ("alt-screen-47", "\x1b[?47hok", "ok"),
    ("bracketed-paste-on", "\x1b[?2004hok", "ok"),
    ("bracketed-paste-off", "\x1b[?2004lok", "ok"),
    ("paste-end-injection", "\x1b[201~rm -rf ~\n", "rm -rf ~\n"),
    ("mouse-reporting", "\x1b[?1000h\x1b[?1006hok", "ok"),
    ("hide-cursor", "\x1b[?25lok", "ok"),
    ("scroll-region", "\x1b[1;5rok", "ok"),
    ("device-status-report", "\x1b[6nok", "ok"),
    ("window-ops", "\x1b[21tok", "ok"),
    ("csi-intermediate", "\x1b[0 qok", "ok"),
    ("sgr-private-params", "\x1b[?5mok", "ok"),
    ("sgr-modify-other-keys", "\x1b[>4;2mok", "ok"),
    ("sgr-with-intermediate", "\x1b[ mok", "ok"),
    # --- other escape sequences ---
    ("esc-c-reset", "\x1bcok", "ok"),
    ("esc-7-8", "\x1b7ok\x1b8", "ok"),
    ("esc-charset", "\x1b(Bok\x1b)0", "ok"),
    ("esc-keypad", "\x1b=ok\x1b>", "ok"),
    ("esc-decaln", "\x1b#8ok", "ok"),
    ("esc-ss2-ind-ri", "\x1bNa\x1bDb\x1bMc", "abc"),
    ("esc-st-alone", "a\x1b\\b", "ab"),
    ("esc-lone-at-end", "ok\x1b", "ok"),
    ("esc-esc-csi", "\x1b\x1b[2Jok", "ok"),
    ("esc-then-control", "a\x1b\x07b", "ab"),
    ("esc-intermediate-no-final", "a\x1b(\x07b", "a(b"),
    ("csi-malformed", "a\x1b[1;\x07b", "a1;b"),
    # --- C0 / DEL ---
    ("bel", "ding\x07", "ding"),
    ("backspace", "secret\x08\x08\x08\x08\x08\x08public", "secretpublic"),
    ("del", "a\x7fb", "ab"),
    ("nul", "a\x00b", "ab"),
    ("vt-ff", "a\x0b\x0cb", "ab"),
    ("shift-out-in", "a\x0eb\x0fc", "abc"),
    ("can-sub", "a\x18b\x1ac", "abc"),
    ("fs-gs-rs-us", "a\x1c\x1d\x1e\x1fb", "ab"),
    ("controls-before-sgr", "\x07\x08\x1b[31mred", "\x1b[31mred"),
    ("controls-before-osc", "a\x07\x00\x1b]0;title\x07b", "ab"),
    ("controls-before-8bit-osc", "a\x07\x85\x9d0;title\x07b", "ab"),
    # --- C1 (8-bit) ---
    ("c1-csi-erase", "a\x9b2Jb", "ab"),
    ("c1-csi-alt-screen", "a\x9b?1049hb", "ab"),
    ("c1-csi-sgr", "a\x9b31mb", "ab"),
    ("c1-csi-alone", "a\x9b\x07b", "ab"),
    ("c1-osc-bel", "a\x9d0;title\x07b", "ab"),
    ("c1-osc52-st", "a\x9d52;c;U0VDUkVU\x9cb", "ab"),
    ("c1-osc-unterminated", "a\x9d52;c;U0VDUkVU", "a"),
    ("c1-dcs", "a\x90payload\x9cb", "ab"),
    ("c1-sos-pm-apc", "a\x98x\x9cb\x9ey\x9cc\x9fz\x9cd", "abcd"),
    ("c1-nel-ind-ri", "a\x85b\x84c\x8dd", "abcd"),
    ("c1-st-alone", "a\x9cb", "ab"),
    ("c1-all-lone", "a" + "".join(map(chr, range(0x80, 0x90))) + "b", "ab"),
    # --- bidi ---
    ("bidi-rlo", "\u202eevil.exe", "evil.exe"),
    ("bidi-all", "a" + "".join(_BIDI) + "b", "ab"),
    ("bidi-trojan-source", "x = 1 \u2067# comment\u2069\u2066", "x = 1 # comment"),
    # --- kept / mixed ---
    ("sgr-16", "\x1b[31mred\x1b[0m", "\x1b[31mred\x1b[0m"),
    ("sgr-bright-bold", "\x1b[1;91mX\x1b[m", "\x1b[1;91mX\x1b[m"),
    ("sgr-256", "\x1b[38;5;208mX\x1b[48;5;17mY\x1b[0m", "\x1b[38;5;208mX\x1b[48;5;17mY\x1b[0m"),
    ("sgr-truecolor", "\x1b[38;2;255;0;0mX\x1b[0m", "\x1b[38;2;255;0;0mX\x1b[0m"),
    ("sgr-truecolor-colon", "\x1b[38:2::255:0:0mX\x1b[0m", "\x1b[38:2::255:0:0mX\x1b[0m"),
    ("sgr-curly-underline", "\x1b[4:3mX\x1b[4:0m", "\x1b[4:3mX\x1b[4:0m"),
    (
        "mixed",
        "\x1b[1m\x1b]0;t\x07bold\x1b[2K\x1b[0m\r\n\x1b[?1049h\x1b[32mok\x07\x1b[0m\n",
        "\x1b[1mbold\x1b[0m\r\n\x1b[32mok\x1b[0m\n",
    ),
    ("cr-tab-kept", "10%\r20%\tdone\r\n", "10%\r20%\tdone\r\n"),
    ("unicode-kept", "héllo 日本語 🎉 ✓\u00a0\u200b", "héllo 日本語 🎉 ✓\u00a0\u200b"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE]
)
def test_hostile_table(text: str, expected: str) -> None:
    assert sanitize(text) == expected
    assert sanitize(expected) == expected


PLAIN = [
    "",
    "hello world",
    "line 1\nline 2\n",
    "\t indented\r\n",
    "héllo 日本語 🎉",
    "x" * 10_000,
]


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_is_same_object(text: str) -> None:
    assert sanitize(text) is text
    assert strip_sgr(text) is text
    assert not has_sgr(text)


def test_coloured_text_is_same_object() -> None:
    text = "\x1b[1;31mError\x1b[0m: \x1b[38;2;1;2;3mdetail\x1b[m\n" * 100
    assert sanitize(text) is text


def test_very_long_line_unchanged() -> None:
    line = ("0123456789abcdef" * 65_536) + "\n"  # 1 MiB
    assert sanitize(line) is line
    coloured = "\x1b[32m" + line + "\x1b[0m"
    assert sanitize(coloured) is coloured


def test_very_long_line_with_escape() -> None:
    body = "A" * 1_000_000
    assert sanitize(body + "\x1b[2J" + body) == body + body
    assert sanitize("ok" + "\x1b]52;c;" + body) == "ok"


def test_strip_sgr_and_has_sgr() -> None:
    text = sanitize("\x1b[1;38;5;208mhot\x1b[0m \x1b[38:2::1:2:3mx\x1b[m\x1b]0;t\x07")
    assert has_sgr(text)
    assert strip_sgr(text) == "hot x"
    assert not has_sgr(strip_sgr(text))


@pytest.mark.parametrize("term", [BEL, ST, "\x9c"])
def test_rich_does_not_see_osc_payload(term: str) -> None:
    # rich's Text.from_ansi leaks BEL-terminated OSC payloads as visible text.
    hostile = "before\x1b]52;c;U0VDUkVUUEFZTE9BRA==" + term + "after"
    plain = Text.from_ansi(sanitize(hostile)).plain
    assert "U0VDUkVU" not in plain
    assert "52;c" not in plain
    assert plain == "beforeafter"


def test_rich_keeps_colour() -> None:
    text = Text.from_ansi(sanitize("\x1b[31mred\x1b[0m\x1b[2J"))
    assert text.plain == "red"
    assert text.spans


# --- properties ---------------------------------------------------------------

_FRAGMENTS = [
    ESC, "[", "]", "P", "X", "^", "_", "\\", "?", ";", ":", "m", "H", "J", "(", "#", " ",
    "0", "1", "38", "2", "52", "\x07", "\x08", "\x00", "\x7f", "\x9b", "\x9c", "\x9d",
    "\x90", "\x98", "\x9e", "\x9f", "\x85", "\n", "\r", "\t", "\u202e", "\u2066", "\u2069",
    "\x1b[", "\x1b]", "\x1b\\", "\x1b[31m", "\x1b[0m", "\x1b[38;2;1;2;3m", "\x1b[?1049h",
    "\x1b]52;c;", "\x1bP", "\x1b_", "\x1b[2J", "é", "日", "a", "bc",
]  # fmt: skip

hostile_text = st.lists(
    st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=5)), max_size=40
).map("".join)

sgr = st.builds(lambda params: f"\x1b[{params}m", st.text(alphabet="0123456789;:", max_size=12))
printable = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="".join(_BIDI))
)
benign_text = st.lists(
    st.one_of(printable, sgr, st.sampled_from(["\n", "\t", "\r", "\r\n"])), max_size=20
).map("".join)


def _assert_safe(out: str) -> None:
    for m in re.finditer(ESC, out):
        assert _VALID_SGR.match(out, m.start()), out
    leftover = _FORBIDDEN.search(_VALID_SGR.sub("", out))
    assert leftover is None, (out, leftover)


def _is_subsequence(sub: str, full: str) -> bool:
    it = iter(full)
    return all(c in it for c in sub)


@settings(max_examples=1000)
@given(hostile_text)
def test_property_output_is_safe_and_idempotent(text: str) -> None:
    out = sanitize(text)
    _assert_safe(out)
    assert sanitize(out) == out
    assert _is_subsequence(out, text)  # only ever deletes
    assert ESC not in strip_sgr(out)


@given(st.text())
def test_property_arbitrary_unicode(text: str) -> None:
    out = sanitize(text)
    _assert_safe(out)
    assert sanitize(out) == out


@given(benign_text)
def test_property_printable_newlines_and_sgr_unchanged(text: str) -> None:
    assert sanitize(text) is text


@given(
    st.text(alphabet=st.characters(exclude_categories=("Cc", "Cs"))).map(
        lambda s: "".join(c for c in s if c not in _BIDI)
    ),
    st.sampled_from(["", "\x07", "\x00\x08", "\x85", "\u202e"]),
    st.sampled_from(["\x1b]", "\x1bP", "\x1bX", "\x1b^", "\x1b_", "\x9d", "\x90"]),
    st.text(alphabet=st.characters(exclude_characters="\x07\x1b\x9c")),
    st.sampled_from([BEL, ST, "\x9c", ""]),
    st.text(alphabet="abc \n\x1b[31m"),
)
def test_property_string_payload_never_leaks(
    before: str, junk: str, intro: str, payload: str, term: str, after: str
) -> None:
    out = sanitize(before + junk + intro + payload + term + after)
    expected_after = sanitize(after) if term else ""
    assert out == before + expected_after
