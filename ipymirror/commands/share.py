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
)
from ipymirror.transports.share.web import WebShare, parse_web_address, web_secret, web_url

__all__ = ["run_share"]


def _host_status(r: Relay, w: WebShare | None = None) -> str:
    n = r.refused + (w.refused if w is not None else 0)
    refused = f" │ refused: {n}" if n else ""
    ignored = f" │ ignored: {r.ignored}" if r.ignored else ""
    kernel = "ok" if r.kernel_state == b"ok" else "not answering"
    web = f" │ browsers: {len(w.viewers)}" if w is not None else ""
    if w is not None and w.cut_off:
        web += f" │ cut off: {w.cut_off}"
    return f"viewers: {r.viewers}{web}{refused}{ignored} │ kernel: {kernel}"


async def _start_web(args: Any, keys: HostKeys, relay: Relay, language: str, out: Any) -> WebShare:
    """Serve the page next to the relay; print its URL (and a QR code on a terminal)."""
    host, port = parse_web_address(args.web)
    secret = web_secret(keys.ticket.viewer_secret)
    web = WebShare(
        secret, language=language, cells=args.backlog_cells, queue_bytes=int(args.web_queue * 2**20)
    )
    bound = await web.start(host, port)
    relay.observers.append(web.feed)
    url = web_url(host, bound, secret, args.advertise)
    print(f"» browsers open:  {url}", file=out)
    if out.isatty():
        import segno

        segno.make(url, error="l").terminal(out=out, compact=True)
    return web


async def run_share(args: Any) -> ExitStatus:
    """``ipymirror share``: tap a kernel, serve viewers until Ctrl-C or SIGTERM."""
    keys = (load_host_file(args.ticket_file) if args.ticket_file else None) or new_host_keys()
    if args.bind is None and keys.binds[0]:
        binds = keys.binds  # a restart with the same ticket file: the same ports
    else:
        binds = bind_pair(args.bind or DEFAULT_BIND)
    args.join_only = True
    args.name = args.name or "ipymirror-share"
    if args.web:
        parse_web_address(args.web)  # a bad address fails before the kernel is touched
    link = await open_link(args)
    relay: Relay | None = None
    web: WebShare | None = None
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
                f"» ticket file: {args.ticket_file} (mode 0600; to revoke: stop, delete it, "
                "start again)",
                file=out,
            )
        if args.web:
            web = await _start_web(args, keys, relay, link.language, out)
        print(f"» listening on {pub} and {router}; Ctrl-C stops", file=out, flush=True)
        status = LiveLine(out, lambda: _host_status(relay, web))  # refused clients retry 10x/s

        def changed() -> None:
            status.changed()
            if web is not None:
                web.set_kernel_state(relay.kernel_state == b"ok")

        relay.on_change = changed
        if web is not None:
            web.on_change = status.changed
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
        if web is not None:
            await web.close()
        if relay is not None:
            await relay.close()
        await link.close(shutdown=False)
