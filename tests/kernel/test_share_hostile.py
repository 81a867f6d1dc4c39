"""share with a hostile kernel: signed but malformed, and 100,000-level JSON.

The relay must stay up and go on relaying; a viewer must go on showing, and
say once that a message could not be read (it is not dropped silently).
"""

from __future__ import annotations

from hostile_kernel import HOSTILE
from test_share import relay, run_cell, viewer  # noqa: F401 - fixtures


def test_share_survives_malformed_and_deeply_nested_messages(kernel, peer, relay, viewer):  # noqa: F811
    rp = relay(kernel)
    v = viewer(rp.ticket)
    bob = peer(kernel, "bob")
    bob.execute_nowait(HOSTILE)
    v.msgs.wait(
        lambda ms: any("after the hostile ones" in str(m["content"].get("text")) for m in ms),
        "the stream after the hostile messages",
    )
    # bob's own jupyter_client cannot read those messages (it raises on a null
    # header): carol, who joins after them, checks that the relay goes on.
    after = run_cell(peer(kernel, "carol"), "print('still relaying')")
    v.wait_idle(after)
    assert rp.proc.poll() is None
    assert any("could not be read" in n for n in v.notices.snapshot()), v.notices.snapshot()
