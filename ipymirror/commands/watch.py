"""``ipymirror watch``: the read-only view of a kernel, or of a relay (``watch TICKET``).

It never sends a request that could run code: to a kernel, its only requests
are ``kernel_info``; a relay's viewer holds no kernel key at all.
"""

from __future__ import annotations

import asyncio
import sys
from argparse import Namespace
from typing import Any

from ipymirror.commands._lifecycle import (
    background,
    connected,
    heartbeat,
    make_mirror,
    mirror_for_link,
    watch_stream,
)
from ipymirror.core.events import KERNEL, KernelBack
from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.transports.share.ticket import Ticket, read_ticket_file
from ipymirror.transports.share.viewer import ViewerSource

__all__ = ["run_watch", "run_watch_relay"]


async def run_watch(args: Namespace) -> ExitStatus:
    """``ipymirror watch``: a kernel read-only, or a relay's stream (``watch TICKET``)."""
    if getattr(args, "ticket", None) or getattr(args, "ticket_file", None):
        return await run_watch_relay(args)  # a relay's viewer: no kernel, no key
    async with connected(args, passive=True, role="watch") as link:
        mirror = mirror_for_link(link, args, sys.stdout)
        async with background(heartbeat(link, mirror, asyncio.Event())):
            what = f"the {link.description} of {link.where}"
            await watch_stream(mirror, link.iopub_batches(), what)  # ends when it is gone
    return ExitStatus.OK


async def run_watch_relay(args: Any) -> ExitStatus:
    """``ipymirror watch TICKET``: the watch view, fed by a relay instead of a kernel."""
    if args.existing is not None:
        raise MirrorError("give a ticket or --existing, not both", ExitStatus.USAGE)
    ticket = read_ticket_file(args.ticket_file) if args.ticket_file else Ticket.parse(args.ticket)
    source = ViewerSource(ticket)
    try:
        await source.connect(args.timeout)
        mirror = make_mirror(args, sys.stdout, language=source.language)  # "me": nobody
        # the relay answered: so did the kernel, to the relay
        mirror.feed_events([KernelBack(KERNEL, "")])
        source.notice, source.on_kernel = mirror.notice, mirror.feed_events
        what = f"the {source.describe()} shared at {ticket.pub}"
        await watch_stream(mirror, source.batches(), what)
        return ExitStatus.OK
    finally:
        source.close()
