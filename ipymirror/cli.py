"""Command line: parse (:mod:`ipymirror.options`), dispatch, and turn every
failure into one line.  Each command imports its frontend when it runs, so
``--help`` is instant.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import sys
from collections.abc import Sequence

from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.options import Options, build_parser, parse

__all__ = ["main"]


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


def _special(args: Options) -> int | None:
    """``--help-all`` and ``--generate-config``: answered without a kernel."""
    from ipymirror.config import generate_config, help_all

    if getattr(args, "help_all", False):
        print(build_parser().format_help())
        print(help_all())
        return int(ExitStatus.OK)
    if getattr(args, "generate_config", False):
        print(f"wrote the default config to {generate_config(args.answer_yes)}")
        return int(ExitStatus.OK)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ipymirror`` and ``jupyter mirror``; returns the exit status."""
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.log_level is not None:
        logging.basicConfig(level=args.log_level, format="[ipymirror] %(levelname)s %(message)s")
        log = logging.getLogger("ipymirror")
        for path in args.settings.loaded_files:
            log.info("loaded config file %s", path)
    try:
        special = _special(args)
        if special is not None:
            return special
        status = int(asyncio.run(_dispatch(args)))
        sys.stdout.flush()  # a full disk shows here, not as a lost last line
        return status
    except MirrorError as exc:
        _debug(args)
        print(f"ipymirror: error: {exc}", file=sys.stderr)
        return int(exc.status)
    except KeyboardInterrupt:
        return int(ExitStatus.INTERRUPTED)
    except BrokenPipeError:  # `ipymirror … | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitStatus.ERROR)
    except OSError as exc:
        _debug(args)
        print(f"ipymirror: error: {_os_error(exc)}", file=sys.stderr)
        return int(ExitStatus.ERROR)
    except Exception as exc:  # one line, never a traceback (unless --debug)
        _debug(args)
        hint = "" if getattr(args, "debug", False) else " (run with --debug for details)"
        print(f"ipymirror: error: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return int(ExitStatus.ERROR)


#: Errors of writing our own output (stdout full, a terminal gone, a file too big).
_OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT, errno.EBADF})


def _os_error(exc: OSError) -> str:
    """One line for an OSError nothing nearer turned into a MirrorError."""
    why = exc.strerror or str(exc)
    if exc.filename:
        return f"{exc.filename}: {why}"
    if exc.errno in _OUTPUT_ERRNOS:
        return f"cannot write the output: {why}"
    return why


def _debug(args: argparse.Namespace) -> None:
    """With --debug, the traceback goes first; the exit status stays the same."""
    if getattr(args, "debug", False):
        import traceback

        traceback.print_exc()
