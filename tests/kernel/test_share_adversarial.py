"""Read-only by construction: a viewer holding the ticket tries every way it has to
make the kernel execute, and nothing runs.

The attacker can reach two sockets of the relay (the XPUB live stream and the
ROUTER for catch-up), with valid CurveZMQ keys.  It sends forged
execute_requests (signed with a random key, and unsigned), as every socket type
the relay's sockets accept or refuse, malformed and huge frames, hello floods,
and replays of everything the relay sent it.  An independent trusted IOPub
subscriber and a trusted client then show that the kernel ran only the
trusted client's cells.  A positive control at the end proves the forgeries
were real execute_requests: signed with the kernel's key and sent to the
kernel directly, the same message does run.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

import zmq
from jupyter_client.session import Session
from test_share import (
    Reference,
    RelayProcess,
    Viewer,
    Waitable,
    curve_socket,
    idle_of,
    run_cell,
)

from ipymirror.recording.format import decode_record
from ipymirror.transports.share.relay import INBOUND_MAX

HUGE = 16 * 1024 * 1024


def execute_request(
    session: Session, code: str, header: dict[str, str] | None = None
) -> list[bytes]:
    """A complete execute_request as a client sends it to a kernel's shell socket."""
    content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
               "allow_stdin": False, "stop_on_error": True}  # fmt: skip
    msg = session.msg("execute_request", content)
    msg["header"].update(header or {})
    return session.serialize(msg)


class Spy:
    """A ticket holder's raw sockets that keep every frame the relay sends them."""

    def __init__(self, ctx: zmq.Context, ticket) -> None:
        self.frames = Waitable()
        self.sub = curve_socket(ctx, zmq.SUB, ticket)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.connect(ticket.pub)
        self.dealer = curve_socket(ctx, zmq.DEALER, ticket)
        self.dealer.connect(ticket.router)

    def hello(self, req: int) -> None:
        payload = {"v": 1, "req": req, "epoch": "", "after": 0}
        self.dealer.send_multipart([b"hello", json.dumps(payload).encode()])

    def drain(self) -> None:
        for sock in (self.sub, self.dealer):
            while sock.poll(0):
                self.frames.add(sock.recv_multipart())

    def wait(self, check, what: str) -> None:
        poller = zmq.Poller()
        poller.register(self.dealer, zmq.POLLIN)
        poller.register(self.sub, zmq.POLLIN)
        deadline = time.monotonic() + 30
        while self.drain() or not any(check(f) for f in self.frames.items):
            left = deadline - time.monotonic()
            assert left > 0 and poller.poll(left * 1000), (
                f"nothing came: {what}; {[f[:2] for f in self.frames.items[-8:]]}"
            )

    def wait_welcome(self, req: int) -> None:
        self.hello(req)
        self.wait(lambda f: f[0] == b"welcome" and json.loads(f[1])["req"] == req, "welcome")


def ignored(relay: RelayProcess) -> int:
    found = [re.search(r"ignored: (\d+)", line) for line in relay.out.snapshot()]
    return max((int(m.group(1)) for m in found if m), default=0)


def records(frames: list[list[bytes]]) -> list[dict[str, Any]]:
    """The messages in everything the relay sent (live batches and welcomes)."""
    found = []
    for msg in frames:
        body = msg[3:] if msg[0] in (b"ev", b"welcome") else []
        found += [decode_record(line).msg for line in body]
    return found


