"""The commands' side of the Jupyter Server transport: options -> a ServerLink; ``--list``.

``--existing URL`` joins a kernel behind a server, ``--server URL [--kernel NAME]``
starts one there, ``--list`` prints a server's kernels with the command that joins
each.  The token (``--token``, ``?token=``, ``JUPYTER_TOKEN``, ``JUPYTERHUB_API_TOKEN``,
a local server's runtime file) is never printed.
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from typing import Any

from jupyter_core.paths import jupyter_runtime_dir

from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.transports.server.choose import describe, rows
from ipymirror.transports.server.link import ServerLink
from ipymirror.transports.server.rest import ServerAPI, find_token
from ipymirror.transports.server.urls import ServerTarget, parse_server_url

__all__ = ["open_server_link", "run_list", "server_api"]


def _target(args: Namespace) -> ServerTarget:
    url = getattr(args, "server", None) or args.existing
    if getattr(args, "server", None) and args.existing is not None:
        raise MirrorError("give --server or --existing, not both", ExitStatus.USAGE)
    try:
        return parse_server_url(url)
    except ValueError as exc:
        raise MirrorError(str(exc), ExitStatus.USAGE) from None


def server_api(args: Namespace, target: ServerTarget) -> ServerAPI:
    token, _ = find_token(target, getattr(args, "token", None), os.environ, jupyter_runtime_dir())
    timeout = float(getattr(args, "timeout", 10.0))
    return ServerAPI(
        target, token, insecure=bool(getattr(args, "insecure", False)), timeout=timeout
    )


async def open_server_link(
    args: Namespace, username: str, *, join_only: bool = False
) -> ServerLink:
    """``--existing URL`` (join) or ``--server URL`` (start a kernel there)."""
    if getattr(args, "ssh", None):
        raise MirrorError(
            "--ssh is for connection files; a server URL needs none", ExitStatus.USAGE
        )
    target = _target(args)
    api = server_api(args, target)
    if getattr(args, "server", None):
        if join_only:
            await api.close()
            raise MirrorError(
                "--server starts a kernel: use it without a subcommand", ExitStatus.USAGE
            )
        try:
            return await ServerLink.start(api, target, args.kernel, username)
        except BaseException:
            await api.close()
            raise
    return ServerLink(api, target, username)


async def run_list(args: Namespace, out: Any = None) -> ExitStatus:
    """``--list``: the server's kernels, most recently active first, one join command each."""
    out = out or sys.stdout
    url = getattr(args, "server", None) or args.existing
    if not url:
        raise MirrorError("--list needs a server: --existing URL --list", ExitStatus.USAGE)
    target = _target(args)
    api = server_api(args, target)
    try:
        await api.check()
        table = rows(await api.kernels(), await api.sessions())
    finally:
        await api.close()
    if not table:
        print(f"no kernel is running on {target.base}", file=out)
    for row in table:
        print(describe(row, target.base), file=out)
    return ExitStatus.OK
