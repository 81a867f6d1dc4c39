"""Exit statuses and the one error type that becomes a one-line message."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitStatus", "MirrorError"]


class ExitStatus(IntEnum):
    """Process exit codes; each failure class has its own so scripts can tell them apart."""

    OK = 0
    ERROR = 1
    USAGE = 2  # argparse's own code for a wrong option
    CONNECTION_FILE = 3  # missing, unreadable or malformed connection file
    UNREACHABLE = 4  # kernel did not answer in time / died
    KERNELSPEC = 5  # unknown kernelspec, or the kernel failed to start
    RECORDING = 6  # unreadable or corrupt recording
    ADDRESS = 7  # a port/address we must bind is taken or invalid
    SERVER_UNREACHABLE = 8  # no answer from a Jupyter Server's address (or its TLS failed)
    NOT_JUPYTER = 9  # something answers there, but not a Jupyter Server's API
    TOKEN = 10  # the server refused the token (wrong, expired, or none given)
    FORBIDDEN = 11  # the token is good, but may not do this (403)
    NOT_FOUND = 12  # no such kernel or notebook session on the server (404)
    INTERRUPTED = 130


class MirrorError(Exception):
    """A failure the user can act on: shown as ``ipymirror: error: <message>``."""

    def __init__(self, message: str, status: ExitStatus = ExitStatus.ERROR) -> None:
        super().__init__(message)
        self.status = status
