"""The words and the value checks of the command line: help texts, exit statuses,
argparse types that refuse what is not a sane value (nan, inf, negative), and the
check that every argument is valid UTF-8.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable, Sequence

__all__ = [
    "DESCRIPTION",
    "EPILOG",
    "EXIT_STATUS",
    "EXPORT_EPILOG",
    "LOG_LEVELS",
    "RECORD_EPILOG",
    "REPLAY_EPILOG",
    "SHARE_EPILOG",
    "WATCH_EPILOG",
    "count",
    "finite",
    "log_level",
    "not_utf8",
    "positive",
    "subparser_for",
]

DESCRIPTION = """\
A terminal console for a shared Jupyter kernel: everyone's cells appear live,
labelled, above your own prompt.

  ipymirror                      start a kernel and open the console; prints how peers join
  ipymirror --existing [FILE]    join a running kernel (no FILE: the most recent one)
  ipymirror --existing URL       join a kernel behind a Jupyter Server / JupyterLab / JupyterHub
  ipymirror --server URL         start a kernel on a Jupyter Server; prints how peers join
  ipymirror watch [--existing F] read-only view of the same stream: no prompt, never executes
  ipymirror record OUT           append every broadcast of a kernel to a recording (never executes)
  ipymirror replay IN            play a recording back with its timing (--into-existing: re-run it)
  ipymirror export IN --to FMT   recording -> ipynb, asciicast, html or markdown
  ipymirror share                read-only relay: prints a TICKET for many viewers
  ipymirror watch TICKET         watch a relay; a ticket grants watching, nothing else
"""

EXIT_STATUS = """\
Exit status: 0 ok, 1 other failure (e.g. an output file that cannot be written),
2 usage, 3 connection file, 4 kernel unreachable, 5 kernelspec, 6 recording,
7 address, 8 server unreachable, 9 not a Jupyter server, 10 token refused,
11 forbidden, 12 not found on the server, 130 interrupted."""

EPILOG = f"""\
examples:
  ipymirror --name alice                 start a kernel; peers join with the command it prints
  ipymirror --existing                   join the most recent kernel (jupyter console's habit)
  ipymirror -f kernel-1234.json --vi     join that kernel, vi key bindings
  ipymirror --no-color --name bob watch  options may come before the subcommand
  ipymirror --Mirror.name=bob --MirrorConsole.confirm_exit=False
  ipymirror --help-all                   every setting, as --Class.trait=value
  ipymirror --generate-config            write a commented jupyter_mirror_config.py

FILE is a connection file path or a name in the Jupyter runtime dir
(`jupyter --runtime-dir`), as for `jupyter console --existing`.
Settings: command line, then IPYMIRROR_NAME / NO_COLOR, then jupyter_mirror_config.py or
.json in the Jupyter config path (`jupyter --paths`), then built-in defaults.
{EXIT_STATUS}
"""

WATCH_EPILOG = f"""\
examples:
  ipymirror watch --existing                 the most recent kernel, read-only
  ipymirror watch --existing kernel-1.json > session.log   plain text, one line per output line
  ipymirror watch TICKET                     a relay started by `ipymirror share`
  ipymirror watch --ticket-file ticket.txt
{EXIT_STATUS}
"""

RECORD_EPILOG = f"""\
OUT must be new (or empty): an existing non-empty OUT is refused with exit status 6
before connecting — never appended to, never overwritten.

examples:
  ipymirror record session.ipym --existing      record the most recent kernel
  ipymirror record session.ipym.gz --existing kernel-1.json
  ipymirror replay session.ipym                 play it back
{EXIT_STATUS}
"""

REPLAY_EPILOG = f"""\
examples:
  ipymirror replay session.ipym --speed 4 --idle-limit 1
  ipymirror replay session.ipym --from 12 --no-wait
  ipymirror replay session.ipym --into-existing kernel-1.json   re-run the cells there
{EXIT_STATUS}
"""

EXPORT_EPILOG = f"""\
An existing OUT is replaced. An OUT that cannot be written (no such directory, no
permission) is one error line and exit status 1; an unreadable IN is exit status 6.

examples:
  ipymirror export session.ipym --to ipynb              writes session.ipynb
  ipymirror export session.ipym --to markdown -o -      to stdout
  ipymirror export session.ipym --to asciicast -o demo.cast
{EXIT_STATUS}
"""

SHARE_EPILOG = f"""\
examples:
  ipymirror share --existing                        prints a TICKET; viewers: ipymirror watch TICKET
  ipymirror share --existing --bind tcp://0.0.0.0:7788 --ticket-file ticket.txt
{EXIT_STATUS}
"""

LOG_LEVELS = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL")


def finite(minimum: float = 0.0, *, strict: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number > ``minimum`` (>= when not ``strict``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number: {text!r}")
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(
                f"must be {'>' if strict else '>='} {minimum:g}: {text!r}"
            )
        return value

    return parse


positive = finite(0.0)


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}: {text!r}")
        return value

    return parse


def log_level(text: str) -> int:
    if text.isdigit():
        return int(text)
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"not a log level: {text!r} (one of {', '.join(LOG_LEVELS)})"
        )
    name = text.upper()
    return int(logging.getLevelName("WARNING" if name == "WARN" else name))


def subparser_for(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser whose usage an error about ``argv`` should show."""
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        choices = getattr(action, "choices", None) or {}
        for arg in argv:
            if arg in choices:
                return choices[arg]
    return parser


def not_utf8(argv: Sequence[str]) -> str | None:
    """The first argument that was not valid UTF-8 (Python keeps its bytes as surrogates)."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return arg
    return None
