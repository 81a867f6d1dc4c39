"""The one HTML renderer (core/html.py) and the live page's operations (core/page.py).

Pure tables: hostile HTML / Markdown / ANSI / images in, what may come out.
What a browser actually does with it is tests/test_web_page.py.
"""

from __future__ import annotations

import base64
import re

import pytest

from ipymirror.core.cells import CellBuilder
from ipymirror.core.events import (
    ClearOutput,
    Display,
    ExecuteInput,
    KernelRestart,
    Peer,
    Result,
    Status,
    Stream,
)
from ipymirror.core.html import CSP, HtmlRenderer, ansi_html, css, sanitize_html
from ipymirror.core.page import MAX_STREAM, LivePage

ALICE = Peer("aaaa-1111", "alice")
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEklEQVR4nGP4z8CAB+GTG8HSALfKY52fTcuY"
    "AAAAAElFTkSuQmCC"
)

# (hostile input, text that must not survive in the output)
HOSTILE = [
    ("<script>alert(1)</script>", "<script"),
    ("<script>alert(1)</script>", "alert"),
    ("<img src=x onerror=alert(1)>", "onerror"),
    ("<img src='http://evil.example/x.png'>", "evil.example"),
    ("<img src='//evil.example/x.png'>", "evil.example"),
    ("<img srcset='http://evil.example/x.png 2x'>", "evil.example"),
    ("<a href='javascript:alert(1)'>x</a>", "javascript"),
    ("<a href=' JaVaScRiPt:alert(1)'>x</a>", "alert"),
    ("<a href='data:text/html,<script>alert(1)</script>'>x</a>", "data:"),
    ("<a href='vbscript:msgbox(1)'>x</a>", "vbscript"),
    ("<a href='#gone'>x</a>", "#gone"),  # would replace the page's fragment (its secret)
    ("<svg onload=alert(1)><circle/></svg>", "svg"),
    ("<math><mi xlink:href='javascript:alert(1)'>x</mi></math>", "javascript"),
    ("<iframe src='http://evil.example/'></iframe>", "iframe"),
    ("<object data='x.swf'></object>", "object"),
    ("<embed src='x.swf'>", "embed"),
    ("<link rel=stylesheet href='http://evil.example/x.css'>", "evil.example"),
    ("<style>body{background:url(http://evil.example/)}</style>", "evil.example"),
    ("<div style='background:url(http://evil.example/)'>x</div>", "style"),
    ("<form action='http://evil.example/'><input name=q></form>", "form"),
    ("<input autofocus onfocus=alert(1)>", "onfocus"),
    ("<details open ontoggle=alert(1)>x</details>", "ontoggle"),
    ("<body onload=alert(1)>", "onload"),
    ("<meta http-equiv=refresh content='0;url=http://evil.example/'>", "refresh"),
    ("<base href='http://evil.example/'>", "evil.example"),
    ("<video><source src='http://evil.example/v.mp4'></video>", "evil.example"),
    ("<b class='cell pc31' id='c1'>spoof</b>", "pc31"),
    ("<b id='c1'>spoof</b>", "id="),
    ("<!-- <script>alert(1)</script> -->", "alert"),
    ("<scr<script>ipt>alert(1)</script>", "<script"),
    ("<img src='data:image/svg+xml;base64,PHN2Zz4='>", "svg+xml"),  # SVG only as our own img
    ("<template><script>alert(1)</script></template>", "alert"),
    ("<noscript><p title='</noscript><img src=x onerror=alert(1)>'>", "onerror"),
]


@pytest.mark.parametrize(("hostile", "gone"), HOSTILE)
def test_html_outputs_lose_everything_active(hostile, gone):
    for out in (sanitize_html(hostile), HtmlRenderer().mime({"text/html": hostile})):
        assert gone.lower() not in out.lower(), out


@pytest.mark.parametrize(("hostile", "gone"), HOSTILE)
def test_markdown_outputs_too(hostile, gone):
    out = HtmlRenderer().mime({"text/markdown": f"# title\n\n{hostile}\n\n[x]({gone}:1)"})
    assert "<h1>title</h1>" in out
    assert not re.search(r"<(script|iframe|svg|style|form|object|embed)", out, re.I)
    assert not re.search(r"\son\w+=", out, re.I)
    assert 'href="javascript' not in out.lower() and "evil.example" not in out


