"""A real pseudo-terminal whose output is read back by a terminal emulator.

End-to-end tests drive a program the way a person would: it runs on a pty
(so it sees a real tty of a known size), keys are typed into it, and what it
draws is fed to pyte, an in-memory VT100/xterm emulator.  Tests then assert
on what a person would *see* (``display()``, ``text()``) or, when escape
sequences matter, on the exact bytes the program wrote (``raw``).

    with Terminal([sys.executable, "-c", "input('name? ')"]) as term:
        term.wait_for("name? ")      # event driven: wakes on every chunk read
        term.send("bob\\r")           # "\\r" is what the Enter key sends
        assert term.wait_exit() == 0

Nothing here sleeps for a fixed time: waiting is done on a Condition that the
reader thread notifies after every chunk, and process exits are waited for
with pidfds.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

import ptyprocess
import pyte

REPO_ROOT = Path(__file__).resolve().parents[2]

ENTER = "\r"  # what a terminal sends for the Enter/Return key (not "\n")


def at_empty_prompt(term: Terminal) -> bool:
    """The console waits for input: the cursor is on an empty ``In [n]:`` line."""
    return re.fullmatch(r"In \[\d+\]:", term.cursor_line()) is not None


def ipymirror_argv(*args: str) -> list[str]:
    """The command line that runs the ipymirror CLI with this interpreter."""
    return [sys.executable, "-m", "ipymirror", *args]


def default_env(**overrides: str | None) -> dict[str, str]:
    """os.environ as a terminal program should see it, plus ``overrides``.

    An override of None removes that variable.  COLUMNS/LINES are removed so
    programs ask the pty for its size instead of trusting stale values.
    """
    env = dict(os.environ)
    env.update(TERM="xterm-256color", PROMPT_TOOLKIT_NO_CPR="1", PYTHONUNBUFFERED="1")
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _render(line, columns: int) -> str:
    # A pyte line is a dict {column: Char}; missing columns are blanks.  The
    # right half of a wide (CJK) character is stored as Char(data=""), so a
    # plain join gives the text as it reads.
    return "".join(line[x].data for x in range(columns)).rstrip()


class _Screen(pyte.HistoryScreen):
    """HistoryScreen that also keeps its scrollback as ready-made strings.

    pyte's own ``history.top`` holds raw line dicts; rendering 100k of those on
    every wait_for() check would be quadratic, so each line is rendered once,
    when it scrolls off the top.
    """

    def __init__(self, columns: int, lines: int, history: int) -> None:
        self.scrollback: deque[str] = deque(maxlen=history)
        self.on_process_input: Callable[[str], None] | None = None
        super().__init__(columns, lines, history=history)

    def index(self) -> None:
        top, bottom = self.margins or pyte.screens.Margins(0, self.lines - 1)
        if self.cursor.y == bottom:  # same condition pyte uses for history.top
            self.scrollback.append(_render(self.buffer[top], self.columns))
        super().index()

    def erase_in_display(self, how: int = 0, *args, **kwargs) -> None:
        super().erase_in_display(how, *args, **kwargs)
        if how == 3:  # "clear scrollback" (what `clear` sends)
            self.scrollback.clear()

    def reset(self) -> None:
        super().reset()
        self.scrollback.clear()

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        # pyte silently drops the top rows when the screen gets shorter; a real
        # terminal pushes them into scrollback, so do that.
        for y in range(max(0, self.lines - (lines or self.lines))):
            self.scrollback.append(_render(self.buffer[y], self.columns))
        super().resize(lines, columns)

    def write_process_input(self, data: str) -> None:
        # pyte calls this to answer device queries (cursor position, device
        # attributes); a real terminal types the answer back to the program.
        if self.on_process_input is not None:
            self.on_process_input(data)


class Terminal:
    """Run ``argv`` on a pseudo-terminal of ``rows`` x ``cols`` and emulate it.

    ``env=None`` means :func:`default_env`; a given dict is used as is.
    """

    def __init__(
        self,
        argv: list[str],
        cols: int = 100,
        rows: int = 30,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
    ) -> None:
        self.argv = list(argv)
        self.raw = bytearray()  # every byte the program wrote, unmodified
        self.screen = _Screen(cols, rows, history=100000)
        self.screen.on_process_input = self.send
        self._stream = pyte.ByteStream(self.screen)
        # An RLock, so a wait_for() predicate may call text()/display().
        self._cond = threading.Condition(threading.RLock())
        self._eof = False
        self._exit_status: int | None = None
        self.proc = ptyprocess.PtyProcess.spawn(
            self.argv,
            dimensions=(rows, cols),
            env=default_env() if env is None else env,
            cwd=None if cwd is None else os.fspath(cwd),
        )
        self.pid = self.proc.pid
        self._wake_r, self._wake_w = os.pipe()  # lets close() stop the reader
        self._reads = 0
        self._reader = threading.Thread(
            target=self._read_loop, name=f"pty-reader-{self.pid}", daemon=True
        )
        self._reader.start()

    # ----------------------------------------------------------------- reader

    def _read_loop(self) -> None:
        fd = self.proc.fd
        try:
            while True:
                ready, _, _ = select.select([fd, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: every holder of the pty's slave side closed it
                    return
                if not data:
                    return
                with self._cond:
                    self.raw += data
                    self._stream.feed(data)
                    self._reads += 1  # one more read fed to the screen
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    # ------------------------------------------------------------------- read

    def display(self) -> list[str]:
        """The visible rows, right-stripped."""
        with self._cond:
            return [row.rstrip() for row in self.screen.display]

    def text(self) -> str:
        """Scrollback plus visible rows: all a person could scroll through.

        Lines are right-stripped and trailing blank rows dropped.
        """
        with self._cond:
            lines = [*self.screen.scrollback, *self.display()]
        while lines and not lines[-1]:
            lines.pop()
        return "\n".join(lines)

    def cursor_line(self) -> str:
        """The row the cursor is on, right-stripped."""
        with self._cond:
            return self.display()[self.screen.cursor.y]

    @property
    def cursor(self) -> tuple[int, int]:
        """(row, column) of the cursor, 0-based."""
        with self._cond:
            return self.screen.cursor.y, self.screen.cursor.x

    def wait_for(
        self,
        what: str | re.Pattern[str] | Callable[[Terminal], object],
        timeout: float = 15.0,
    ) -> str:
        """Block until ``text()`` contains ``what`` (a str), matches it (a
        compiled regex), or ``what(self)`` is true (a callable).

        Trailing spaces on the lines of a str are ignored (see text()).
        Returns the text() that satisfied it.  Raises AssertionError, showing
        the screen, on timeout, or as soon as the program's output ends
        without it (no need to sit out the timeout then).
        """
        if isinstance(what, str):
            # A screen cannot show trailing spaces (blank cells are spaces), so
            # "name? " waits for "name?", as text() is right-stripped.
            needle = "\n".join(line.rstrip() for line in what.split("\n"))

            def check() -> bool:
                return needle in self.text()
        elif isinstance(what, re.Pattern):

            def check() -> bool:
                return what.search(self.text()) is not None
        else:

            def check() -> bool:
                return bool(what(self))

        deadline = time.monotonic() + timeout
        with self._cond:
            while not check():
                if self._eof:
                    raise AssertionError(self._failure(f"output ended before {what!r}"))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        self._failure(f"timed out after {timeout}s waiting for {what!r}")
                    )
                self._cond.wait(remaining)
            return self.text()

    def _failure(self, headline: str) -> str:
        rows = self.display()
        while len(rows) > 1 and not rows[-1] and self.cursor[0] < len(rows) - 1:
            rows.pop()
        blank = self.screen.lines - len(rows)
        width = max(self.screen.columns, 1)
        y, x = self.cursor
        if self._exit_status is None and self.proc.isalive():
            status = "running"
        else:
            status = f"exited: status {self.proc.exitstatus}, signal {self.proc.signalstatus}"
        return "\n".join(
            [
                headline,
                f"argv={self.argv} ({status})",
                f"screen {self.screen.lines}x{self.screen.columns}, cursor at row {y} col {x}:",
                "+" + "-" * width + "+",
                *("|" + row.ljust(width) + "|" for row in rows),
                "+" + "-" * width + "+" + (f" (+{blank} blank rows)" if blank else ""),
                f"last raw bytes: {bytes(self.raw[-300:])!r}",
            ]
        )

    # ------------------------------------------------------------------ write

    def send(self, s: str) -> None:
        """Type ``s`` (use ENTER / "\\r" for Enter, ctrl() for control keys)."""
        self.proc.write(s.encode())

    send_keys = send

    def ctrl(self, c: str) -> None:
        """Press Ctrl+``c``: ctrl('d') sends '\\x04', ctrl('[') sends ESC."""
        self.send(chr(ord(c.upper()) ^ 0x40))

    def resize(self, rows: int, cols: int) -> None:
        """Resize the emulated screen, then the pty (which sends SIGWINCH)."""
        with self._cond:
            self.screen.resize(rows, cols)
            self.proc.setwinsize(rows, cols)

    # -------------------------------------------------------------- lifecycle

    def wait_exit(self, timeout: float = 15.0) -> int:
        """Wait for the program to exit; return its exit status (-N if killed
        by signal N).  Also waits, briefly, for its last output to be read."""
        if not _wait_pids([self.pid], timeout):
            raise AssertionError(self._failure(f"process still running after {timeout}s"))
        status = self._reap()
        # The output is complete once the reader sees EOF.  A grandchild still
        # holding the pty open would delay that forever, so stop waiting once the
        # output has stood still for 2 s -- not while it still arrives (a loaded
        # machine can take longer than that to feed pyte a drawn image).
        while True:
            with self._cond:  # (a read being fed to the screen is finished first)
                seen = self._reads
            self._reader.join(timeout=2.0)
            with self._cond:
                if not self._reader.is_alive() or self._reads == seen:
                    return status

    def _reap(self) -> int:
        if self._exit_status is None:
            self.proc.wait()
            sig = self.proc.signalstatus
            self._exit_status = -sig if sig is not None else self.proc.exitstatus
        return self._exit_status

    def close(self) -> None:
        """Stop the program and everything it started, then the reader."""
        if self._exit_status is None:
            if self.proc.isalive():
                pids = [self.pid, *_descendants(self.pid)]
                _signal_all(pids, signal.SIGTERM)
                if not _wait_pids(pids, 5.0):
                    _signal_all(pids, signal.SIGKILL)
                    _wait_pids(pids, 5.0)
            self._reap()
        if self._reader.is_alive():
            os.write(self._wake_w, b"x")
            self._reader.join(timeout=5.0)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        self._wake_r = self._wake_w = -1
        self.proc.close(force=True)

    @property
    def closed(self) -> bool:
        return self._wake_r == -1

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.closed:
            self.close()


# ---------------------------------------------------------------- processes


def _descendants(pid: int) -> list[int]:
    """All processes below ``pid`` (Linux /proc), children before grandchildren.

    Needed because e.g. jupyter_client starts kernels in a new session, so
    signalling the pty's process group would miss them.
    """
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # comm may contain spaces
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(0), [])
        found += kids
        todo += kids
    return found


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_pids(pids: Iterable[int], timeout: float) -> bool:
    """Wait until every pid has exited (zombies count); False on timeout.

    Does not reap.  Uses pidfds, which become readable when the process ends.
    """
    fds = []
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # already gone
                fds.append(os.pidfd_open(pid))
        deadline = time.monotonic() + timeout
        while fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            ready, _, _ = select.select(fds, [], [], remaining)
            for fd in ready:
                fds.remove(fd)
                os.close(fd)
        return True
    finally:
        for fd in fds:
            os.close(fd)
