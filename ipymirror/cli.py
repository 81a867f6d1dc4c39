"""Command line: parse, dispatch, and turn every failure into one line.

Imports stay light here (argparse only); each command imports its frontend
when it runs, so ``--help`` and errors are instant and start-up is short.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from . import __version__
from .errors import ExitStatus, MirrorError

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
A terminal console for a shared Jupyter kernel: everyone's cells appear live,
labelled, above your own prompt.

  ipymirror                      start a kernel and open the console; prints how peers join
  ipymirror --existing [FILE]    join a running kernel (no FILE: the most recent one)
  ipymirror watch [--existing F] read-only view of the same stream: no prompt, never executes
"""

EPILOG = """\
FILE is a connection file path or a name in the Jupyter runtime dir
(`jupyter --runtime-dir`), as for `jupyter console --existing`.
Exit status: 0 ok, 2 usage, 3 connection file, 4 kernel unreachable,
5 kernelspec, 6 recording, 7 address, 130 interrupted.
"""


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--existing",
        nargs="?",
        const="",
        metavar="FILE",
        help="join a running kernel by connection file (default: the most recent one)",
    )
    parser.add_argument("--name", help="how peers see you (default: your login name)")
    parser.add_argument("--ssh", metavar="SERVER", help="tunnel to the kernel through ssh")
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the kernel to answer (default: 10)",
    )
    parser.add_argument("--no-color", action="store_true", help="plain text (also: NO_COLOR=1)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ipymirror",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ipymirror {__version__}")
    _common(parser)
    parser.add_argument(
        "--kernel",
        default="python3",
        metavar="NAME",
        help="kernelspec to start when not joining (default: python3)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    watch = sub.add_parser(
        "watch",
        help="read-only view: no prompt, never executes",
        description="Show every cell run on a kernel, with no prompt. Never sends code.",
    )
    _common(watch)
    return parser


async def _dispatch(args: argparse.Namespace) -> ExitStatus:
    from .commands import run_console, run_watch

    if args.command == "watch":
        return await run_watch(args)
    return await run_console(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ipymirror`` and ``jupyter mirror``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(asyncio.run(_dispatch(args)))
    except MirrorError as exc:
        if args.debug:
            raise
        print(f"ipymirror: error: {exc}", file=sys.stderr)
        return int(exc.status)
    except KeyboardInterrupt:
        return int(ExitStatus.INTERRUPTED)
    except Exception as exc:  # one line, never a traceback (unless --debug)
        if args.debug:
            raise
        print(
            f"ipymirror: error: {type(exc).__name__}: {exc} (run with --debug for details)",
            file=sys.stderr,
        )
        return int(ExitStatus.ERROR)
