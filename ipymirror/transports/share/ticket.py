"""Viewer tickets for ``ipymirror share``: make, parse, keep in a 0600 file; the
addresses the relay binds and the ones a ticket names.

A ticket is the one thing a viewer needs to watch a relay, as one copy-pasteable
string::

    ipym1:<urlsafe base64 of {"v": 1, "pub": ADDR, "router": ADDR,
                              "server": RELAY PUBLIC KEY, "viewer": VIEWER SECRET KEY}>

Rules this module keeps:

* A ticket grants watching and nothing else: it names the relay's two ports and
  holds a CurveZMQ keypair (the viewer's secret key; its public key is derived)
  that the relay's authenticator accepts.  The kernel's key, connection file and
  ports are never part of it.
* The relay's own secret key lives only in the host's ticket file, on a line of
  its own after the ticket; viewers read the ticket line and ignore the rest.
* Ticket files are written with mode 0600, atomically (a rename), so a relay
  restarted with the same file keeps its keys and addresses, and its viewers.
* Anything malformed is a one-line :class:`MirrorError`, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import re
import socket
import tempfile
from dataclasses import dataclass, field
from typing import Any

import zmq
from zmq.utils import z85

from ipymirror.errors import ExitStatus, MirrorError

__all__ = [
    "HostKeys",
    "Ticket",
    "advertised",
    "bind_pair",
    "load_host_file",
    "new_host_keys",
    "read_ticket_file",
    "write_host_file",
    "write_viewer_file",
]

PREFIX = "ipym1:"
RELAY_PREFIX = "ipym1-relay:"
_ADDRESS = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+):(\d{1,5})")
DEFAULT_BIND = "tcp://127.0.0.1:7788"
_BIND = re.compile(r"tcp://(\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+|\*):(\d{1,5})")
_ANY = ("0.0.0.0", "*", "[::]", "[::0]")
_VIEWER_NOTE = (
    "# ipymirror viewer ticket: ipymirror watch --ticket-file THIS_FILE.\n"
    "# It grants watching only and holds no relay key; anyone who has it can watch.\n"
)
_FILE_NOTE = (
    "# ipymirror share ticket. Viewers need only the line above (ipymirror watch TICKET).\n"
    "# The line below is the relay's own key: keep this file private (mode 0600).\n"
    "# Revoke: stop the relay, delete this file, start it again (a new ticket is made).\n"
)


def _bad(what: str) -> MirrorError:
    return MirrorError(what, ExitStatus.CONNECTION_FILE)


def _key(value: Any, what: str) -> str:
    """A z85 CurveZMQ key (40 characters), checked."""
    if not isinstance(value, str) or len(value) != 40:
        raise _bad(f"malformed ticket: bad {what}")
    try:
        if len(z85.decode(value.encode("ascii"))) != 32:
            raise ValueError
    except (ValueError, KeyError, UnicodeEncodeError, TypeError):
        raise _bad(f"malformed ticket: bad {what}") from None
    return value


def _address(value: Any, what: str) -> str:
    if not isinstance(value, str) or not (m := _ADDRESS.fullmatch(value)):
        raise _bad(f"malformed ticket: bad {what} address")
    if not 0 < int(m.group(2)) < 65536:
        raise _bad(f"malformed ticket: bad {what} port")
    return value


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad("malformed ticket (was it copied whole?)") from None
    if not isinstance(data, dict):
        raise _bad("malformed ticket (was it copied whole?)")
    return data


@dataclass(frozen=True)
class Ticket:
    """What a viewer holds: where the relay is, its public key, the viewer keypair."""

    pub: str  # tcp://host:port of the live event stream
    router: str  # tcp://host:port of catch-up requests
    server_public: str  # the relay's CurveZMQ public key (z85)
    viewer_secret: str = field(repr=False)  # the viewer's CurveZMQ secret key (z85)

    @property
    def viewer_public(self) -> str:
        return zmq.curve_public(self.viewer_secret.encode("ascii")).decode("ascii")

    def encode(self) -> str:
        return PREFIX + _b64(
            {
                "v": 1,
                "pub": self.pub,
                "router": self.router,
                "server": self.server_public,
                "viewer": self.viewer_secret,
            }
        )

    @classmethod
    def parse(cls, text: str) -> Ticket:
        """The ticket in ``text`` (surrounding blanks ignored), or a one-line error."""
        text = text.strip()
        if not text.startswith(PREFIX):
            raise _bad(f"not a viewer ticket (one starts {PREFIX}, as `ipymirror share` prints)")
        data = _unb64(text[len(PREFIX) :])
        if data.get("v") != 1:
            raise _bad("unsupported ticket version (made by a newer ipymirror?)")
        return cls(
            _address(data.get("pub"), "event"),
            _address(data.get("router"), "catch-up"),
            _key(data.get("server"), "relay key"),
            _key(data.get("viewer"), "viewer key"),
        )

    def with_addresses(self, pub: str, router: str) -> Ticket:
        return Ticket(pub, router, self.server_public, self.viewer_secret)


@dataclass(frozen=True)
class HostKeys:
    """What the relay keeps: the ticket it hands out, its own secret, where it binds."""

    ticket: Ticket
    server_secret: str = field(repr=False)
    binds: tuple[str, str] = ("", "")  # (pub, router) addresses last bound; "" = not yet

    @property
    def viewer_public(self) -> str:
        return self.ticket.viewer_public

    def relay_line(self) -> str:
        return RELAY_PREFIX + _b64(
            {"v": 1, "secret": self.server_secret, "binds": list(self.binds)}
        )


def new_host_keys() -> HostKeys:
    """Fresh relay and viewer keypairs (addresses filled in once bound)."""
    server_public, server_secret = zmq.curve_keypair()
    _, viewer_secret = zmq.curve_keypair()
    ticket = Ticket("", "", server_public.decode("ascii"), viewer_secret.decode("ascii"))
    return HostKeys(ticket, server_secret.decode("ascii"))


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f.read(64 * 1024).splitlines()]
    except FileNotFoundError:
        raise _bad(f"ticket file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
        raise _bad(f"cannot read ticket file {path}: {reason}") from None


def read_ticket_file(path: str) -> Ticket:
    """The ticket in a ticket file (its first ``ipym1:`` line)."""
    for line in _lines(path):
        if line.startswith(PREFIX):
            return Ticket.parse(line)
    raise _bad(f"no viewer ticket in {path}")


def load_host_file(path: str) -> HostKeys | None:
    """The relay keys kept in ``path``; None if there is no such file.

    A file that exists but is not a host ticket file is an error rather than
    something to overwrite: it may be a mistyped path to something else.
    """
    if not os.path.lexists(path):
        return None
    lines = _lines(path)
    ticket = next((Ticket.parse(x) for x in lines if x.startswith(PREFIX)), None)
    relay = next((x for x in lines if x.startswith(RELAY_PREFIX)), None)
    if ticket is None or relay is None:
        raise _bad(
            f"{path} is not a relay's ticket file (it has no relay key); "
            "pass another path, or delete it to make a new ticket"
        )
    data = _unb64(relay[len(RELAY_PREFIX) :])
    secret = _key(data.get("secret"), "relay secret key")
    if zmq.curve_public(secret.encode("ascii")).decode("ascii") != ticket.server_public:
        raise _bad(f"{path}: the relay key does not match the ticket")
    binds = data.get("binds")
    if not (isinstance(binds, list) and len(binds) == 2 and all(isinstance(b, str) for b in binds)):
        binds = ["", ""]
    return HostKeys(ticket, secret, (binds[0], binds[1]))


def write_host_file(path: str, keys: HostKeys) -> None:
    """Write the ticket and the relay key to ``path``, mode 0600, atomically."""
    _write_private(path, f"{keys.ticket.encode()}\n{_FILE_NOTE}{keys.relay_line()}\n")


def write_viewer_file(path: str, ticket: Ticket) -> None:
    """Write a viewer's ticket file to ``path``: the ticket, never the relay's key.

    Refuses to overwrite the relay's own ticket file (it would lose the key)."""
    if os.path.lexists(path) and any(x.startswith(RELAY_PREFIX) for x in _lines(path)):
        raise _bad(f"{path} is the relay's ticket file: give the viewers' file another name")
    _write_private(path, f"{ticket.encode()}\n{_VIEWER_NOTE}")


def _write_private(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".ipymirror-ticket-")
    except OSError as exc:
        raise MirrorError(f"cannot write ticket file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)  # mkstemp makes 0600 already; be explicit
            f.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise MirrorError(f"cannot write ticket file {path}: {exc.strerror}") from None


# -- addresses --------------------------------------------------------------------


def bind_pair(bind: str) -> tuple[str, str]:
    """The XPUB and ROUTER bind addresses for ``--bind``: its port and the next (0: any)."""
    m = _BIND.fullmatch(bind)
    if m is None or int(m.group(2)) > 65534:
        raise MirrorError(
            f"bad --bind address {bind!r} (expected tcp://HOST:PORT)", ExitStatus.ADDRESS
        )
    host, port = m.group(1), int(m.group(2))
    if port == 0:
        return f"tcp://{host}:*", f"tcp://{host}:*"
    return f"tcp://{host}:{port}", f"tcp://{host}:{port + 1}"


def advertised(endpoint: str, host: str | None) -> str:
    """The address viewers connect to for a bound ``endpoint``."""
    bound, port = endpoint.rsplit(":", 1)
    bound = bound[len("tcp://") :]
    if host is None and bound in _ANY:
        host = socket.getfqdn()
    return f"tcp://{host or bound}:{port}"
