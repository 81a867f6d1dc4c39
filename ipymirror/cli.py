"""Command line: parse, dispatch, and turn every failure into one line.

argparse reads the options; traitlets (:mod:`ipymirror.config`) supplies every
value not given on the command line: ``--Class.trait=value`` arguments, the
environment, then ``jupyter_mirror_config.py``/``.json``.  Options may come
before or after the subcommand (``ipymirror --name bob watch``): subcommands'
copies default to "not given", so they never overwrite the top level's.
Each command imports its frontend when it runs, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ipymirror import __version__
from ipymirror.errors import ExitStatus, MirrorError

__all__ = ["Options", "build_parser", "main", "parse"]

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

#: Options whose value, when not given, comes from the settings (config / env).
_FROM_SETTINGS: dict[str, tuple[str, str]] = {
    "name": ("mirror", "name"),
    "timeout": ("mirror", "timeout"),
    "kernel": ("mirror", "kernel"),
    "ssh": ("mirror", "ssh"),
    "sshkey": ("mirror", "sshkey"),
    "ip": ("mirror", "ip"),
    "confirm_exit": ("console", "confirm_exit"),
    "editing_mode": ("console", "editing_mode"),
    "simple_prompt": ("console", "simple_prompt"),
    "banner": ("console", "banner"),
    "pager": ("console", "pager"),
}

#: Defaults of the options that have no setting behind them.
_DEFAULTS: dict[str, Any] = {
    "existing": None,
    "debug": False,
    "no_color": False,
    "colors": None,
    "record": None,
    "log_level": None,
}


class Options(argparse.Namespace):
    """What a command gets: the parsed options, each filled from the settings
    when not given.  Attribute names are argparse's ``dest`` names."""

    name: str | None
    timeout: float
    existing: str | None
    ssh: str | None
    colors: str  # Linux, LightBG or NoColor
    no_color: bool
    debug: bool
    settings: Any  # the ipymirror.config.Settings behind the values


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


_positive = finite(0.0)


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


def _log_level(text: str) -> int:
    if text.isdigit():
        return int(text)
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"not a log level: {text!r} (one of {', '.join(LOG_LEVELS)})"
        )
    name = text.upper()
    return int(logging.getLevelName("WARNING" if name == "WARN" else name))


def _parser(prog_or_sub: Any, name: str | None = None, **kw: Any) -> argparse.ArgumentParser:
    kw.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    if name is None:
        return argparse.ArgumentParser(**kw)
    return prog_or_sub.add_parser(name, **kw)


