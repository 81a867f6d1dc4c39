"""``ipymirror share``: the host's command around the read-only relay.

The relay (:mod:`ipymirror.transports.share.relay`) is the only process that
holds the kernel's key; this command taps the kernel, binds the relay, prints
the ticket for viewers and a live status line until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

from ipymirror.commands._lifecycle import connected, until_stopped
from ipymirror.errors import ExitStatus
from ipymirror.terminal.liveline import LiveLine
from ipymirror.transports.base import KernelTransport
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
    """Serve the page next to the relay (share --web); print its URL, a QR code on a terminal."""
    host, port = parse_web_address(args.web)
    secret = web_secret(keys.ticket.viewer_secret)
    web = WebShare(
        secret,
        language=language,
        cells=args.backlog_cells,
        queue_bytes=int(args.web_queue * 2**20),
    )
    bound = await web.start(host, port)
    web.seed(relay.backlog.records)  # the relay's backlog, then every batch it publishes
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
    if args.web:
        parse_web_address(args.web)  # a bad address fails before the kernel is touched
    out = sys.stdout
    # The relay itself never loses a kernel message; a slow viewer may.
    async with connected(args, passive=True, name="ipymirror-share", role="share") as link:
        link.parse_content = False  # relayed as the kernel signed it: the relay keeps pace
        relay = Relay(
            keys,
            link.kernel_info,
            cells=args.backlog_cells,
            queue=args.viewer_queue,
            own_session=link.session_id,
            kernel_name=link.kernel_name,
        )
        try:
            return await _serve(args, link, relay, keys, binds, out)
        finally:
            await relay.close()


async def _serve(
    args: Any,
    link: KernelTransport,
    relay: Relay,
    keys: HostKeys,
    binds: tuple[str, str],
    out: TextIO,
) -> ExitStatus:
    """Bind, print the ticket, and relay until stopped."""
    pub, router = relay.bind(*binds)
    old = keys.ticket
    ticket = old.with_addresses(advertised(pub, args.advertise), advertised(router, args.advertise))
    keys = HostKeys(ticket, keys.server_secret, (pub, router))
    # The files first: whoever reads the ticket line may open them at once.
    if args.ticket_file:
        write_host_file(args.ticket_file, keys)
    if getattr(args, "viewer_ticket_file", None):
        write_viewer_file(args.viewer_ticket_file, ticket)
    print(f"» sharing the {link.description} of {link.where}, read-only", file=out)
    print(f"» viewers run:  ipymirror watch {ticket.encode()}", file=out)
    if args.ticket_file:
        if old.pub and (old.pub, old.router) != (ticket.pub, ticket.router):
            print("» the address changed: viewers need the new ticket", file=out)
        print(
            f"» ticket file: {args.ticket_file} (mode 0600). It holds the relay's secret "
            "key: keep it private, never give it to viewers (give them the ticket, or "
            "--viewer-ticket-file). To revoke: stop, delete it, start again",
            file=out,
        )
    if getattr(args, "viewer_ticket_file", None):
        print(
            f"» viewer ticket file: {args.viewer_ticket_file} (the ticket only, no relay "
            f"key): ipymirror watch --ticket-file {args.viewer_ticket_file}",
            file=out,
        )
    web = await _start_web(args, keys, relay, link.language, out) if args.web else None
    try:
        print(f"» listening on {pub} and {router}; Ctrl-C stops", file=out, flush=True)
        status = LiveLine(out, lambda: _host_status(relay, web))  # refused: 10 retries a second

        def changed() -> None:
            status.changed()
            if web is not None:
                web.set_kernel_state(relay.kernel_state == b"ok")

        relay.on_change = changed
        if web is not None:
            web.on_change = status.changed
        status.draw()
        await until_stopped(asyncio.ensure_future(relay.run(link.iopub_batches(), link.is_beating)))
        if status.tty:
            out.write("\n")
        return ExitStatus.OK
    finally:
        if web is not None:
            await web.close()
