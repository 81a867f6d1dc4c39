"""Make docs/web-page.png: the ``share --web`` page of a real session, in headless chromium.

Run: python docs/web_screenshot.py   (starts its own ipykernel and ``ipymirror share
--web`` on 127.0.0.1; needs Debian's chromium at /usr/bin/chromium and playwright)
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile

from jupyter_client.manager import start_new_kernel
from jupyter_client.session import new_id

OUT = pathlib.Path(__file__).with_name("web-page.png")

PLOT = """
import struct, zlib, math
from IPython.display import Image, display
w, h = 360, 140
rows = []
for y in range(h):
    row = bytearray([0])
    for x in range(w):
        on = abs(h / 2 - 50 * math.sin(x / 30) - y) < 3
        row += bytes((40, 120, 220) if on else (250, 250, 250))
    rows.append(bytes(row))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b"")
display(Image(data=png))
"""

CELLS = [
    (
        "bob",
        "import time\nfor step in range(11):\n"
        "    print(f'\\rtraining {step * 10:3d}% ' + '█' * step, end='', flush=True)\n"
        "    time.sleep(0.05)\nprint()",
    ),
    (
        "carol",
        "from IPython.display import HTML, Markdown, display\n"
        "display(Markdown('## Results\\nAccuracy is **0.93** on the *held-out* set.'))\n"
        "HTML('<table><tr><th>model</th><th>acc</th></tr>"
        "<tr><td>baseline</td><td>0.81</td></tr><tr><td>ours</td><td>0.93</td></tr></table>')",
    ),
    ("bob", PLOT),
    ("carol", "import sys\nprint('checking the data…', file=sys.stderr)\n{'a': 1}['b']"),
]


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    km, me = start_new_kernel(kernel_name="python3")
    tmp = tempfile.mkdtemp()
    share = subprocess.Popen(
        [sys.executable, "-m", "ipymirror", "share", "--existing", km.connection_file,
         "--bind", "tcp://127.0.0.1:0", "--ticket-file", f"{tmp}/ticket", "--web", "127.0.0.1:0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = ""
        for line in share.stdout:
            if "browsers open:" in line:
                url = line.split("browsers open:", 1)[1].strip()
            if line.startswith("viewers:"):
                break
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 960, "height": 1240})
            page.goto(url)
            expect(page.locator("#status")).to_contain_text("●", timeout=30_000)
            peers = {}
            for name, code in CELLS:
                kc = peers.get(name)
                if kc is None:
                    kc = peers[name] = km.client()
                    kc.session.session = new_id()
                    kc.session.username = name
                    kc.start_channels()
                    kc.wait_for_ready(timeout=30)
                kc.execute_interactive(code, timeout=30, output_hook=lambda msg: None)
            expect(page.locator("pre.error")).to_contain_text("KeyError", timeout=30_000)
            expect(page.locator("#status")).to_contain_text("idle")
            page.wait_for_function(
                "() => innerHeight + scrollY >= document.documentElement.scrollHeight - 48"
            )
            page.screenshot(path=str(OUT))  # what a student sees: the end, live
            browser.close()
        for kc in peers.values():
            kc.stop_channels()
    finally:
        share.terminate()
        share.wait(15)
        me.stop_channels()
        km.shutdown_kernel(now=True)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