def _common(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    """Options every kernel-facing command takes.  In a subcommand they default to
    "not given" (SUPPRESS), so a value given before the subcommand survives."""
    keep = argparse.SUPPRESS if sub else None
    parser.add_argument(
        "--existing",
        nargs="?",
        const="",
        default=keep,
        metavar="FILE|URL",
        help="join a running kernel: a connection file (default: the most recent one), or "
        "a Jupyter Server URL (a notebook's page, .../api/kernels/ID, or the server root)",
    )
    parser.add_argument(
        "-f", dest="existing", default=keep, metavar="FILE", help="same as --existing FILE"
    )
    parser.add_argument(
        "--name",
        default=argparse.SUPPRESS,
        help="how peers see you (default: $IPYMIRROR_NAME, else your login name)",
    )
    parser.add_argument(
        "--ssh",
        default=argparse.SUPPRESS,
        metavar="SERVER",
        help="tunnel to the kernel through ssh",
    )
    parser.add_argument(
        "--sshkey", default=argparse.SUPPRESS, metavar="FILE", help="private key for --ssh"
    )
    parser.add_argument(
        "--token",
        default=keep,
        help="Jupyter Server token (else ?token= in the URL, $JUPYTER_TOKEN, "
        "$JUPYTERHUB_API_TOKEN, or a local server's runtime file)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        default=argparse.SUPPRESS if sub else False,
        help="https: do not check the server's certificate",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        default=argparse.SUPPRESS if sub else False,
        help="list a Jupyter Server's kernels, then exit",
    )
    parser.add_argument(
        "--ip",
        default=argparse.SUPPRESS,
        metavar="ADDR",
        help="address of the kernel's ports (a started kernel listens there)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="how long to wait for the kernel to answer (default: 10)",
    )
    _display(parser, sub=sub)


def _display(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    keep = argparse.SUPPRESS if sub else None
    parser.add_argument(
        "--images",
        choices=("auto", "kitty", "iterm", "sixel", "blocks", "off"),
        default=argparse.SUPPRESS if sub else "auto",
        help="draw peers' images with this terminal protocol (default: auto-detect)",
    )
    parser.add_argument(
        "--image-rows",
        type=_count(1),
        default=argparse.SUPPRESS if sub else 20,
        metavar="N",
        help="an image takes at most N rows (default: 20)",
    )
    parser.add_argument(
        "--colors",
        type=str.lower,
        choices=("linux", "lightbg", "nocolor"),
        default=keep,
        metavar="SCHEME",
        help="Linux (dark background, default), LightBG (light background) or NoColor",
    )
    parser.add_argument(
        "--no-color",
        action="store_true",
        default=keep,
        help="plain text (also: NO_COLOR=1, --colors NoColor)",
    )
    parser.add_argument(
        "--log-level",
        type=_log_level,
        default=keep,
        metavar="LEVEL",
        help="log to stderr from LEVEL up (DEBUG, INFO, WARN, ERROR, CRITICAL)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if sub else False,
        help="show tracebacks on errors",
    )


def _console_options(parser: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS
    parser.add_argument(
        "--kernel",
        default=s,
        metavar="NAME",
        help="kernelspec to start when not joining (default: python3)",
    )
    parser.add_argument("--record", metavar="FILE", help="also record the session to FILE")
    parser.add_argument(
        "--server", metavar="URL", help="start the kernel on this Jupyter Server instead"
    )
    parser.add_argument(
        "--confirm-exit",
        action=argparse.BooleanOptionalAction,
        default=s,
        help="ask before Ctrl-D shuts down the kernel you started while "
        "others use it (default: on)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--vi",
        dest="editing_mode",
        action="store_const",
        const="vi",
        default=s,
        help="vi key bindings at the prompt",
    )
    mode.add_argument(
        "--emacs",
        dest="editing_mode",
        action="store_const",
        const="emacs",
        default=s,
        help="emacs key bindings (the default)",
    )
    parser.add_argument(
        "--simple-prompt",
        action=argparse.BooleanOptionalAction,
        default=s,
        help="plain line reader, no escapes (default: on when TERM=dumb or "
        "stdin is not a terminal)",
    )
    parser.add_argument(
        "--banner",
        action="store_true",
        default=s,
        help="show the kernel's whole banner, not its first line",
    )
    parser.add_argument(
        "--pager",
        nargs="?",
        const="$PAGER",
        default=s,
        metavar="CMD",
        help="show long help pages with CMD (default: $PAGER, else less -R) "
        "instead of the built-in pager",
    )
    parser.add_argument("--config", metavar="FILE", help="load this config file instead")
    parser.add_argument(
        "--help-all",
        action="store_true",
        help="list every setting (--Class.trait=value) with its help",
    )
    parser.add_argument(
        "--generate-config",
        action="store_true",
        help="write a commented default jupyter_mirror_config.py",
    )
    parser.add_argument(
        "-y",
        dest="answer_yes",
        action="store_true",
        help="with --generate-config: overwrite an existing file",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _parser(None, prog="ipymirror", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"ipymirror {__version__}")
    _common(parser, sub=False)
    _console_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    watch = _parser(
        sub,
        "watch",
        help="read-only view: no prompt, never executes",
        description="Show every cell run on a kernel, with no prompt. Never sends code.",
        epilog=WATCH_EPILOG,
    )
    _common(watch, sub=True)
    watch.add_argument(
        "ticket", nargs="?", metavar="TICKET", help="watch a relay instead (from ipymirror share)"
    )
    watch.add_argument("--ticket-file", metavar="F", help="read the relay's TICKET from file F")
    _recording_commands(sub)
    _share_command(sub)
    return parser


def _share_command(sub: Any) -> None:
    share = _parser(
        sub,
        "share",
        help="read-only relay: many viewers, none of them holds the kernel's key",
        description="Re-broadcast a kernel's cells to viewers who hold a ticket "
        "(ipymirror watch TICKET). Viewers cannot execute: they never get the kernel's key.",
        epilog=SHARE_EPILOG,
    )
    _common(share, sub=True)
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
    share.add_argument(  # share --web (issue 14)
        "--web",
        metavar="HOST:PORT",
        help="also serve a read-only page for browsers on HOST:PORT (e.g. 127.0.0.1:8765)",
    )
    share.add_argument(
        "--web-queue",
        type=_positive,
        default=4.0,
        metavar="MB",
        help="MB queued for one browser before one that does not keep up is cut off (default: 4)",
    )
    share.add_argument(
        "--viewer-queue",
        type=_count(1),
        default=1000,
        metavar="N",
        help="messages queued per viewer before a slow one misses some (default: 1000)",
    )


def _recording_commands(sub: Any) -> None:
    record = _parser(
        sub,
        "record",
        help="append every broadcast of a kernel to a recording",
        description="Join a kernel as a passive collaborator and append every IOPub message "
        "to OUT until Ctrl-C, SIGTERM or the kernel's shutdown. Never executes anything.",
        epilog=RECORD_EPILOG,
    )
    _common(record, sub=True)
    record.add_argument(
        "out", metavar="OUT", help="the recording to write (.ipym; .gz compresses); must be new"
    )
    replay = _parser(
        sub,
        "replay",
        help="play a recording back in the terminal",
        description="Play a recording back through the mirror's renderer, with its timing. "
        "Keys: space pause, . step (paused), n next cell, q quit.",
        epilog=REPLAY_EPILOG,
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
        "--name",
        default=argparse.SUPPRESS,
        help="with --into-existing: run the cells as NAME (default: the recorded peer's)",
    )
    replay.add_argument(
        "--ssh",
        default=argparse.SUPPRESS,
        metavar="SERVER",
        help="tunnel to the kernel through ssh",
    )
    replay.add_argument(
        "--timeout",
        type=_positive,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="kernel answer timeout (default: 10)",
    )
    _display(replay, sub=True)
    export = _parser(
        sub,
        "export",
        help="convert a recording to ipynb, asciicast, html or markdown",
        description="Convert a recording. OUT defaults to IN with the format's extension.",
        epilog=EXPORT_EPILOG,
    )
    export.add_argument("input", metavar="IN", help="a recording (.ipym or .ipym.gz)")
    export.add_argument(
        "--to", required=True, choices=("ipynb", "asciicast", "html", "markdown"), help="format"
    )
    export.add_argument("-o", "--output", metavar="OUT", help="where to write ('-': stdout)")
    export.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )


def _subparser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser whose usage an error about ``argv`` should show."""
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        choices = getattr(action, "choices", None) or {}
        for arg in argv:
            if arg in choices:
                return choices[arg]
    return parser


def _not_utf8(argv: Sequence[str]) -> str | None:
    """The first argument that was not valid UTF-8 (Python keeps its bytes as surrogates)."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return arg
    return None


def parse(argv: Sequence[str]) -> Options:
    """argv -> Options, every unset value filled from the settings.

    Usage errors exit with status 2 and the (sub)command's own usage, as argparse does.
    """
    from ipymirror.config import load_settings, split_trait_args

    parser = build_parser()
    bad = _not_utf8(argv)
    if bad is not None:
        shown = bad.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        _subparser(parser, argv).error(f"argument is not valid UTF-8: {shown!r}")
    trait_args, rest = split_trait_args(argv)
    options = parser.parse_args(rest, namespace=Options())
    for key, value in _DEFAULTS.items():
        if not hasattr(options, key):
            setattr(options, key, value)
    try:
        settings = load_settings(trait_args, getattr(options, "config", None))
    except MirrorError as exc:
        _subparser(parser, rest).error(str(exc))
    for key, (part, trait) in _FROM_SETTINGS.items():
        if not hasattr(options, key):
            setattr(options, key, getattr(getattr(settings, part), trait))
    if options.colors is None:
        options.colors = "NoColor" if options.no_color else settings.mirror.colors
    options.colors = {"linux": "Linux", "lightbg": "LightBG", "nocolor": "NoColor"}.get(
        options.colors.lower(), options.colors
    )
    options.no_color = options.colors == "NoColor"
    options.name = options.name or None
    options.ssh = options.ssh or None
    if options.pager == "$PAGER":
        options.pager = os.environ.get("PAGER") or "less -R"
    options.settings = settings
    return options


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
