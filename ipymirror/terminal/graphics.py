"""Which image protocol your terminal speaks, found without hanging or typing garbage.

Rules:

1. ``--images kitty|iterm|sixel|blocks|off`` is obeyed as given; ``auto``
   (the default) detects.  Not a terminal (a pipe, a file): no images.
2. The environment decides first: ``KITTY_WINDOW_ID`` / ``TERM=xterm-kitty``
   / ghostty: kitty; ``TERM_PROGRAM=iTerm.app`` / ``LC_TERMINAL=iTerm2`` /
   WezTerm: iTerm2 images; ``TERM`` naming foot, mlterm or sixel: sixel.
   Inside tmux or screen: half-blocks (their passthrough needs the user's
   consent and configuration, so only an explicit ``--images`` uses it).
3. Otherwise at most one query, before the prompt exists: "cell size in
   pixels?" (``CSI 16 t``) and "device attributes?" (``CSI c``) in one write.
   Every VT100-compatible terminal answers the second, so its answer ends
   the wait; attribute 4 means sixel.  The wait is capped (0.25 s); keys
   typed meanwhile are handed to the prompt as typeahead, not lost.
4. Cell pixel size (needed to size sixel images): the tty's ``TIOCGWINSZ``
   pixel fields, else the query's answer, else 10 x 20 (the VT340's).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CHOICES", "Graphics", "detect", "from_env", "parse_replies"]

CHOICES = ("auto", "kitty", "iterm", "sixel", "blocks", "off")
DEFAULT_CELL = (10, 20)
QUERY = "\x1b[16t\x1b[c"
QUERY_TIMEOUT = 0.25

_DA1 = re.compile(rb"\x1b\[\?([0-9;]*)c")
_CELL = re.compile(rb"\x1b\[6;([0-9]+);([0-9]+)t")


@dataclass(frozen=True)
class Graphics:
    """What this terminal draws images with: ``protocol`` (or "off"), its cell size, tmux."""

    protocol: str
    cell: tuple[int, int] = DEFAULT_CELL
    tmux: bool = False  # wrap kitty/iTerm2 sequences in tmux's passthrough

    @property
    def on(self) -> bool:
        return self.protocol != "off"


def _multiplexed(env: Mapping[str, str]) -> bool:
    term = env.get("TERM", "")
    return bool(env.get("TMUX") or env.get("STY")) or term.startswith(("screen", "tmux"))


def from_env(env: Mapping[str, str]) -> str | None:
    """The protocol the environment names, or None: ask the terminal."""
    term = env.get("TERM", "")
    program = env.get("TERM_PROGRAM", "")
    if term in ("dumb", ""):
        return "off"
    if _multiplexed(env):
        return "blocks"
    if env.get("KITTY_WINDOW_ID") or term == "xterm-kitty" or program == "ghostty":
        return "kitty"
    if term == "xterm-ghostty":
        return "kitty"
    if program in ("iTerm.app", "WezTerm") or env.get("LC_TERMINAL") == "iTerm2":
        return "iterm"
    if env.get("WEZTERM_EXECUTABLE"):
        return "iterm"
    if term.startswith(("foot", "mlterm")) or "sixel" in term:
        return "sixel"
    return None


def parse_replies(data: bytes) -> tuple[bool | None, tuple[int, int] | None, bytes]:
    """(sixel?, cell size, the other bytes) from what the terminal sent back.

    ``sixel?`` is None while the device attributes have not arrived yet.
    """
    sixel: bool | None = None
    cell = None
    m = _CELL.search(data)
    if m:
        h, w = int(m.group(1)), int(m.group(2))
        if w > 0 and h > 0:
            cell = (w, h)
        data = data[: m.start()] + data[m.end() :]
    m = _DA1.search(data)
    if m:
        sixel = "4" in m.group(1).decode().split(";")
        data = data[: m.start()] + data[m.end() :]
    return sixel, cell, data


def _ioctl_cell(fd: int) -> tuple[int, int] | None:
    import fcntl
    import struct
    import termios

    try:
        packed = fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None
    rows, cols, xpixel, ypixel = struct.unpack("HHHH", packed)
    if rows and cols and xpixel and ypixel:
        return xpixel // cols, ypixel // rows
    return None


def _query(fd_in: int, fd_out: int, timeout: float) -> tuple[bool | None, tuple[int, int] | None]:
    """Send :data:`QUERY`; read the answers (cbreak, no echo) until DA1 or ``timeout``."""
    import termios

    old = termios.tcgetattr(fd_in)
    new = list(old)
    new[3] &= ~(termios.ICANON | termios.ECHO)
    new[6] = list(old[6])
    new[6][termios.VMIN], new[6][termios.VTIME] = 0, 0
    got = b""
    sixel: bool | None = None
    cell = None
    try:
        termios.tcsetattr(fd_in, termios.TCSANOW, new)
        os.write(fd_out, QUERY.encode())
        deadline = time.monotonic() + timeout
        while sixel is None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd_in], [], [], left)[0]:
                break
            chunk = os.read(fd_in, 1024)
            if not chunk:
                break
            got += chunk
            sixel, cell, _ = parse_replies(got)
    finally:
        termios.tcsetattr(fd_in, termios.TCSANOW, old)
    _, _, rest = parse_replies(got)
    if rest:
        _typeahead(fd_in, rest)
    return sixel, cell


def _typeahead(fd: int, data: bytes) -> None:
    """Keys typed during the query go to the next prompt_toolkit app on ``fd``."""
    from prompt_toolkit.input.typeahead import store_typeahead
    from prompt_toolkit.input.vt100_parser import Vt100Parser
    from prompt_toolkit.key_binding import KeyPress

    keys: list[KeyPress] = []
    parser = Vt100Parser(keys.append)
    parser.feed(data.decode("utf-8", "replace"))
    parser.flush()

    class _Fd:
        def typeahead_hash(self) -> str:  # as Vt100Input names its buffer
            return f"fd-{fd}"

    store_typeahead(_Fd(), keys)  # type: ignore[arg-type]


def detect(
    choice: str = "auto",
    *,
    stdin: Any = None,
    stdout: Any = None,
    env: Mapping[str, str] | None = None,
    timeout: float = QUERY_TIMEOUT,
) -> Graphics:
    """The :class:`Graphics` for ``choice`` on this terminal (see the module's rules)."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    env = os.environ if env is None else env
    if choice == "off":
        return Graphics("off")
    try:
        fd_in, fd_out = stdin.fileno(), stdout.fileno()
        tty = os.isatty(fd_in) and os.isatty(fd_out)
    except (AttributeError, OSError, ValueError):
        fd_in = fd_out = -1
        tty = False
    if not tty:
        return Graphics(choice if choice != "auto" else "off")
    protocol = from_env(env) if choice == "auto" else choice
    cell = _ioctl_cell(fd_out)
    if protocol is None or (protocol == "sixel" and cell is None):
        sixel = None
        with contextlib.suppress(OSError, ImportError):
            sixel, asked = _query(fd_in, fd_out, timeout)
            cell = cell or asked
        if protocol is None:
            protocol = "sixel" if sixel else "blocks"
    tmux = _multiplexed(env) and choice in ("kitty", "iterm")
    return Graphics(protocol, cell or DEFAULT_CELL, tmux)
