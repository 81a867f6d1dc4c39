"""A real ipykernel made hostile from inside, for tests of every subscriber.

``HOSTILE`` is a cell: it signs frames with the kernel's own session and puts
them on the kernel's IOPub socket, exactly what a hostile (or buggy) kernel
would broadcast -- a valid signature around a null header, and content nested
100,000 levels deep -- then prints ``after the hostile ones``.
"""

#: Kernel-side code: broadcast two signed but malformed messages, then print.
HOSTILE = r"""
import json, uuid
_k = get_ipython().kernel
_s = _k.session
_parent = json.dumps(_k.get_parent()["header"], default=str).encode()

def _send(parts):
    _k.iopub_socket.send_multipart([b"x", b"<IDS|MSG>", _s.sign(parts), *parts])

def _header(kind):
    return json.dumps({"msg_id": uuid.uuid4().hex, "msg_type": kind, "session": _s.session,
                       "username": "kernel", "date": "2026-01-01T00:00:00Z",
                       "version": "5.3"}).encode()

_send([b"null", _parent, b"{}", b'{"name": "stdout", "text": "null header\\n"}'])
_deep = b"[" * 100_000 + b"]" * 100_000
_send([_header("display_data"), _parent, b"{}",
       b'{"metadata": {}, "data": {"application/json": ' + _deep + b'}}'])
print("after the " + "hostile ones", flush=True)
"""
