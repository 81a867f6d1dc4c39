"""ipykernel that loses the port race on its first start, for real.

``clashing_kernel.py MARKER -f CONNECTION_FILE``: when MARKER does not exist
yet, create it and hold the connection file's shell port before ipykernel
binds it, as another process on the machine could between jupyter_client
picking the ports and the kernel binding them; ipykernel then dies with ZMQ's
"Address already in use".  Every later start is a plain ipykernel.
Started by a kernelspec of tests/e2e/test_kernel_start.py.
"""

import json
import socket
import sys
from pathlib import Path

from ipykernel.kernelapp import launch_new_instance

if __name__ == "__main__":
    marker = Path(sys.argv.pop(1))
    if not marker.exists():
        marker.touch()
        info = json.loads(Path(sys.argv[sys.argv.index("-f") + 1]).read_text())
        holder = socket.socket()
        holder.bind((info["ip"], info["shell_port"]))
        holder.listen()
    launch_new_instance()
