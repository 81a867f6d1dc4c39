#!/usr/bin/env python3
"""Peak memory of ``ipymirror share`` when a peer bursts and a viewer never reads.

    python benchmarks/relay_burst.py            # 400 MB burst (~1 minute)
    python benchmarks/relay_burst.py --mb 100   # smaller

Starts an ipykernel on 127.0.0.1, ``ipymirror share`` on it, one viewer socket
that subscribes and then never reads (the worst viewer), and a peer that
prints the burst in 1 MB writes.  Prints the share process's peak RSS
(VmHWM): it should stay near the backlog cap (64 MB) plus the interpreter,
whatever the burst (issue 15 measured 1.9 GB for 400 MB before the caps).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import zmq
from jupyter_client import KernelManager
from jupyter_client.session import new_id

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from ipymirror.transports.share.ticket import Ticket  # noqa: E402


def _hwm(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["JUPYTER_RUNTIME_DIR"] = tmp
        km = KernelManager(kernel_name="python3")
        km.start_kernel()
        share = subprocess.Popen(
            [sys.executable, "-m", "ipymirror", "share", "--existing", km.connection_file],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=os.path.dirname(HERE),
        )
        try:
            ticket = None
            assert share.stdout is not None
            for line in share.stdout:
                if m := re.search(r"ipymirror watch (\S+)", line):
                    ticket = Ticket.parse(m[1])
                if "listening on" in line:
                    break
            assert ticket is not None
            ctx = zmq.Context()
            sub = ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.CURVE_SERVERKEY, ticket.server_public.encode())
            sub.setsockopt(zmq.CURVE_PUBLICKEY, ticket.viewer_public.encode())
            sub.setsockopt(zmq.CURVE_SECRETKEY, ticket.viewer_secret.encode())
            sub.setsockopt(zmq.RCVHWM, 1)
            sub.setsockopt(zmq.RCVBUF, 4096)
            sub.connect(ticket.pub)
            sub.subscribe(b"")
            sub.recv_multipart()  # subscribed and served once (a tick): then never again
            client = km.client()
            client.session.session = new_id()
            client.start_channels()
            client.wait_for_ready(timeout=30)
            start = time.monotonic()
            reply = client.execute_interactive(
                "import sys\n"
                f"for i in range({args.mb}):\n"
                "    sys.stdout.write(('y' * 1023 + '\\n') * 1024); sys.stdout.flush()\n",
                timeout=600,
                output_hook=lambda msg: None,
            )
            assert reply["content"]["status"] == "ok"
            time.sleep(2)  # let the relay drain what it has received
            took = time.monotonic() - start
            print(f"burst {args.mb} MB in {took:.1f} s; share peak RSS {_hwm(share.pid):.0f} MB")
            client.stop_channels()
            sub.close(linger=0)
            ctx.term()
        finally:
            share.terminate()
            share.wait(30)
            km.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
