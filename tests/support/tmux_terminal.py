"""A real terminal for floods: tmux, read back with capture-pane.

pyte (tests/terminal.py) emulates in pure Python at ~0.3 MB/s, far slower than
the program under test; megabytes of output would measure pyte.  tmux draws
at native speed.  Each TmuxTerminal runs its own tmux server (``-L`` socket),
so tests never touch a user's tmux or each other.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
import uuid
from collections.abc import Callable

POLL = 0.02  # seconds between screen reads while waiting for a condition


class TmuxTerminal:
    def __init__(
        self, argv: list[str], *, cols: int = 100, rows: int = 30, env: dict | None = None
    ) -> None:
        self.socket = f"ipymirror-test-{uuid.uuid4().hex[:8]}"
        env = dict(os.environ if env is None else env)
        command = " ".join(shlex.quote(a) for a in argv)
        setenv = [arg for k, v in env.items() for arg in ("-e", f"{k}={v}")]
        # Options first (history-limit applies to panes created after it), then the pane.
        self._tmux(
            "-f", "/dev/null", "start-server", ";",
            "set-option", "-g", "history-limit", "1000000", ";",
            "set-option", "-g", "remain-on-exit", "on", ";",
            "new-session", "-d", "-x", str(cols), "-y", str(rows), *setenv, f"exec {command}",
        )  # fmt: skip
        self.pid = int(self._tmux("display-message", "-p", "#{pane_pid}").strip())

    def _tmux(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=30
        )
        if out.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed: {out.stderr.strip()}")
        return out.stdout

    def display(self) -> list[str]:
        return [line.rstrip() for line in self._tmux("capture-pane", "-p").split("\n")][:-1]

    def text(self) -> str:
        """Scrollback and screen, as a person could scroll through it."""
        lines = self._tmux("capture-pane", "-p", "-S", "-", "-E", "-").split("\n")
        return "\n".join(line.rstrip() for line in lines).rstrip("\n")

    def cursor_line(self) -> str:
        y = int(self._tmux("display-message", "-p", "#{cursor_y}").strip())
        return self.display()[y]

    def send(self, text: str) -> None:
        self._tmux("send-keys", "-l", text)

    def enter(self) -> None:
        self._tmux("send-keys", "Enter")

    def wait_for(self, check: Callable[[TmuxTerminal], bool], timeout: float = 30) -> None:
        """Read the screen until ``check`` holds (polling: tmux has no change events)."""
        deadline = time.monotonic() + timeout
        while not check(self):
            if time.monotonic() > deadline:
                raise AssertionError("timed out; screen:\n" + "\n".join(self.display()))
            time.sleep(POLL)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)
