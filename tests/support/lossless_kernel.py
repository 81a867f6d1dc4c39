"""ipykernel for the tests, with no high-water mark on its own sockets.

A ZMQ PUB socket drops what it cannot send once 1,000 messages wait for one
subscriber (its SNDHWM): a kernel flooding a subscriber that a loaded machine
starves of CPU loses messages before they ever reach ipymirror, whatever
ipymirror does.  The flood tests measure ipymirror, so their kernel queues
instead (``docs/security.md`` says what this means for real kernels).
Started by the sandbox's ``python3`` kernelspec (tests/conftest.py).
"""

import zmq
from ipykernel.kernelapp import launch_new_instance

_init = zmq.Context.__init__


def _unbounded(self: zmq.Context, *args: object, **kwargs: object) -> None:
    _init(self, *args, **kwargs)  # type: ignore[arg-type]
    self.setsockopt(zmq.SNDHWM, 0)


zmq.Context.__init__ = _unbounded  # type: ignore[method-assign]

if __name__ == "__main__":
    launch_new_instance()
