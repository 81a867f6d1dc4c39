"""A display far behind a real kernel sheds whole lines and counts them exactly.

The backlog is made on purpose, not by load: the mirror's link reads nothing
while a peer prints 20,000 lines (IOPub is lossless, so every message waits in
ZMQ), then it reads them all.  What it hands on plus what it says it dropped
must be every line, in order, none twice, none spliced.
"""

from __future__ import annotations

import asyncio

from shedding_support import lines_counted, printed_by

from ipymirror.transports.shedding import BACKLOG
from ipymirror.transports.zmq import KernelLink

LINES = 20_000  # well over BACKLOG (8,192), and quick on a loaded machine


def test_a_display_far_behind_sheds_whole_lines_and_counts_them_exactly(kernel, peer):
    bob = peer(kernel, "bob")
    notices: list[str] = []

    async def main() -> list[str]:
        link = KernelLink.join(kernel.connection_file, "watcher")
        link.shed_when_behind()
        link.on_notice = notices.append
        await link.connect(30, stdin=False, control=False)
        try:
            code = f"for i in range({LINES}): print(i, flush=True)"
            run = await asyncio.to_thread(bob.run, code, 120)  # we read nothing meanwhile
            cell = run["reply"]["parent_header"]["msg_id"]
            assert len(run["iopub"]) > BACKLOG  # so many wait for us: we are behind
            return await printed_by(link.iopub_batches(), cell)
        finally:
            await link.close(shutdown=False)

    shown = asyncio.run(main())
    lines = [int(line) for line in "".join(shown).splitlines()]
    dropped = lines_counted(notices)
    print(f"shedding: {len(lines):,} lines shown + {dropped:,} counted of {LINES:,}")
    assert lines == sorted(set(lines)) and len(lines) + dropped == LINES
