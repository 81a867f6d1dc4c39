"""What a user pastes -> which server, which kernel.  Pure: no network.

Rules:

* Accepted: a notebook's page (``…/lab/tree/P.ipynb``, ``…/lab/workspaces/W/tree/P.ipynb``,
  ``…/doc/tree/P.ipynb``, ``…/notebooks/P.ipynb``, ``…/tree/P.ipynb``), a kernel
  (``…/api/kernels/ID``, also ``…/api/kernels/ID/channels``), or the server's root
  with any prefix (a JupyterHub ``…/user/NAME/``); a page that is not a notebook
  (the file browser, ``…/lab``) means the root.
* The base is everything before the first page marker; the notebook path is
  what follows it, URL-decoded.  ``?token=`` is taken out; nothing else of the
  query or fragment is kept.
* The token never appears in :meth:`ServerTarget.display` or :func:`kernel_url`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["ServerTarget", "is_server_url", "kernel_url", "parse_server_url"]

# Page markers, in the order they are tried at each position (longest first).
_NOTEBOOK_PAGES = ("/lab/workspaces/", "/lab/tree/", "/doc/tree/", "/notebooks/", "/tree/")
_ROOT_PAGES = ("/lab", "/tree", "/doc", "/notebooks", "/hub/user-redirect")


@dataclass(frozen=True)
class ServerTarget:
    """A parsed server URL: ``base`` ends with ``/``; ``kind`` is root, kernel or notebook."""

    base: str
    kind: str = "root"
    kernel_id: str = ""
    path: str = ""  # the notebook, relative to the server's root dir
    token: str = ""

    @property
    def display(self) -> str:
        """What to show the user: the URL without the token."""
        if self.kind == "kernel":
            return kernel_url(self.base, self.kernel_id)
        if self.kind == "notebook":
            return f"{self.base}lab/tree/{quote(self.path)}"
        return self.base

    @property
    def secure(self) -> bool:
        return self.base.startswith("https://")


def is_server_url(text: str | None) -> bool:
    return bool(text) and text.lower().startswith(("http://", "https://"))  # type: ignore[union-attr]


def kernel_url(base: str, kernel_id: str) -> str:
    """``BASE/api/kernels/ID``: how a peer joins (no token)."""
    return f"{base}api/kernels/{kernel_id}"


def parse_server_url(text: str) -> ServerTarget:
    """Parse what a user pastes; ``ValueError`` (one line) if it is no server URL."""
    parts = urlsplit(text.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL of a Jupyter server: {text!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {text!r}") from None
    tokens = parse_qs(parts.query).get("token") or [""]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    origin = f"{parts.scheme.lower()}://{host}" + (f":{port}" if port else "")
    path = parts.path or "/"
    prefix, kind, kernel_id, nb = _split_path(path)
    base = origin + (prefix if prefix.endswith("/") else prefix + "/")
    return ServerTarget(base, kind, kernel_id, nb, tokens[0])


def _after_hub_user(path: str) -> int:
    """Where to start looking for a page: after a JupyterHub ``/user/NAME``, whatever NAME is."""
    at = path.find("/user/")
    if at < 0 or set(path[:at].split("/")) & {"lab", "tree", "doc", "notebooks", "api"}:
        return 0
    end = path.find("/", at + len("/user/"))
    return len(path) if end < 0 else end


def _split_path(path: str) -> tuple[str, str, str, str]:
    """(prefix, kind, kernel_id, notebook path) of a URL path."""
    marker = path.find("/api/kernels/")
    if marker >= 0:
        kernel_id = path[marker + len("/api/kernels/") :].strip("/").split("/")[0]
        if kernel_id:
            return path[: marker + 1], "kernel", unquote(kernel_id), ""
    for i in range(_after_hub_user(path), len(path)):
        if path[i] != "/":
            continue
        for page in _NOTEBOOK_PAGES:
            if not path.startswith(page, i):
                continue
            rest = path[i + len(page) :]
            if page == "/lab/workspaces/":
                _, sep, rest = rest.partition("/tree/")
                if not sep:
                    return path[: i + 1], "root", "", ""
            nb = unquote(rest).strip("/")
            if nb.endswith(".ipynb"):
                return path[: i + 1], "notebook", "", nb
            return path[: i + 1], "root", "", ""
        for page in _ROOT_PAGES:
            end = i + len(page)
            if path.startswith(page, i) and (end == len(path) or path[end] == "/"):
                return path[: i + 1], "root", "", ""
    return path, "root", "", ""