def walk(value: Any):
    """Every key and value inside a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)
    else:
        yield value


def assert_no_kernel_secrets(frames: list[list[bytes]], info: dict[str, Any]) -> None:
    key = info["key"]
    ports = {info[name] for name in info if name.endswith("_port")}
    fields = {"key", "signature_scheme", "transport", *(n for n in info if n.endswith("_port"))}
    assert key and ports
    for msg in frames:
        for frame in msg:
            assert key not in frame
            try:
                doc = json.loads(frame)
            except ValueError:
                continue
            for item in walk(doc):
                assert item not in fields, (item, frame[:200])
                assert item not in ports and item not in {str(p) for p in ports}, (item, frame)
                if isinstance(item, str):
                    for port in ports:
                        assert not re.search(rf":{port}(?!\d)", item), (port, item)


def test_a_viewer_with_the_ticket_cannot_make_the_kernel_execute(kernel, peer, tmp_path):
    marker = tmp_path / "executed"
    code = f"open({str(marker)!r}, 'w').write('the kernel ran a viewer\\'s code')"
    info = kernel.get_connection_info()
    reference = Reference(kernel)
    relay = RelayProcess(kernel, tmp_path / "ticket")
    trusted = peer(kernel, "trusted")
    ctx = zmq.Context()
    legit: Viewer | None = None
    attackers: list[zmq.Socket] = []
    try:
        first = trusted.run("x = 1")
        count = first["reply"]["content"]["execution_count"]
        legit = Viewer(relay.ticket)
        spy = Spy(ctx, relay.ticket)
        spy.wait_welcome(1)
        assert [m["content"].get("code") for m in records(spy.frames.snapshot())].count("x = 1")

        def sock(kind: int, target: str, **opts: Any) -> zmq.Socket:
            s = curve_socket(ctx, kind, relay.ticket)
            for opt, value in opts.items():
                s.setsockopt(getattr(zmq, opt), value)
            s.connect(target)
            attackers.append(s)
            return s

        # What to send: forged requests, replays, garbage.
        victim = trusted.client.session
        forged = [
            execute_request(Session(key=os.urandom(32)), code),
            execute_request(Session(key=b""), code),  # unsigned
            # impersonating the trusted peer:
            execute_request(Session(key=os.urandom(32)), code,
                            {"session": victim.session, "username": victim.username}),
        ]  # fmt: skip
        recorded = records(spy.frames.snapshot())
        forged += [
            execute_request(Session(key=os.urandom(32)), m["content"]["code"])
            for m in recorded
            if m["msg_type"] == "execute_input"
        ]
        replays = [list(f) for f in spy.frames.snapshot()]
        replays += [[json.dumps(m, default=str).encode()] for m in recorded]
        garbage = [
            [b""],
            [b"hello"],
            [b"hello", b"{"],
            [b"hello", b'{"v":1,"req":1,"epoch":"","after":0,"code":"1"}'],
            [b"hello", json.dumps({"v": 1, "req": 1, "epoch": "", "after": -5}).encode()],
            [b"\xff\xfe" * 8],
            [b"a"] * 500,
            [b"execute_request", code.encode()],
        ]
        hellos = [[b"hello", json.dumps({"v": 1, "req": i, "epoch": "", "after": 0}).encode()]
                  for i in range(300)]  # fmt: skip
        everything = forged + replays + garbage + hellos
        # A frame over the relay's inbound limit makes ZMQ drop that connection
        # with whatever it had not read yet: those go on connections of their own.
        oversized = [f for f in everything if max(map(len, f)) > INBOUND_MAX]
        everything = [f for f in everything if max(map(len, f)) <= INBOUND_MAX]
        oversized += [[b"hello", b"x" * HUGE], [b"y" * HUGE]]
        assert len(everything) > len(hellos) + 10 and len(oversized) > 2

        # The ROUTER (catch-up): as DEALER and as REQ.
        for kind, opts in ((zmq.DEALER, {}), (zmq.REQ, {"REQ_RELAXED": 1})):
            s = sock(kind, relay.ticket.router, **opts)
            for frames in everything:
                s.send_multipart(frames)
        # The XPUB (live stream): XSUB may send data and subscriptions; SUB only
        # subscriptions; PUB, PUSH and DEALER are refused by ZMTP, but try.
        xsub = sock(zmq.XSUB, relay.ticket.pub)
        for frames in everything:
            xsub.send_multipart(frames)
            xsub.send(b"\x01" + b"".join(frames)[:1000])
        sub = sock(zmq.SUB, relay.ticket.pub)
        for frames in forged:
            sub.setsockopt(zmq.SUBSCRIBE, b"".join(frames)[:1000])
        for kind in (zmq.PUB, zmq.PUSH, zmq.DEALER):
            s = sock(kind, relay.ticket.pub, SNDHWM=100_000)
            for frames in everything:
                try:
                    s.send_multipart(frames, flags=zmq.NOBLOCK)
                except zmq.Again:
                    break
        # Wait until the relay has read it all: it counts what it ignores.
        expected = 2 * len(everything)  # as DEALER and as REQ (REQ adds an empty frame)
        expected -= len(hellos)  # the DEALER's well-formed hellos are answered, not ignored
        expected += sum(1 for f in everything if len(f) > 1 or f[0][:1] not in (b"\0", b"\1"))
        relay.out.wait(lambda _: ignored(relay) >= expected, f"relay to ignore {expected}")
        # Oversized and huge frames, each on connections of its own (not as an XSUB
        # subscription: ZMQ keeps those in a trie whose teardown recurses per byte).
        for frames in oversized:
            sock(zmq.DEALER, relay.ticket.router).send_multipart(frames)
            sock(zmq.XSUB, relay.ticket.pub).send_multipart(frames)
        spy.wait_welcome(2)

        # The kernel ran nothing but the trusted cells.
        second = trusted.run("1")
        assert second["reply"]["content"]["execution_count"] == count + 1
        legit.wait_idle(second["reply"]["parent_header"]["msg_id"])  # the relay still serves
        third = run_cell(trusted, "2")
        reference.msgs.wait(lambda ms: any(idle_of(m, third) for m in ms), "reference idle")
        inputs = [m for m in reference.msgs.snapshot() if m["msg_type"] == "execute_input"]
        assert [m["content"]["code"] for m in inputs] == ["x = 1", "1", "2"]
        assert {m["parent_header"]["msg_id"] for m in inputs} <= {
            first["reply"]["parent_header"]["msg_id"],
            second["reply"]["parent_header"]["msg_id"],
            third,
        }
        assert not marker.exists()
        assert relay.proc.poll() is None

        # Nothing the relay sent holds the kernel's key, ports or connection fields.
        # (Waited for, each: the spy's own connection may lag the viewer's and the reference's.)
        spy.wait(lambda f: f[0] == b"ev", "a live message")
        spy.wait(lambda f: f[0] == b"tick", "a tick")
        assert_no_kernel_secrets(spy.frames.snapshot(), info)

        # Positive control: the same forgery, signed with the kernel's key and
        # sent to the kernel's own shell socket, does run.
        shell = ctx.socket(zmq.DEALER)
        attackers.append(shell)
        shell.connect(f"tcp://{info['ip']}:{info['shell_port']}")
        real = Session(key=info["key"], signature_scheme=info["signature_scheme"])
        frames = execute_request(real, code)
        msg_id = json.loads(frames[2])["msg_id"]
        shell.send_multipart(frames)
        reference.msgs.wait(lambda ms: any(idle_of(m, msg_id) for m in ms), "control idle")
        assert marker.exists()
    finally:
        for s in attackers:
            s.close(0)
        if legit is not None:
            legit.close()
        relay.stop()
        relay.proc.stdout.close()
        relay.proc.stderr.close()
        reference.close()
        ctx.destroy(linger=0)
