"""The kernel ipymirror starts itself: its manager, its log, and its death at start.

jupyter_client picks free ports and writes them to the connection file; the
kernel binds them only once it runs.  Anything on the machine can take one in
between, and the kernel dies at once with ZMQ's "Address already in use".
Waiting out ``--timeout`` for a reply that cannot come, then naming the
connection file, told the user nothing; :func:`died_at_start` says at once how
the kernel ended and what its log said last, and marks a port clash so that
the one lifecycle can start it again on new ports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO, Any

from jupyter_core.paths import jupyter_runtime_dir

from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.transports.kernel_files import INSTALL_HINTS, remove_if_harmless

__all__ = ["DiedAtStart", "OwnKernel", "died_at_start", "start_kernel"]

PORT_CLASH = "Address already in use"  # libzmq's strerror(EADDRINUSE), whatever the kernel
LAST_WORDS = 200  # characters of the log's last line that are told


class DiedAtStart(MirrorError):
    """A kernel we started exited before it answered; ``port_clash``: another
    process took one of its ports first (a new start, on new ports, may work)."""

    def __init__(self, message: str, *, port_clash: bool) -> None:
        super().__init__(message, ExitStatus.KERNELSPEC)
        self.port_clash = port_clash


@dataclass
class OwnKernel:
    """A started kernel's manager and the log its stdout and stderr go to;
    ``since``: where this start's part of the log begins."""

    manager: Any
    log: IO[bytes]
    since: int


async def start_kernel(kernel_name: str, *, ip: str | None = None) -> OwnKernel:
    """Start a kernel of ``kernel_name`` whose connection file peers can join."""
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import AsyncKernelManager

    runtime = jupyter_runtime_dir()
    os.makedirs(runtime, exist_ok=True)
    manager = AsyncKernelManager(kernel_name=kernel_name, **({"ip": ip} if ip else {}))
    manager.connection_file = os.path.join(runtime, f"kernel-{os.getpid()}-ipymirror.json")
    manager.shutdown_wait_time = 3.0
    # The kernel's own stdout/stderr would scribble over the prompt: keep it in a
    # log, open as long as we are (a restart launches with the same arguments).
    log_path = manager.connection_file[: -len(".json")] + ".log"
    log = open(log_path, "ab")  # noqa: SIM115 - closed by the link's close()
    since = log.tell()
    try:
        # independent: its own session, and no parent poller, so that the kernel
        # can outlive us when you leave it running for the others (Ctrl-D, "n").
        await manager.start_kernel(stdout=log, stderr=log, independent=True)
    except NoSuchKernel:
        log.close()
        remove_if_harmless(log_path)
        hint = INSTALL_HINTS.get(kernel_name, "see `jupyter kernelspec list`")
        raise MirrorError(
            f"no such kernelspec: {kernel_name!r} ({hint})", ExitStatus.KERNELSPEC
        ) from None
    except (OSError, RuntimeError) as exc:
        log.close()
        raise MirrorError(
            f"kernel {kernel_name!r} failed to start: {exc} (log: {log_path})",
            ExitStatus.KERNELSPEC,
        ) from None
    return OwnKernel(manager, log, since)


async def died_at_start(kernel: OwnKernel) -> DiedAtStart:
    """Wait until the kernel's process exits; the error that tells it."""
    status = await kernel.manager.provisioner.wait()
    try:  # the kernel wrote it through its own descriptor: ours holds nothing unflushed
        with open(kernel.log.name, "rb") as f:
            f.seek(kernel.since)
            said = f.read().decode("utf-8", "replace")
    except OSError:
        said = ""
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    how = f"signal {-status}" if status is not None and status < 0 else f"status {status}"
    said_last = f"{lines[-1][:LAST_WORDS]!r} (log: {kernel.log.name})" if lines else "no output"
    return DiedAtStart(
        f"kernel {kernel.manager.kernel_name!r} exited at start ({how}): {said_last}",
        port_clash=PORT_CLASH in said,
    )
