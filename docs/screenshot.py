"""Make docs/mirrored-session.svg: a real session on a real kernel, as ipymirror draws it.

Run: python docs/screenshot.py   (starts its own ipykernel on 127.0.0.1)
"""

from __future__ import annotations

import io
import pathlib

from jupyter_client.manager import start_new_kernel
from jupyter_client.session import new_id
from rich.console import Console
from rich.text import Text

from ipymirror.core.presence import Presence
from ipymirror.core.protocol import to_event
from ipymirror.core.render import Renderer
from ipymirror.core.status import status_line
from ipymirror.core.transcript import Transcript

CELLS = [
    ("bob", "import pandas as pd\nfor step in range(3):\n    print('step', step)"),
    ("carol", "total = sum(range(10))\ntotal"),
    ("bob", "from IPython.display import Markdown\nMarkdown('**Peers** see *each other*')"),
    ("carol", "import sys\nprint('careful', file=sys.stderr)\n1/0"),
]


def main() -> None:
    km, me = start_new_kernel(kernel_name="python3")
    peers = {}
    msgs = []
    try:
        for name, code in CELLS:
            kc = peers.get(name)
            if kc is None:
                kc = peers[name] = km.client()
                kc.session.session = new_id()
                kc.session.username = name
                kc.start_channels()
                kc.wait_for_ready(timeout=30)
            msg_id = kc.execute(code.replace("import pandas as pd\n", ""))
            while True:
                msg = me.get_iopub_msg(timeout=30)
                msgs.append(msg)
                parent = msg["parent_header"].get("msg_id")
                if parent == msg_id and msg["content"].get("execution_state") == "idle":
                    break
    finally:
        for kc in peers.values():
            kc.stop_channels()
        me.stop_channels()
        km.shutdown_kernel(now=True)
    renderer = Renderer(width=78, color=True, language="python")
    transcript, room = Transcript(renderer, me="alice-session"), Presence("alice-session")
    for msg in msgs:
        ev = to_event(msg)
        if ev is not None:
            room.feed(ev)
            transcript.feed(ev)
    text = "".join(transcript.take()) + "\x1b[32mIn [5]: \x1b[0mx = total * 2\n"
    text += status_line(room, renderer)
    console = Console(record=True, width=80, file=io.StringIO(), force_terminal=True)
    console.print(Text.from_ansi(text))
    out = pathlib.Path(__file__).with_name("mirrored-session.svg")
    out.write_text(console.export_svg(title="ipymirror — alice's terminal"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