KEPT = [
    ("<b>bold</b> <i>it</i>", "<b>bold</b> <i>it</i>"),
    ("<table><tr><td colspan=2>1</td></tr></table>", '<td colspan="2">1</td>'),
    ("<a href='https://jupyter.org'>j</a>", 'href="https://jupyter.org"'),
    ("<a href='https://jupyter.org'>j</a>", 'rel="noopener noreferrer nofollow"'),
    (f"<img src='data:image/png;base64,{PNG}' width=4>", f'src="data:image/png;base64,{PNG}"'),
]


@pytest.mark.parametrize(("html", "kept"), KEPT)
def test_harmless_markup_is_kept(html, kept):
    assert kept in sanitize_html(html)


def test_dataframe_html_stays_a_table():
    df = (
        "<div><style scoped>.dataframe tbody tr th {vertical-align: top}</style>"
        '<table border="1" class="dataframe"><thead><tr><th></th><th>a</th></tr></thead>'
        "<tbody><tr><th>0</th><td>1</td></tr></tbody></table></div>"
    )
    out = sanitize_html(df)
    assert "<table>" in out and "<td>1</td>" in out and "vertical-align" not in out


ANSI = [
    ("plain <b>&", "plain &lt;b&gt;&amp;"),
    ("\x1b[31mred\x1b[0m", '<span class="f1">red</span>'),
    ("\x1b[1;92mok\x1b[0m", '<span class="f10 sb">ok</span>'),
    ("\x1b[38;5;200mx", '<span class="f200">x</span>'),
    ("\x1b[38;2;255;0;0mx", '<span class="f196">x</span>'),  # true colour -> 256
    ("\x1b[41;4mbg\x1b[0m", '<span class="g1 su">bg</span>'),
    ("\x1b[7mrev\x1b[0m", '<span class="fr gr">rev</span>'),
]


@pytest.mark.parametrize(("text", "html"), ANSI)
def test_ansi_colours_become_classes(text, html):
    assert ansi_html(text) == html


@pytest.mark.parametrize(
    "hostile",
    [
        "\x1b]0;title\x07after",
        "\x1b]8;;javascript:alert(1)\x1b\\link\x1b]8;;\x1b\\after",
        "\x1b]52;c;cGF5bG9hZA==\x07after",
        "\x1bPq#0;2;0;0;0#0~~\x1b\\after",
        "\x1b_Gf=100;AAAA\x1b\\after",
        "\x1b[2J\x1b[Hafter",
        "\u202eafter",
    ],
)
def test_terminal_text_loses_its_controls(hostile):
    out = HtmlRenderer().ansi(hostile)
    assert out.endswith("after") and "\x1b" not in out and "\u202e" not in out
    assert not re.search(r"title|javascript|cGF5|GF=|#0;|<a", out)


def test_no_inline_style_anywhere_the_page_csp_forbids_it():
    r = HtmlRenderer("python")
    cell = CellBuilder()
    cell.feed(0, ExecuteInput(ALICE, "m1", "for i in x: print('\x1b[31mhi')", 1))
    cell.feed(0, Stream(ALICE, "m1", "stdout", "\x1b[1;31;42mcolours\x1b[0m\n"))
    cell.feed(0, Result(ALICE, "m1", {"text/plain": "\x1b[32m42\x1b[0m"}, 1))
    html = r.cell(cell.cells[0], "c1")
    assert "style=" not in html and "<script" not in html
    assert 'class="cell pc' in html and '<span class="k">for</span>' in html
    assert "Out[1]:" in html and "colours" in html
    assert CSP == "default-src 'self'; img-src 'self' data:"
    assert ".f196{color:" in css() and ".code .k" in css()


@pytest.mark.parametrize(
    ("mime", "value", "expect"),
    [
        ("image/png", PNG, f'<img src="data:image/png;base64,{PNG}"'),
        ("image/png", PNG[:20] + "\n" + PNG[20:], f'<img src="data:image/png;base64,{PNG}"'),
        ("image/png", 'AAAA" onerror="alert(1)', "[image/png"),  # not base64: a placeholder
        ("image/svg+xml", "<svg onload='alert(1)'/>", "data:image/svg+xml;base64,"),
        ("image/x-evil", "AAAA", "image/x-evil"),
    ],
)
def test_images_are_data_uris_or_placeholders(mime, value, expect):
    out = HtmlRenderer().mime({mime: value})
    assert expect in out
    assert "onerror=" not in out and "<svg" not in out


