"""Reading one IOPub message: ipymirror's decoder against jupyter_client's.

Run: ``python benchmarks/decode_bench.py``.  Prints the median and best of 15
rounds of 2,000 reads of a signed one-line ``stream`` message, and what the
sender spent serializing it, so they can be compared on this machine in one
run; and what a display that is far behind spends to shed it instead (telling it
is whole lines: ``transports/shedding.py``).  Why it
matters: IOPub is lossless on our side, so a reader slower than the kernel's
writer queues the difference inside ZMQ (docs/security.md).
"""

from __future__ import annotations

import statistics
import timeit

from jupyter_client.session import Session

from ipymirror.transports.fast_decode import deserialize
from ipymirror.transports.shedding import Shedder

ROUNDS, READS = 15, 2_000


def main() -> None:
    sender = Session(key=b"k")
    receiver = Session(key=b"k", digest_history_size=0)  # the same parts, read again
    parent = sender.msg("execute_request", {"code": "print(1)"})
    msg = sender.msg("stream", {"name": "stdout", "text": "1\n"}, parent=parent)
    _, parts = receiver.feed_identities(sender.serialize(msg, ident=b"kernel.k.stream"))

    shedder = Shedder()

    def per_message(fn: object) -> list[float]:
        times = timeit.repeat(fn, number=READS, repeat=ROUNDS)  # type: ignore[arg-type]
        return [t / READS * 1e6 for t in times]

    rows = {
        "kernel: Session.serialize": per_message(lambda: sender.serialize(msg)),
        "jupyter_client: Session.deserialize": per_message(lambda: receiver.deserialize(parts)),
        "ipymirror: fast_decode.deserialize": per_message(lambda: deserialize(receiver, parts)),
        "ipymirror behind: Shedder.sheds": per_message(lambda: shedder.sheds(parts)),
    }
    print(f"{'µs per message':40} {'median':>8} {'best':>8}")
    for name, times in rows.items():
        print(f"{name:40} {statistics.median(times):8.1f} {min(times):8.1f}")
    ours = statistics.median(rows["ipymirror: fast_decode.deserialize"])
    theirs = statistics.median(rows["jupyter_client: Session.deserialize"])
    print(f"ratio jupyter_client / ipymirror (medians): {theirs / ours:.1f}x")


if __name__ == "__main__":
    main()
