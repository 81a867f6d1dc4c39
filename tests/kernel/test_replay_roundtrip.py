"""record -> replay --no-wait shows the same text the live ``watch`` showed."""

from __future__ import annotations

import pytest
from recording_support import RecorderProcess, has_idle, run_ipymirror, wait_for_records

CELLS = [
    ("alice", "import sys\nprint('out'); print('err', file=sys.stderr)"),
    ("alice", "6 * 7"),
    ("bob", "from IPython.display import Markdown, display\ndisplay(Markdown('# Title\\n*em*'))"),
    ("alice", "for i in range(5):\n    print(f'\\r{i}', end='', flush=True)\nprint()"),
    ("bob", "h = display('a', display_id=True)\nh.update('b')"),
    ("alice", "1/0"),
    (
        "bob",
        "from IPython.display import clear_output\n"
        "for i in range(3):\n    clear_output(wait=True)\n    print('tick', i)",
    ),
    ("alice", "{'a': [1, 2], 'b': 'x' * 100}"),
]


def _from_marker(text: str, marker: str) -> str:
    lines = text.split("\n")
    at = next(i for i, line in enumerate(lines) if marker in line)
    return "\n".join(lines[at - 1 :])  # from the cell's header


@pytest.mark.parametrize("name", ["rt.ipym", "rt.ipym.gz"])
def test_replay_shows_what_watch_showed(kernel, peer, tmp_path, name):
    out = tmp_path / name
    rec = RecorderProcess.record(out, kernel)
    watch = RecorderProcess("watch", "--existing", kernel.connection_file)
    try:
        users = {"alice": peer(kernel, "alice"), "bob": peer(kernel, "bob")}
        # The watcher announces nothing when piped: run cells until it shows one.
        for k in range(100):
            users["alice"].run(f"print('sync', {k})")
            try:
                watch.wait_for(f"sync {k}", timeout=1)
                break
            except AssertionError:
                continue
        users["alice"].run("print('===', 'start', '===')")
        for who, code in CELLS:
            users[who].run(code)
        last = users["alice"].run("print('===', 'end', '===')")["reply"]["parent_header"]["msg_id"]
        watch.wait_for("=== end ===")
        wait_for_records(out, has_idle(last))
        assert watch.stop() == 0
        assert rec.stop() == 0
    finally:
        watch.close()
        rec.close()
    replay = run_ipymirror("replay", str(out), "--no-wait")
    assert replay.returncode == 0 and replay.stderr == ""
    marker = "print('===', 'start', '===')"
    watched = _from_marker(watch.stdout, marker)
    replayed = _from_marker(replay.stdout, marker)
    assert "Out[" in watched and "ZeroDivisionError" in watched and "tick 2" in watched
    assert replayed == watched