def test_svg_becomes_an_img_never_inline():
    svg = "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
    out = HtmlRenderer().mime({"image/svg+xml": svg})
    src = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', out)
    assert src and base64.b64decode(src.group(1)).decode() == svg


# -------------------------------------------------------------- the live page


def _page(*events, cells: int = 20) -> tuple[LivePage, list[list[str]]]:
    page = LivePage("python", cells)
    ops: list[list[str]] = []
    for ev in events:
        page.feed(ev)
        ops += page.flush()
    return page, ops


def test_a_progress_line_is_resent_as_a_tail_only():
    start = ExecuteInput(ALICE, "m1", "loop", 1)
    ticks = [Stream(ALICE, "m1", "stdout", f"\rstep {i}") for i in range(50)]
    page, ops = _page(start, Stream(ALICE, "m1", "stdout", "begin\n"), *ticks)
    kinds = [op[0] for op in ops]
    assert kinds.count("cell") == 1 and "outs" not in kinds
    tails = [op for op in ops if op[0] == "tail"]
    assert len(tails) == 50 and tails[-1] == ["tail", "c1-0", "step 49"]
    appended = [op for op in ops if op[0] == "app"]
    assert appended == [] or all("step" not in op[2] for op in appended)
    snapshot = page.snapshot()[0][1]
    assert "begin\n" in snapshot and "step 49" in snapshot and "step 48" not in snapshot


def test_whole_lines_are_sent_once():
    _, ops = _page(
        ExecuteInput(ALICE, "m1", "p", 1),
        Stream(ALICE, "m1", "stdout", "a\nb"),
        Stream(ALICE, "m1", "stdout", "c\nd\n"),
    )
    sent = "".join(op[2] for op in ops if op[0] in ("app", "add", "cell"))
    assert sent.count("a\n") == 1 and sent.count("bc\n") == 1 and sent.count("d\n") == 1


def test_display_updates_and_clear_output():
    page, ops = _page(
        ExecuteInput(ALICE, "m1", "d", 1),
        Display(ALICE, "m1", {"text/plain": "'v0'"}, display_id="x"),
        ExecuteInput(ALICE, "m2", "h.update('v1')", 2),  # a later cell updates it
        Display(ALICE, "m2", {"text/plain": "'v1'"}, display_id="x", update=True),
    )
    html = '<div class="o display" id="c1-0"><pre>\'v1\'</pre></div>'
    assert ["out", "c1-0", html] in ops
    page.feed(ClearOutput(ALICE, "m1", wait=False))
    page.feed(Stream(ALICE, "m1", "stdout", "fresh\n"))
    new = page.flush()
    assert new[0][0] == "outs" and "fresh" in new[0][2] and "v1" not in new[0][2]


def test_the_page_is_bounded():
    events = []
    for n in range(30):
        events += [ExecuteInput(ALICE, f"m{n}", f"cell {n}", n), Status(ALICE, f"m{n}", "idle")]
    page, _ = _page(*events, cells=5)
    assert len(page.builder.cells) == 5
    snap = page.snapshot()[0][1]
    assert "In [29]" in snap and "In [25]" in snap and "In [24]" not in snap
    flood = Stream(ALICE, "m29", "stdout", "x" * 99 + "\n")
    for _ in range(MAX_STREAM // 50):
        page.feed(flood)
        page.flush()
    text = page.builder.cells[-1].outputs[0]["text"]
    assert len(text) <= 2 * MAX_STREAM + 100
    # Past the builder's per-cell budget too: what the page already sent is not held.
    for n in range(120):  # 12 MB in all, 3 × MAX_CELL_CHARS
        page.feed(Stream(ALICE, "m29", "stdout", f"chunk {n:03d} " + "y" * 99_990 + "\n"))
        ops = page.flush()
    assert any(op[0] == "app" and "chunk 119" in op[2] for op in ops)
    assert page.builder.cells[-1].dropped_chars == 0
    assert page.builder.cells[-1].size <= 2 * MAX_STREAM + 200_000


def test_a_restart_is_a_notice_in_its_place():
    page, ops = _page(
        ExecuteInput(ALICE, "m1", "before", 1),
        KernelRestart(ALICE, "r1", restart=True),
        ExecuteInput(ALICE, "m2", "after", 1),
    )
    assert [op[0] for op in ops if op[0] != "status"] == ["cell", "note", "cell"]
    snap = page.snapshot()[0][1]
    assert snap.index("before") < snap.index("kernel restarted by alice·aaaa") < snap.index("after")
