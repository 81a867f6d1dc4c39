"""Which kernel a server URL means: by notebook path, by id, or the most active one.

The pure part (:func:`pick`) is table-tested; :func:`resolve` adds the REST calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ipymirror.errors import ExitStatus, MirrorError
from ipymirror.transports.server.rest import ServerAPI
from ipymirror.transports.server.urls import ServerTarget, kernel_url

__all__ = ["Choice", "KernelRow", "pick", "resolve", "rows"]


@dataclass(frozen=True)
class KernelRow:
    """One kernel as ``--list`` shows it."""

    id: str
    name: str
    state: str
    connections: int
    last_activity: str
    notebooks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Choice:
    kernel_id: str
    why: str  # one line for the user: which kernel, and why this one
    others: int = 0


def rows(kernels: list[dict[str, Any]], sessions: list[dict[str, Any]]) -> list[KernelRow]:
    """Kernels with the notebooks (sessions) using them, most recently active first."""
    paths: dict[str, list[str]] = {}
    for s in sessions:
        kernel = s.get("kernel")
        kernel = kernel if isinstance(kernel, dict) else {}
        path = s.get("path") or s.get("name")
        if isinstance(kernel.get("id"), str) and isinstance(path, str):
            paths.setdefault(kernel["id"], []).append(path)
    out = [
        KernelRow(
            str(k.get("id", "")),
            str(k.get("name", "")),
            str(k.get("execution_state", "")),
            k["connections"] if isinstance(k.get("connections"), int) else 0,
            str(k.get("last_activity", "")),
            tuple(paths.get(str(k.get("id")), ())),
        )
        for k in kernels
        if isinstance(k.get("id"), str)
    ]
    return sorted(out, key=lambda r: r.last_activity, reverse=True)  # ISO dates sort as text


def pick(target: ServerTarget, table: list[KernelRow]) -> Choice:
    """The kernel ``target`` means, given the server's kernels (most recent first)."""
    if target.kind == "kernel":
        return Choice(target.kernel_id, "")
    if target.kind == "notebook":
        wanted = target.path.strip("/")
        for row in table:
            if wanted in (p.strip("/") for p in row.notebooks):
                return Choice(row.id, f"the kernel of notebook {wanted}")
        raise MirrorError(
            f"no kernel for notebook {wanted} on {target.base} (is it open, with a kernel?)",
            ExitStatus.NOT_FOUND,
        )
    if not table:
        raise MirrorError(
            f"no kernel is running on {target.base} (start one: ipymirror --server {target.base})",
            ExitStatus.NOT_FOUND,
        )
    first = table[0]
    about = f"{first.name}" + (f", notebook {first.notebooks[0]}" if first.notebooks else "")
    if len(table) == 1:
        return Choice(first.id, f"the only kernel on the server ({about})")
    return Choice(
        first.id,
        f"the most recently active of {len(table)} kernels ({about}); "
        f"the others: ipymirror --existing {target.base} --list",
        len(table) - 1,
    )


async def resolve(api: ServerAPI, target: ServerTarget) -> Choice:
    """Ask the server (sessions and kernels) which kernel ``target`` means."""
    if target.kind == "kernel":
        await api.kernel(target.kernel_id)  # 404 -> NOT_FOUND, with the id
        return Choice(target.kernel_id, "")
    table = rows(await api.kernels(), await api.sessions())
    return pick(target, table)


def describe(row: KernelRow, base: str) -> str:
    """One ``--list`` line: how to join, and what the kernel is."""
    nbs = f"  {', '.join(row.notebooks)}" if row.notebooks else ""
    return (
        f"ipymirror --existing {kernel_url(base, row.id)}   {row.name} {row.state}, "
        f"{row.connections} connected, last active {row.last_activity or '?'}{nbs}"
    )
