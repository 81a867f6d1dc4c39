"""End-to-end: ``ipymirror share --web`` in a real headless browser.

A real kernel, a real peer, the real ``share`` process, and Debian's chromium
driven by Playwright; assertions are on the DOM, as a student sees it.
Waiting is on the DOM (Playwright's ``expect`` and ``wait_for_function``),
never on sleeps.  Chromium comes from apt (``.ci/run``): Playwright cannot
download browsers here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernel"))
from test_share import RelayProcess, relay  # noqa: F401  (relay: the fixture)

CHROMIUM = os.environ.get("IPYMIRROR_CHROMIUM", "/usr/bin/chromium")
WAIT_MS = 30_000
# A 4×4 red PNG.
PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEklEQVR4nGP4z8CAB+GTG8HSALfKY52fTcuY"
    "AAAAAElFTkSuQmCC"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), f"no {CHROMIUM}: apt-get install -y chromium"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu"])
        yield b
        b.close()


def share_web(relay_factory: Any, km: Any) -> tuple[RelayProcess, str]:
    rp = relay_factory(km, "--web", "127.0.0.1:0")
    line = rp.wait_line(r"browsers open:")
    url = line.split("browsers open:", 1)[1].strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/#[A-Za-z0-9_-]{43}", url), url
    return rp, url


def open_page(browser: Any, url: str, **options: Any) -> Any:
    page = browser.new_page(viewport={"width": 1000, "height": 700}, **options)
    page.goto(url)
    page.wait_for_function("() => window.ipymirrorApplied >= 1", timeout=WAIT_MS)
    return page


def test_a_student_sees_the_session_live(browser, kernel, peer, relay, tmp_path):  # noqa: F811
    from playwright.sync_api import expect

    alice = peer(kernel, "alice")
    rp, url = share_web(relay, kernel)
    page = open_page(browser, url)

    # The page itself: from the package, with its CSP.
    with urllib.request.urlopen(url.split("#")[0]) as resp:
        assert resp.headers["Content-Security-Policy"].startswith(
            "default-src 'self'; img-src 'self' data:"
        )

    alice.run("print('hello from alice')\nfor k in range(3): pass\n6 * 7")
    cell = page.locator("section.cell").filter(has_text="hello from alice")
    expect(cell).to_have_count(1, timeout=WAIT_MS)
    head = cell.locator(".head")
    expect(head).to_contain_text(f"alice·{alice.session_id.replace('-', '')[:4]}")
    expect(head).to_contain_text("In [1]")
    assert re.search(r"\bpc\d\d\b", cell.get_attribute("class") or "")  # the peer's colour
    expect(cell.locator(".code .k").first).to_have_text("for")  # highlighted as python
    expect(cell.locator(".stream.stdout")).to_have_text("hello from alice\n")
    expect(cell.locator(".result")).to_contain_text("Out[1]:")
    expect(cell.locator(".result")).to_contain_text("42")

    # A \r progress line and an update_display_data, updated in place.
    alice.run(
        "import time\nfrom IPython.display import display\n"
        "h = display('state v0', display_id=True)\n"
        "for i in range(5):\n"
        "    print(f'\\rprogress {i}/4', end='', flush=True); time.sleep(0.05)\n"
        "    h.update(f'state v{i + 1}')\n"
    )
    prog = page.locator(".stream").filter(has_text="progress")
    expect(prog).to_have_text("progress 4/4", timeout=WAIT_MS)
    expect(page.locator(".display").filter(has_text="state v")).to_have_text("'state v5'")

    # A traceback with its colours, an image, Markdown.
    alice.run(
        "from IPython.display import Image, Markdown\n"
        f"display(Image(data=__import__('base64').b64decode('{PNG}'), format='png'))\n"
        "display(Markdown('# A title\\n\\nsome **bold** text'))\n"
        "1 / 0"
    )
    err = page.locator("pre.error").filter(has_text="ZeroDivisionError")
    expect(err).to_have_count(1, timeout=WAIT_MS)
    assert err.locator("span[class*='f']").count() > 0  # ANSI colours became classes
    img = page.locator("img[src^='data:image/png;base64,']")
    expect(img).to_have_count(1)
    page.wait_for_function(
        "() => document.querySelector(\"img[src^='data:image/png']\").naturalWidth === 4"
    )
    expect(page.locator(".md h1")).to_have_text("A title")
    expect(page.locator(".md strong")).to_have_text("bold")

    # The status line at the bottom: who runs what now, then idle again.
    expect(page.locator("#status")).to_contain_text("idle")
    expect(page.locator("#status")).to_contain_text("alice·")
    go = tmp_path / "go"
    alice.execute_nowait(
        f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.01)"
    )
    expect(page.locator("#status")).to_contain_text(f"▶ {head.inner_text()[2:12]}", timeout=WAIT_MS)
    expect(page.locator("#status")).to_contain_text("busy")
    go.touch()
    expect(page.locator("#status")).to_contain_text("idle", timeout=WAIT_MS)

    # A late joiner: the backlog first, then live.
    late = open_page(browser, url)
    expect(late.locator("section.cell").filter(has_text="hello from alice")).to_have_count(1)
    expect(late.locator(".stream").filter(has_text="progress")).to_have_text("progress 4/4")
    alice.run("print('after the late joiner')")
    for p in (page, late):
        expect(p.locator(".stream").filter(has_text="after the late joiner")).to_have_count(
            1, timeout=WAIT_MS
        )

    # Follow-the-end scrolling stops when the reader scrolls up; "jump to live".
    alice.run("for i in range(150): print('filler', i)")
    expect(page.locator(".stream").filter(has_text="filler 149")).to_have_count(1)
    page.wait_for_function(
        "() => innerHeight + scrollY >= document.documentElement.scrollHeight - 48"
    )
    page.mouse.wheel(0, -2000)
    expect(page.locator("#live")).to_be_visible()
    top = page.evaluate("scrollY")
    alice.run("print('while scrolled up')")
    expect(page.locator(".stream").filter(has_text="while scrolled up")).to_have_count(1)
    assert page.evaluate("scrollY") == top  # the reader's place is kept
    page.locator("#live").click()
    page.wait_for_function(
        "() => innerHeight + scrollY >= document.documentElement.scrollHeight - 48"
    )
    expect(page.locator("#live")).to_be_hidden()
    assert rp.proc.poll() is None
    assert rp.stop() == 0


def test_the_page_keeps_its_past_across_a_relay_restart(browser, kernel, peer, relay):  # noqa: F811
    from playwright.sync_api import expect

    alice = peer(kernel, "alice")
    rp, url = share_web(relay, kernel)
    page = open_page(browser, url)
    alice.run("print('before the restart')")
    expect(page.locator(".stream").filter(has_text="before the restart")).to_have_count(
        1, timeout=WAIT_MS
    )
    assert rp.stop() == 0
    expect(page.locator("#conn")).to_contain_text("reconnecting", timeout=WAIT_MS)

    port = url.split("/#")[0].rsplit(":", 1)[1]
    again = relay(kernel, "--web", f"127.0.0.1:{port}", bind=None)  # same ticket file
    assert again.wait_line(r"browsers open:").split("open:", 1)[1].strip() == url  # same URL
    expect(page.locator("#conn")).to_have_text("", timeout=WAIT_MS)  # reconnected by itself
    alice.run("print('after the restart')")
    expect(page.locator(".stream").filter(has_text="after the restart")).to_have_count(
        1, timeout=WAIT_MS
    )
    expect(page.locator(".stream").filter(has_text="before the restart")).to_have_count(1)
    expect(page.locator(".notice").filter(has_text="the relay restarted")).to_have_count(1)
    assert page.locator("#c1").count() == 1  # the new run's ids never meet the old ones
    assert again.stop() == 0


HOSTILE_HTML = (
    "<script>window.__pwned = 'script'</script>"
    "<img src=x onerror=\"window.__pwned = 'onerror'\">"
    "<svg onload=\"window.__pwned = 'svg'\"><script>window.__pwned = 'svg2'</script></svg>"
    "<a id=js href=\"javascript:window.__pwned = 'href'\">click me</a>"
    "<iframe src='http://127.0.0.2:9/frame'></iframe>"
    "<img src='http://127.0.0.2:9/img.png'>"
    "<link rel=stylesheet href='http://127.0.0.2:9/x.css'>"
    "<style>body { background: url(http://127.0.0.2:9/bg.png) }</style>"
    '<div style="background:url(http://127.0.0.2:9/style.png)">styled</div>'
    "<form action='http://127.0.0.2:9/'><input name=q autofocus onfocus=\"alert(1)\"></form>"
    "<details open ontoggle=\"alert('toggle')\">x</details>"
    "<b class='cell pc31' id='c1'>spoof</b><p>hostile html done</p>"
)
HOSTILE_MD = (
    "[click](javascript:alert(1)) <img src=x onerror=alert(2)> ![i](http://127.0.0.2:9/md.png)"
    " <script>alert(3)</script> hostile markdown done"
)
HOSTILE_SVG = (
    "<svg xmlns='http://www.w3.org/2000/svg' onload=\"alert('svg')\" width='10' height='10'>"
    "<script>alert('svg script')</script>"
    "<image href='http://127.0.0.2:9/svg.png'/></svg>"
)


def test_hostile_output_executes_nothing_loads_nothing(browser, kernel, peer, relay):  # noqa: F811
    from playwright.sync_api import expect

    mallory = peer(kernel, "mallory")
    rp, url = share_web(relay, kernel)
    origin = url.split("/#")[0]
    dialogs: list[str] = []
    elsewhere: list[str] = []
    # Two pages: one as a student has it, one with the CSP switched off, to show
    # that the sanitiser alone already stops everything (the CSP is a backstop).
    pages = [open_page(browser, url), open_page(browser, url, bypass_csp=True)]
    for p in pages:
        p.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        p.on(
            "request",
            lambda r: None if r.url.startswith((origin, "data:")) else elsewhere.append(r.url),
        )
    code = (
        "from IPython.display import HTML, Markdown, SVG, display\n"
        f"display(HTML({HOSTILE_HTML!r}))\n"
        f"display(Markdown({HOSTILE_MD!r}))\n"
        f"display(SVG({HOSTILE_SVG!r}))\n"
        "print('\\x1b]0;pwned title\\x07\\x1b]8;;javascript:alert(4)\\x1b\\\\link\\x1b]8;;\\x1b\\\\"
        " \\x1b[2J\\x1b[31m<b>not bold</b>\\x1b[0m ansi done')\n"
    )
    mallory.run(code)
    for page in pages:
        _check_harmless(page)
    mallory.run("print('last')")  # give scripts every chance: one more round trip
    for page in pages:
        expect(page.locator(".stream").filter(has_text="last")).to_have_count(1, timeout=WAIT_MS)
        assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert elsewhere == []

    # Read-only, by construction: wrong or missing secrets get only a 4403 close,
    # and an authenticated page may send nothing but a catch-up request.
    with ThreadPoolExecutor(1) as pool:  # (Playwright's sync API owns this thread's loop)
        results = pool.submit(asyncio.run, _probe(origin, url.split("#", 1)[1])).result()
    assert results["wrong"] == results["none"] == results["binary"] == (4403, 0), results
    assert results["after_auth"][0] == 4403 and results["after_auth"][1] >= 1, results
    mallory.run("print('after the probes')")
    page = pages[0]
    expect(page.locator(".stream").filter(has_text="after the probes")).to_have_count(1)
    assert page.locator(".code").filter(has_text="print('x')").count() == 0
    rp.wait_line(r"refused: [3-9]")
    assert rp.stop() == 0


def _check_harmless(page: Any) -> None:
    from playwright.sync_api import expect

    expect(page.locator(".html").filter(has_text="hostile html done")).to_have_count(
        1, timeout=WAIT_MS
    )
    expect(page.locator(".md").filter(has_text="hostile markdown done")).to_have_count(1)
    stream = page.locator(".stream").filter(has_text="ansi done")
    expect(stream).to_have_count(1)
    assert "<b>not bold</b>" in stream.inner_text()  # text, not markup
    assert "pwned title" not in stream.inner_text()
    expect(page.locator("img[src^='data:image/svg+xml']")).to_have_count(1)
    for link in page.locator("main .html a, main .md a").all():
        link.click()  # their javascript: hrefs are gone
    page.locator(".html details").first.click()
    assert page.locator("main script, main iframe, main form, main style, main svg").count() == 0
    assert (
        page.locator("[onerror], [onload], [onclick], [style], main b[class], main b[id]").count()
        == 0
    )
    assert page.title() == "ipymirror · live session"


async def _probe(origin: str, secret: str) -> dict[str, tuple[int, int]]:
    """Raw websocket clients: (close code, data messages received) per case."""
    import aiohttp

    ws_url = origin.replace("http:", "ws:") + "/ws"
    out: dict[str, tuple[int, int]] = {}
    async with aiohttp.ClientSession() as session:
        cases: dict[str, list[Any]] = {
            "wrong": [json.dumps({"v": 1, "type": "catchup", "secret": "x" * 43})],
            "none": [json.dumps({"v": 1, "type": "catchup"})],
            "binary": [b"\x00" * 10],
            "after_auth": [
                json.dumps({"v": 1, "type": "catchup", "secret": secret}),
                json.dumps({"v": 1, "type": "execute", "code": "print('x')"}),
            ],
        }
        for name, sends in cases.items():
            async with session.ws_connect(ws_url) as ws:
                data = 0
                for item in sends:
                    if isinstance(item, bytes):
                        await ws.send_bytes(item)
                    else:
                        await ws.send_str(item)
                    if name == "after_auth" and data == 0:
                        msg = await ws.receive(timeout=30)
                        data += msg.type == aiohttp.WSMsgType.TEXT
                async for msg in ws:
                    data += msg.type == aiohttp.WSMsgType.TEXT
                out[name] = (ws.close_code or 0, data)
    return out
