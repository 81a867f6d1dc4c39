"""``ipymirror share``: the host's command around the read-only relay.

The relay (:mod:`ipymirror.transports.share.relay`) is the only process that
holds the kernel's key; this command taps the kernel, binds the relay, prints
the ticket for viewers and a live status line until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from ipymirror.commands._lifecycle import on_signals, open_link
from ipymirror.errors import ExitStatus
from ipymirror.terminal.liveline import LiveLine
from ipymirror.transports.share.relay import Relay
from ipymirror.transports.share.ticket import (
    DEFAULT_BIND,
    HostKeys,
    advertised,
    bind_pair,
    load_host_file,
    new_host_keys,
    write_host_file,
    write_viewer_file,
)

__all__ = ["run_share"]


def _host_status(r: Relay) -> str:
    refused = f" │ refused: {r.refused}" if r.refused else ""
    ignored = f" │ ignored: {r.ignored}" if r.ignored else ""
    kernel = "ok" if r.kernel_state == b"ok" else "not answering"
    return f"viewers: {r.viewers}{refused}{ignored} │ kernel: {kernel}"


async def run_share(args: Any) -> ExitStatus:
    """``ipymirror share``: tap a kernel, serve viewers until Ctrl-C or SIGTERM."""
    keys = (load_host_file(args.ticket_file) if args.ticket_file else None) or new_host_keys()
    if args.bind is None and keys.binds[0]:
        binds = keys.binds  # a restart with the same ticket file: the same ports
    else:
        binds = bind_pair(args.bind or DEFAULT_BIND)
    args.join_only = True
    args.name = args.name or "ipymirror-share"
    link = await open_link(args, role="share")
    relay: Relay | None = None
    out = sys.stdout
    try:
        link.lossless()  # the relay itself never loses a kernel message; a slow viewer may
        await link.connect(args.timeout, stdin=False, control=False)
        relay = Relay(
            keys,
            link.kernel_info,
            cells=args.backlog_cells,
            queue=args.viewer_queue,
            own_session=link.session_id,
            kernel_name=link.kernel_name,
        )
        pub, router = relay.bind(*binds)
        old = keys.ticket
        ticket = old.with_addresses(
            advertised(pub, args.advertise), advertised(router, args.advertise)
        )
        keys = HostKeys(ticket, keys.server_secret, (pub, router))
        print(f"» sharing the {link.description} of {link.where}, read-only", file=out)
        print(f"» viewers run:  ipymirror watch {ticket.encode()}", file=out)
        if args.ticket_file:
            write_host_file(args.ticket_file, keys)
            if old.pub and (old.pub, old.router) != (ticket.pub, ticket.router):
                print("» the address changed: viewers need the new ticket", file=out)
            print(
                f"» ticket file: {args.ticket_file} (mode 0600). It holds the relay's secret "
                "key: keep it private, never give it to viewers (give them the ticket, or "
                "--viewer-ticket-file). To revoke: stop, delete it, start again",
                file=out,
            )
        if getattr(args, "viewer_ticket_file", None):
            write_viewer_file(args.viewer_ticket_file, ticket)
            print(
                f"» viewer ticket file: {args.viewer_ticket_file} (the ticket only, no relay "
                f"key): ipymirror watch --ticket-file {args.viewer_ticket_file}",
                file=out,
            )
        print(f"» listening on {pub} and {router}; Ctrl-C stops", file=out, flush=True)
        status = LiveLine(out, lambda: _host_status(relay))  # refused clients retry 10x a second
        relay.on_change = status.changed
        status.draw()
        ended: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        on_signals(asyncio.get_running_loop(), ended, sigint=True)
        running = asyncio.ensure_future(relay.run(link.iopub_batches(), link.is_beating))
        await asyncio.wait([running, ended], return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            running.result()  # the relay failed: say why
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        if status.tty:
            out.write("\n")
        return ExitStatus.OK
    finally:
        if relay is not None:
            await relay.close()
        await link.close(shutdown=False)
