"""The command line's options: one parser for the console and every subcommand.

argparse reads the options; traitlets (:mod:`ipymirror.config`) supplies every
value not given on the command line: ``--Class.trait=value`` arguments, the
environment, then ``jupyter_mirror_config.py``/``.json``.  Options may come
before or after the subcommand (``ipymirror --name bob watch``): subcommands'
copies default to "not given", so they never overwrite the top level's.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ipymirror import __version__
from ipymirror.config import IMAGE_CHOICES
from ipymirror.errors import MirrorError
from ipymirror.usage import (
    DESCRIPTION,
    EPILOG,
    EXPORT_EPILOG,
    RECORD_EPILOG,
    REPLAY_EPILOG,
    SHARE_EPILOG,
    WATCH_EPILOG,
    count,
    log_level,
    not_utf8,
    positive,
    subparser_for,
)

__all__ = ["Options", "build_parser", "parse"]


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
        type=positive,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="how long to wait for the kernel to answer (default: 10)",
    )
    _display(parser, sub=sub)


def _display(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    keep = argparse.SUPPRESS if sub else None
    parser.add_argument(
        "--images",
        choices=IMAGE_CHOICES,
        default=argparse.SUPPRESS,
        help="draw peers' images with this terminal protocol (default: auto-detect)",
    )
    parser.add_argument(
        "--image-rows",
        type=count(1),
        default=argparse.SUPPRESS,
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
        type=log_level,
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
        type=count(0),
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
        type=positive,
        default=4.0,
        metavar="MB",
        help="MB queued for one browser before one that does not keep up is cut off (default: 4)",
    )
    share.add_argument(
        "--viewer-queue",
        type=count(1),
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
    replay.add_argument("--speed", type=positive, default=1.0, help="playback speed (default: 1)")
    replay.add_argument(
        "--idle-limit", type=positive, metavar="SECONDS", help="cap pauses at SECONDS"
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
        type=positive,
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


def parse(argv: Sequence[str]) -> Options:
    """argv -> Options, every unset value filled from the settings.

    Usage errors exit with status 2 and the (sub)command's own usage, as argparse does.
    """
    from ipymirror.config import fill_from_settings, load_settings, split_trait_args

    parser = build_parser()
    bad = not_utf8(argv)
    if bad is not None:
        shown = bad.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        subparser_for(parser, argv).error(f"argument is not valid UTF-8: {shown!r}")
    trait_args, rest = split_trait_args(argv)
    options, extra = parser.parse_known_args(rest, namespace=Options())
    if extra:  # said by the subcommand, with its usage (argparse would give the top one)
        subparser_for(parser, rest).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        settings = load_settings(trait_args, getattr(options, "config", None))
    except MirrorError as exc:
        subparser_for(parser, rest).error(str(exc))
    fill_from_settings(options, settings)
    return options
