"""The files around a kernel ipymirror starts: how to get a missing kernelspec,
and its log, removed on exit when it says only what every start says."""

from __future__ import annotations

import contextlib
import os

__all__ = ["INSTALL_HINTS", "remove_if_harmless"]


#: How to get a kernelspec people often ask for by name.
INSTALL_HINTS = {
    "bash": "install it: pip install bash_kernel && python -m bash_kernel.install",
    "ir": "install it: R -e 'install.packages(\"IRkernel\"); IRkernel::installspec()' "
    "(Debian: apt-get install r-cran-irkernel)",
    "xpython": "install it: pip install xeus-python",
}

#: Lines kernels write to their log when all is well.
_HARMLESS = (
    "Kernel is running over TCP without encryption",  # ipykernel 7, on every start
    "To connect another client to this kernel",
    # IPython's banner when the kernel is started as `ipython kernel`:
    "NOTE: When using the `ipython kernel` entry point",
    # ...and the rest of that note, which an independent kernel (see start()) prints
    "To exit, you will have to explicitly quit this process",
    '"quit" from a client, or using Ctrl-\\ in UNIX-like environments',
    "To read more about this, see https://github.com/ipython/ipython/issues/2049",
    "    --existing kernel-",
)


def remove_if_harmless(path: str) -> None:
    """Remove the log of a kernel we started when it is empty or says only
    what every start says; a log with anything else is kept for the user."""
    try:
        with open(path, "rb") as f:
            text = f.read(256 * 1024 + 1).decode("utf-8", "replace")
    except OSError:
        return
    if len(text) > 256 * 1024:
        return
    for line in text.splitlines():
        if line.strip() and not any(mark in line for mark in _HARMLESS):
            return
    with contextlib.suppress(OSError):
        os.remove(path)
