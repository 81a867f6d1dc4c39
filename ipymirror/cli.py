"""Command line: parse, dispatch, and turn every failure into one line.

Imports stay light here (argparse only); each command imports its frontend
when it runs, so ``--help`` and errors are instant and start-up is short.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from ipymirror import __version__
from ipymirror.errors import ExitStatus, MirrorError

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
A terminal console for a shared Jupyter kernel: everyone's cells appear live,
labelled, above your own prompt.

  ipymirror                      start a kernel and open the console; prints how peers join
  ipymirror --existing [FILE]    join a running kernel (no FILE: the most recent one)
  ipymirror --existing URL       join a kernel behind a Jupyter Server, JupyterLab or JupyterHub
  ipymirror --server URL         start a kernel on a Jupyter Server; prints how peers join
  ipymirror watch [--existing F] read-only view of the same stream: no prompt, never executes
  ipymirror record OUT           append every broadcast of a kernel to a recording (never executes)
  ipymirror replay IN            play a recording back with its timing (--into-existing: re-run it)
  ipymirror export IN --to FMT   recording -> ipynb, asciicast, html or markdown
  ipymirror share                read-only relay: prints a TICKET for many viewers
  ipymirror watch TICKET         watch a relay; a ticket grants watching, nothing else
"""

EPILOG = """\
FILE is a connection file path or a name in the Jupyter runtime dir
(`jupyter --runtime-dir`), as for `jupyter console --existing`.
Exit status: 0 ok, 2 usage, 3 connection file, 4 kernel unreachable,
5 kernelspec, 6 recording, 7 address, 8 server unreachable, 9 not a Jupyter
server, 10 token refused, 11 forbidden, 12 not found on the server, 130 interrupted.
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
    parser.add_argument("--token", help="Jupyter Server token (else ?token=, $JUPYTER_TOKEN)")
    parser.add_argument("--insecure", action="store_true", help="https: skip the certificate check")
    parser.add_argument("--list", action="store_true", help="list a server's kernels, then exit")
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
    parser.add_argument("--record", metavar="FILE", help="also record the session to FILE")
    parser.add_argument("--server", metavar="URL", help="start the kernel on this Jupyter Server")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    watch = sub.add_parser(
        "watch",
        help="read-only view: no prompt, never executes",
        description="Show every cell run on a kernel, with no prompt. Never sends code.",
    )
    _common(watch)
    watch.add_argument(
        "ticket", nargs="?", metavar="TICKET", help="watch a relay instead (from ipymirror share)"
    )
    watch.add_argument("--ticket-file", metavar="F", help="read the relay's TICKET from file F")
    _recording_commands(sub)
    _share_command(sub)
    return parser


def _count(minimum: int) -> Callable[[str], int]:
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


def _share_command(sub: argparse._SubParsersAction) -> None:
    share = sub.add_parser(
        "share",
        help="read-only relay: many viewers, none of them holds the kernel's key",
        description="Re-broadcast a kernel's cells to viewers who hold a ticket "
        "(ipymirror watch TICKET). Viewers cannot execute: they never get the kernel's key.",
    )
    _common(share)
    share.add_argument(
        "--bind",
        metavar="ADDR",
        help="listen on tcp://HOST:PORT and PORT+1 (default: tcp://127.0.0.1:7788; "
        "PORT 0: any free ports)",
    )
    share.add_argument("--advertise", metavar="HOST", help="host name put in the ticket")
    share.add_argument(
        "--ticket-file",
        metavar="F",
        help="write the ticket to F (mode 0600); reuse its keys and ports if F exists",
    )
    share.add_argument(
        "--viewer-ticket-file",
        metavar="F",
        help="also write a ticket file for viewers: the ticket only, never the relay's key",
    )
    share.add_argument(
        "--backlog-cells",
        type=_count(0),
        default=20,
        metavar="N",
        help="cells late joiners see first (default: 20)",
    )
    share.add_argument(
        "--viewer-queue",
        type=_count(1),
        default=1000,
        metavar="N",
        help="messages queued per viewer before a slow one misses some (default: 1000)",
    )


def _recording_commands(sub: argparse._SubParsersAction) -> None:
    record = sub.add_parser(
        "record",
        help="append every broadcast of a kernel to a recording",
        description="Join a kernel as a passive collaborator and append every IOPub message "
        "to OUT until Ctrl-C, SIGTERM or the kernel's shutdown. Never executes anything.",
    )
    _common(record)
    record.add_argument("out", metavar="OUT", help="the recording to write (.ipym; .gz compresses)")
    replay = sub.add_parser(
        "replay",
        help="play a recording back in the terminal",
        description="Play a recording back through the mirror's renderer, with its timing. "
        "Keys: space pause, . step (paused), n next cell, q quit.",
    )
    replay.add_argument("input", metavar="IN", help="a recording (.ipym or .ipym.gz)")
    replay.add_argument("--speed", type=_positive, default=1.0, help="playback speed (default: 1)")
    replay.add_argument(
        "--idle-limit", type=_positive, metavar="SECONDS", help="cap pauses at SECONDS"
    )
    replay.add_argument("--from", dest="from_cell", type=int, metavar="N", help="start at In [N]")
    replay.add_argument("--no-wait", action="store_true", help="show everything at once")
    replay.add_argument(
        "--into-existing",
        nargs="?",
        const="",
        metavar="FILE",
        help="re-execute the recorded cells on this running kernel instead",
    )
    replay.add_argument(
        "--name", help="with --into-existing: run the cells as NAME (default: the recorded peer's)"
    )
    replay.add_argument("--ssh", metavar="SERVER", help="tunnel to the kernel through ssh")
    replay.add_argument(
        "--timeout", type=_positive, default=10.0, metavar="SECONDS", help="kernel answer timeout"
    )
    replay.add_argument("--no-color", action="store_true", help="plain text (also: NO_COLOR=1)")
    replay.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    export = sub.add_parser(
        "export",
        help="convert a recording to ipynb, asciicast, html or markdown",
        description="Convert a recording. OUT defaults to IN with the format's extension.",
    )
    export.add_argument("input", metavar="IN", help="a recording (.ipym or .ipym.gz)")
    export.add_argument(
        "--to", required=True, choices=("ipynb", "asciicast", "html", "markdown"), help="format"
    )
    export.add_argument("-o", "--output", metavar="OUT", help="where to write ('-': stdout)")
    export.add_argument("--debug", action="store_true", help="show tracebacks on errors")


async def _dispatch(args: argparse.Namespace) -> ExitStatus:
    from ipymirror.commands.console import run_console
    from ipymirror.commands.watch import run_watch

    if getattr(args, "list", False):
        from ipymirror.commands.server import run_list

        return await run_list(args)
    if args.command == "watch":
        return await run_watch(args)
    if args.command == "share":
        from ipymirror.commands.share import run_share

        return await run_share(args)
    if args.command == "record":
        from ipymirror.commands.record import run_record

        return await run_record(args)
    if args.command == "replay":
        from ipymirror.commands.replay import run_replay

        return await run_replay(args)
    if args.command == "export":
        from ipymirror.commands.export import run_export

        return await run_export(args)
    return await run_console(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ipymirror`` and ``jupyter mirror``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(asyncio.run(_dispatch(args)))
    except MirrorError as exc:
        _debug(args)
        print(f"ipymirror: error: {exc}", file=sys.stderr)
        return int(exc.status)
    except KeyboardInterrupt:
        return int(ExitStatus.INTERRUPTED)
    except Exception as exc:  # one line, never a traceback (unless --debug)
        _debug(args)
        hint = "" if getattr(args, "debug", False) else " (run with --debug for details)"
        print(f"ipymirror: error: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return int(ExitStatus.ERROR)


def _debug(args: argparse.Namespace) -> None:
    """With --debug, the traceback goes first; the exit status stays the same."""
    if getattr(args, "debug", False):
        import traceback

        traceback.print_exc()
