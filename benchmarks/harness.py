"""Machinery for the side-by-side benchmark: a kernel, a peer, a plain IOPub
subscriber, a pseudo-terminal read with timestamps, a tmux pane, /proc stats.

Everything binds or connects on 127.0.0.1 only, every wait has a timeout, and
every process started here is registered so :func:`cleanup` can end it (by
pid / process group / tmux socket — never by name).

Clocks: every timestamp is ``time.perf_counter()`` of this process (on Linux
that is CLOCK_MONOTONIC), taken by the thread that received the bytes or the
message, right after the receiving system call returned.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
COLS, ROWS = 120, 40

now = time.perf_counter


class BenchError(Exception):
    """A benchmark step failed (a tool crashed, a wait timed out)."""


# ---------------------------------------------------------------- processes

_CLEANUPS: list[Callable[[], None]] = []


def on_cleanup(fn: Callable[[], None]) -> Callable[[], None]:
    _CLEANUPS.append(fn)
    return fn


def cleanup() -> None:
    """Run every registered cleanup, newest first; never raises."""
    while _CLEANUPS:
        fn = _CLEANUPS.pop()
        with contextlib.suppress(Exception):
            fn()


def _kill_group(pid: int, alive: Callable[[], bool], grace: float = 1.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL what is left.

    ``alive`` reaps and reports the leader (Popen.poll, PtyProcess.isalive).
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = now() + grace
        while now() < deadline:
            try:
                if not alive():
                    break
            except Exception:
                break
            time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # stragglers of the group


# -------------------------------------------------------------- environment


def bench_env(home: Path) -> dict[str, str]:
    """The environment both frontends run in (isolated Jupyter/IPython dirs)."""
    env = dict(os.environ)
    for key in ("COLUMNS", "LINES", "NO_COLOR", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH"):
        env.pop(key, None)
    dirs = {
        "JUPYTER_RUNTIME_DIR": home / "runtime",
        "JUPYTER_DATA_DIR": home / "data",
        "JUPYTER_CONFIG_DIR": home / "config",
        "IPYTHONDIR": home / "ipython",
    }
    for key, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[key] = str(path)
    env["JUPYTER_PLATFORM_DIRS"] = "1"  # no "Jupyter is migrating its paths" warning
    env["TERM"] = "xterm-256color"
    # Terminals answer cursor-position requests (tmux does; PtyTerm does too), so
    # prompt_toolkit must not be told otherwise.
    env.pop("PROMPT_TOOLKIT_NO_CPR", None)
    if not env.get("LC_ALL") and not env.get("LANG"):
        env["LANG"] = "C.UTF-8"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def jupyter_command() -> str:
    """The ``jupyter`` launcher of this interpreter (not a pyenv shim)."""
    here = Path(sys.executable).parent / "jupyter"
    if here.exists():
        return str(here)
    found = shutil.which("jupyter")
    if not found:
        raise BenchError("no `jupyter` command found (pip install jupyter_console)")
    return found


# ------------------------------------------------------------------- kernel


@dataclass
class Rec:
    """One IOPub message as the plain subscriber saw it."""

    t: float
    msg_type: str
    parent: str
    state: str = ""
    text: str = ""  # stream text / text/plain of a result / code (small ones whole)
    tail: str = ""  # last 64 characters of a stream text


class Subscriber:
    """A plain IOPub subscriber (zmq SUB via jupyter_client): the floor.

    It runs in a process of its own (``python harness.py --subscribe FILE``) so
    that nothing in this process (pty reading, screen emulation) can delay it:
    it blocks in ``recv_multipart`` and takes the timestamp as soon as that
    returns, before deserialising.  Records come back as JSON lines; a thread
    here collects them.  CLOCK_MONOTONIC is shared by all processes.
    """

    def __init__(self, connection_file: str, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--subscribe", connection_file],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        on_cleanup(self.close)
        self.recs: list[Rec] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._collect, name="iopub-records", daemon=True)
        self.thread.start()

    def _collect(self) -> None:
        import json

        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError, TypeError):
                rec = Rec(*json.loads(line))
                with self.cond:
                    self.recs.append(rec)
                    self.cond.notify_all()

    def wait(self, pred: Callable[[Rec], bool], timeout: float, start: int = 0) -> Rec | None:
        """The first record from index ``start`` on matching ``pred`` (None on timeout)."""
        deadline = now() + timeout
        i = start
        with self.cond:
            while True:
                while i < len(self.recs):
                    if pred(self.recs[i]):
                        return self.recs[i]
                    i += 1
                left = deadline - now()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def mark(self) -> int:
        with self.cond:
            return len(self.recs)

    def since(self, start: int) -> list[Rec]:
        with self.cond:
            return self.recs[start:]

    def close(self) -> None:
        _kill_group(self.proc.pid, lambda: self.proc.poll() is None, 0.5)


def _subscribe(connection_file: str) -> None:
    """Body of the subscriber process: print one JSON line per IOPub message."""
    import json

    from jupyter_client import BlockingKernelClient

    client = BlockingKernelClient(connection_file=connection_file)
    client.load_connection_file()
    socket = client.connect_iopub()
    session = client.session
    out = sys.stdout
    while True:
        frames = socket.recv_multipart()
        t = now()
        try:
            _, parts = session.feed_identities(frames)
            msg = session.deserialize(parts)
        except Exception:
            continue
        content = msg.get("content") or {}
        mtype = msg.get("msg_type", "")
        parent = (msg.get("parent_header") or {}).get("msg_id", "")
        state = text = tail = ""
        if mtype == "status":
            state = content.get("execution_state", "")
        elif mtype == "stream":
            full = content.get("text", "")
            text, tail = (full if len(full) <= 4096 else ""), full[-64:]
        elif mtype == "execute_result":
            text = str((content.get("data") or {}).get("text/plain", ""))[:4096]
        elif mtype == "execute_input":
            text = str(content.get("code", ""))[:4096]
        out.write(json.dumps([t, mtype, parent, state, text, tail]) + "\n")
        out.flush()


class Kernel:
    """An ipykernel on 127.0.0.1, a peer client that runs cells, and the subscriber."""

    def __init__(self, home: Path, env: dict[str, str], timeout: float = 60.0) -> None:
        from jupyter_client import BlockingKernelClient
        from jupyter_client.connect import write_connection_file

        self.connection_file, _ = write_connection_file(
            str(home / "kernel-bench.json"), ip="127.0.0.1", transport="tcp"
        )
        self.log_path = home / "kernel.log"
        log = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the kernel
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(home),
            start_new_session=True,
        )
        log.close()
        on_cleanup(self.stop)
        self.peer = BlockingKernelClient(connection_file=self.connection_file)
        self.peer.load_connection_file()
        self.peer.session.username = "peer"
        self.peer.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        try:
            self.peer.wait_for_ready(timeout=timeout)
        except RuntimeError as exc:
            raise BenchError(f"the kernel did not start: {exc} (log: {self.log_path})") from None
        self.sub = Subscriber(self.connection_file, env)
        # A SUB socket only receives after its subscription reached the PUB side.
        for _ in range(50):
            mark = self.sub.mark()
            msg_id, _ = self.execute("pass")
            if self.sub.wait(lambda r, m=msg_id: r.parent == m, 0.2, mark):
                self.wait_reply(msg_id, 10)
                break
            self.wait_reply(msg_id, 10)
        else:
            raise BenchError("the IOPub subscriber never received a message")
        self.pid = self.proc.pid

    def execute(self, code: str) -> tuple[str, float]:
        """Send ``code`` from the peer: (msg_id, time just before sending)."""
        t = now()
        msg_id = self.peer.execute(code)
        return msg_id, t

    def wait_reply(self, msg_id: str, timeout: float) -> dict[str, Any]:
        deadline = now() + timeout
        while True:
            left = deadline - now()
            if left <= 0:
                raise BenchError(f"no execute_reply from the kernel within {timeout:g} s")
            try:
                msg = self.peer.get_shell_msg(timeout=left)
            except Exception:  # queue.Empty
                continue
            if (msg.get("parent_header") or {}).get("msg_id") == msg_id:
                return msg

    def wait_idle(self, msg_id: str, timeout: float, start: int = 0) -> Rec:
        rec = self.sub.wait(
            lambda r: r.parent == msg_id and r.msg_type == "status" and r.state == "idle",
            timeout,
            start,
        )
        if rec is None:
            raise BenchError(f"the kernel was not idle within {timeout:g} s")
        return rec

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.peer.shutdown()
        with contextlib.suppress(Exception):
            self.proc.wait(3)
        _kill_group(self.proc.pid, lambda: self.proc.poll() is None)
        with contextlib.suppress(Exception):
            self.peer.stop_channels()


# ---------------------------------------------------------------- terminals

ANSI_RE = re.compile(
    rb"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    rb"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC
    rb"|\x1b[PX^_][^\x1b]*\x1b\\"  # DCS, SOS, PM, APC
    rb"|\x1b[ -/]*[0-~]"  # other escapes (charset selection, keypad mode…)
)


# Sequences that move the cursor or erase: what follows them does not continue
# the text before them on the same line.
MOVE_RE = re.compile(rb"\x1b\[[0-9;?]*[A-HJKSTdf]")


CPR_REQUEST = b"\x1b[6n"  # "where is the cursor?"; a terminal answers ESC [ row ; col R


def strip_ansi(data: bytes, moves_break_lines: bool = False) -> bytes:
    """Remove escape sequences; optionally turn cursor moves/erases into line breaks."""
    if moves_break_lines:
        data = MOVE_RE.sub(b"\n", data)
    return ANSI_RE.sub(b"", data)


def _pyte_screen(history: int = 0) -> tuple[Any, Any]:
    """A pyte screen that also records (as text) every line scrolled off the top."""
    import pyte

    class Screen(pyte.Screen):
        def __init__(self) -> None:
            super().__init__(COLS, ROWS)
            self.scrolled: deque[str] = deque(maxlen=history or None)

        def index(self) -> None:
            top, bottom = self.margins or pyte.screens.Margins(0, self.lines - 1)
            if self.cursor.y == bottom:
                line = self.buffer[top]
                self.scrolled.append("".join(line[x].data for x in range(self.columns)).rstrip())
            super().index()

    screen = Screen()
    return screen, pyte.ByteStream(screen)


@dataclass
class _Watch:
    pattern: Any  # compiled bytes regex, or a predicate over screen rows
    start: int  # byte offset from which a bytes pattern counts
    screen: bool
    t: float | None = None
    done: threading.Event = field(default_factory=threading.Event)


class PtyTerm:
    """``argv`` on a real pseudo-terminal of COLS x ROWS, read directly.

    A reader thread reads the pty master as fast as it can, keeps every chunk
    with the time it was read, and checks the byte watchers
    (:meth:`watch_bytes`) on it.  A second thread feeds the chunks to a pyte
    screen and checks the screen watchers (:meth:`watch_screen`); a screen
    match is timed at the *arrival* of the chunk that completed it, so the
    emulator's own speed does not count.  Emulation can be switched off for
    floods (``emulate = False``); reading never waits for it.
    """

    def __init__(self, argv: list[str], env: dict[str, str], *, emulate: bool = True) -> None:
        import queue

        import ptyprocess

        self.raw = bytearray()
        self.offsets: list[int] = []  # end offset of each chunk
        self.times: list[float] = []  # read time of each chunk
        self.emulate = emulate
        self.screen, self._stream = _pyte_screen(history=200)
        self.screen.write_process_input = lambda text: self._answer(text.encode())
        self._watches: list[_Watch] = []
        self._lock = threading.Lock()
        self._screen_lock = threading.Lock()
        self._fed_t: float | None = None  # arrival time of the last chunk emulated
        self._chunks: queue.SimpleQueue[tuple[bytes, float] | None] = queue.SimpleQueue()
        self.eof = threading.Event()
        self._killed = False
        self.t_spawn = now()
        self.proc = ptyprocess.PtyProcess.spawn(
            argv, dimensions=(ROWS, COLS), env=env, cwd=str(REPO_ROOT)
        )
        self.pid = self.proc.pid
        on_cleanup(self.kill)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._loop, name=f"pty-{self.pid}", daemon=True)
        self._thread.start()
        self._emu = threading.Thread(target=self._emulate, name=f"pyte-{self.pid}", daemon=True)
        self._emu.start()

    def _loop(self) -> None:
        fd = self.proc.fd
        try:
            while True:
                ready, _, _ = select.select([fd, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                try:
                    data = os.read(fd, 1 << 20)
                except OSError:
                    return
                t = now()
                if not data:
                    return
                with self._lock:
                    before = len(self.raw)
                    self.raw += data
                    self.offsets.append(len(self.raw))
                    self.times.append(t)
                    for w in self._watches:
                        if w.t is None and not w.screen:
                            m = w.pattern.search(self.raw, max(w.start, before - 256))
                            if m:
                                w.t = self.time_at(m.end() - 1)
                                w.done.set()
                if self.emulate:
                    self._chunks.put((data, t))  # pyte answers CPR requests itself
                elif CPR_REQUEST in self.raw[max(0, before - 3) :]:
                    # No emulation during a flood: the cursor is then below the
                    # last line written, i.e. on the bottom row.
                    self._answer(b"\x1b[%d;1R" % ROWS)
        finally:
            self._chunks.put(None)
            self.eof.set()
            with self._lock:
                for w in self._watches:
                    w.done.set()

    def _answer(self, data: bytes) -> None:
        """Type ``data`` as the terminal (answers to device queries)."""
        with contextlib.suppress(OSError):
            os.write(self.proc.fd, data)

    def _emulate(self) -> None:
        while True:
            item = self._chunks.get()
            if item is None:
                return
            data, t = item
            with self._screen_lock:
                self._stream.feed(data)
                self._fed_t = t
                with self._lock:
                    pending = [w for w in self._watches if w.t is None and w.screen]
                if not pending:
                    continue
                rows = "\n".join([*self.screen.scrolled, *self.screen.display])
                self.screen.scrolled.clear()
            for w in pending:
                if w.pattern(rows):
                    w.t = t
                    w.done.set()

    def time_at(self, offset: int) -> float:
        """Read time of the chunk holding byte ``offset``."""
        i = bisect.bisect_right(self.offsets, offset)
        return self.times[min(i, len(self.times) - 1)]

    def mark(self) -> int:
        with self._lock:
            return len(self.raw)

    def watch_bytes(self, pattern: bytes, start: int | None = None) -> _Watch:
        w = _Watch(re.compile(pattern), self.mark() if start is None else start, False)
        with self._lock:
            if self.raw:
                m = w.pattern.search(self.raw, w.start)
                if m:
                    w.t = self.time_at(m.end() - 1)
                    w.done.set()
            self._watches.append(w)
        return w

    def watch_screen(self, pred: Callable[[str], bool]) -> _Watch:
        """Time the first chunk after which ``pred(scrolled + visible rows)`` holds.

        If it holds already, the time is that of the last chunk emulated.
        """
        w = _Watch(pred, 0, True)
        with self._screen_lock:
            rows = "\n".join([*self.screen.scrolled, *self.screen.display])
            if self._fed_t is not None and pred(rows):
                w.t = self._fed_t
                w.done.set()
            with self._lock:
                self._watches.append(w)
        return w

    def unwatch(self, *ws: _Watch) -> None:
        with self._lock:
            self._watches = [w for w in self._watches if w not in ws]

    def wait(self, ws: Iterable[_Watch], timeout: float) -> bool:
        """Wait until every watcher matched (True) or the timeout/EOF (False)."""
        deadline = now() + timeout
        for w in ws:
            left = deadline - now()
            if left <= 0 or not w.done.wait(left) or w.t is None:
                return False
        return True

    def wait_quiet(self, quiet: float, timeout: float) -> None:
        """Wait until no byte arrived for ``quiet`` seconds (or the timeout)."""
        deadline = now() + timeout
        while now() < deadline and not self.eof.is_set():
            with self._lock:
                last = self.times[-1] if self.times else self.t_spawn
            if now() - last >= quiet:
                return
            time.sleep(min(quiet / 4, 0.05))

    def display(self) -> list[str]:
        with self._screen_lock:
            return [row.rstrip() for row in self.screen.display]

    def alive(self) -> bool:
        return self.proc.isalive()

    def exit_text(self) -> str:
        """'exit N' / 'killed by signal N' once the program ended."""
        with contextlib.suppress(Exception):
            self.proc.isalive()
        if self.proc.exitstatus is not None:
            return f"exit {self.proc.exitstatus}"
        if self.proc.signalstatus is not None:
            return f"killed by signal {self.proc.signalstatus}"
        return "running"

    def tail(self, n: int = 400) -> str:
        with self._lock:
            return strip_ansi(bytes(self.raw[-n:])).decode("utf-8", "replace")

    def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        with contextlib.suppress(Exception):
            os.write(self._wake_w, b"x")
        _kill_group(self.pid, self.proc.isalive, 0.5)
        with contextlib.suppress(Exception):
            self.proc.close(force=True)
        self._thread.join(2)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


# --------------------------------------------------------------------- tmux

TMUX_CONF = """\
set -g status off
set -g remain-on-exit on
set -g history-limit 2000
set -g default-size {cols}x{rows}
set -g default-terminal screen-256color
"""


@dataclass
class Capture:
    t: float  # when the answer arrived
    x: int
    y: int
    dead: bool
    lines: list[str]

    @property
    def cursor_line(self) -> str:
        return self.lines[self.y] if 0 <= self.y < len(self.lines) else ""


class TmuxPane:
    """``argv`` alone in a COLS x ROWS tmux pane on a private tmux server.

    Keys and screen reads go through one tmux control-mode client (``-C``,
    flags ``no-output,ignore-size``): no process is spawned per key or per
    capture, and the client neither receives the pane's output nor resizes it.
    """

    count = 0

    def __init__(self, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.tmux = shutil.which("tmux")
        if not self.tmux:
            raise BenchError("tmux is not installed")
        TmuxPane.count += 1  # a fresh server each time: kill-server is asynchronous
        self.socket = f"ipymirror-bench-{os.getpid()}-{TmuxPane.count}"
        conf = workdir / "tmux.conf"
        conf.write_text(TMUX_CONF.format(cols=COLS, rows=ROWS))
        self.base = [self.tmux, "-L", self.socket, "-f", str(conf)]
        command = "exec " + shlex.join(argv)
        self.t_spawn = now()
        on_cleanup(self.kill)
        started = subprocess.run(
            [*self.base, "new-session", "-d", "-s", "bench", "-x", str(COLS), "-y", str(ROWS),
             "-c", str(REPO_ROOT), command],
            env=env, check=False, timeout=10, capture_output=True, text=True,
        )  # fmt: skip
        if started.returncode:
            raise BenchError(f"tmux new-session failed: {started.stderr.strip()}")
        self.ctl = subprocess.Popen(
            [*self.base, "-C", "attach-session", "-t", "bench", "-f", "no-output,ignore-size"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self._replies: deque[tuple[float, bool, list[str]]] = deque()
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="tmux-control", daemon=True)
        self._reader.start()
        self._cmd_lock = threading.Lock()
        self.pid = int(self.command("display-message -p -t bench '#{pane_pid}'")[0])
        self.server_pid = int(self.command("display-message -p '#{pid}'")[0])

    def _read(self) -> None:
        assert self.ctl.stdout is not None
        block: list[str] | None = None
        mine = False
        for raw in self.ctl.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if block is None:
                if line.startswith("%begin "):
                    block, mine = [], line.split()[-1] == "1"
                continue
            if line.startswith(("%end ", "%error ")):
                if mine:
                    with self._cond:
                        self._replies.append((now(), line.startswith("%error"), block))
                        self._cond.notify_all()
                block = None
                continue
            block.append(line)
        with self._cond:
            self._replies.append((now(), True, ["control client ended"]))
            self._cond.notify_all()

    def command(self, cmd: str, timeout: float = 10.0) -> list[str]:
        """Run one tmux command through the control client; its output lines."""
        return self._commands(cmd, 1, timeout)[0][1]

    def _commands(self, line: str, n: int, timeout: float) -> list[tuple[float, list[str]]]:
        """Send a command line of ``n`` commands (``a ; b``): one reply each.

        One line is parsed and queued at once by the server, so its commands
        run back to back, with no pane output processed in between.
        """
        assert self.ctl.stdin is not None
        replies = []
        with self._cmd_lock:
            try:
                self.ctl.stdin.write(line.encode() + b"\n")
                self.ctl.stdin.flush()
            except (BrokenPipeError, OSError):
                raise BenchError("the tmux control client is gone") from None
            deadline = now() + timeout
            with self._cond:
                while len(self._replies) < n:
                    left = deadline - now()
                    if left <= 0:
                        raise BenchError(f"tmux did not answer {line.split()[0]} in {timeout:g} s")
                    self._cond.wait(left)
                replies = [self._replies.popleft() for _ in range(n)]
        for _, error, lines in replies:
            if error:
                raise BenchError(f"tmux {line.split()[0]}: {' '.join(lines)}")
        return [(t, lines) for t, _, lines in replies]

    def send_text(self, text: str) -> float:
        """Type ``text`` literally; returns the time just before it was sent."""
        t = now()
        self.command("send-keys -t bench -l " + shlex.quote(text))
        return t

    def capture(self) -> Capture:
        """Cursor, liveness and visible rows, read atomically."""
        (_, info), (t, lines) = self._commands(
            "display-message -p -t bench '#{cursor_x},#{cursor_y},#{pane_dead}' ; "
            "capture-pane -p -t bench",
            2,
            10,
        )
        x, y, dead = (int(v or 0) for v in info[0].split(","))
        return Capture(t, x, y, bool(dead), lines)

    def dead_status(self) -> str:
        with contextlib.suppress(BenchError):
            out = self.command("display-message -p -t bench '#{pane_dead_status}'")
            return f"exit {out[0]}" if out and out[0] else "exited"
        return "exited"

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            subprocess.run([*self.base, "kill-server"], timeout=5, capture_output=True)
        tmpdir = os.environ.get("TMUX_TMPDIR") or "/tmp"
        with contextlib.suppress(OSError):  # the server may leave its socket file behind
            (Path(tmpdir) / f"tmux-{os.getuid()}" / self.socket).unlink()
        with contextlib.suppress(Exception):
            self.ctl.kill()
            self.ctl.wait(2)
        with contextlib.suppress(Exception):
            os.kill(self.pid, signal.SIGKILL)


# ------------------------------------------------------------------ py-spy


class PySpy:
    """``py-spy record`` attached to ``pid`` (raw collapsed stacks), until stop()."""

    def __init__(self, pid: int, out: Path) -> None:
        exe = Path(sys.executable).parent / "py-spy"
        self.out = out
        self.proc = subprocess.Popen(
            [str(exe) if exe.exists() else "py-spy", "record", "--pid", str(pid), "--rate", "250",
             "--format", "raw", "--output", str(out), "--nonblocking", "--threads"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        on_cleanup(self.stop)
        time.sleep(0.3)  # attaching takes a moment

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc.pid, lambda: self.proc.poll() is None)


def summarize_profile(path: Path, top: int = 12) -> str:
    """Self and inclusive sample shares of the busiest frames of a raw py-spy file."""
    from collections import Counter

    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    ours: set[str] = set()  # frames of ipymirror's own modules
    total = 0
    try:
        text = path.read_text()
    except OSError:
        return f"{path.name}: no profile written"
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = []
        for f in stack.split(";"):
            if f.startswith(("process ", "thread ")):
                continue
            short = re.sub(r" \((?:.*/)?([^/]+)\)$", r" (\1)", f)
            if "(ipymirror/" in f or "/ipymirror/" in f:
                ours.add(short)
            frames.append(short)
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    if not total:
        return f"{path.name}: no samples"
    lines = [f"{path.name}: {total} samples"]
    lines.append(
        "  self:      " + "; ".join(f"{100 * c / total:.0f}% {f}" for f, c in own.most_common(top))
    )
    mine = [(f, c) for f, c in incl.most_common() if f in ours and c < 0.95 * total]
    lines.append("  inclusive: " + "; ".join(f"{100 * c / total:.0f}% {f}" for f, c in mine[:top]))
    return "\n".join(lines)


# ------------------------------------------------------------------- /proc


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident set size (VmHWM) of ``pid`` in MB (children excluded)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def vm_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def io_wchar(pid: int) -> int | None:
    """Bytes ``pid`` has passed to write() so far (/proc/PID/io wchar)."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> tuple[float, float] | None:
    """(utime+stime from /proc/PID/stat, sum of schedstat run time of all threads).

    The first has clock-tick (10 ms) resolution; the second is nanoseconds but
    misses threads that ended in between.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])
        total = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return ticks / os.sysconf("SC_CLK_TCK"), total / 1e9


# ------------------------------------------------------------------- stats


def percentile(values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); inf values sort last."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    if s[hi] == float("inf"):
        return s[hi] if k > lo else s[lo]
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return percentile(vals, 50) if vals else None


def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="ipymirror-bench-"))
    on_cleanup(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


if __name__ == "__main__" and sys.argv[1:2] == ["--subscribe"]:
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        _subscribe(sys.argv[2])
