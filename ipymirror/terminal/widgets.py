"""Pieces of screen shared by the frontends: the live region and the status app.

The console's prompt, its "your cell is running" app, ``watch`` and ``replay``
all show the same two things at the bottom of the terminal: the transcript's
live lines (cut to a share of the screen) and the status line on the last row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prompt_toolkit.application import Application
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.key_binding import KeyBindingsBase
from prompt_toolkit.layout import HSplit, Layout, Window
from prompt_toolkit.layout.controls import FormattedTextControl
from prompt_toolkit.styles import Style

from ipymirror.core.render import RESET
from ipymirror.terminal.mirror import Mirror

__all__ = ["STYLE", "live_text", "status_app"]

STYLE = Style.from_dict({"bottom-toolbar": "noreverse", "bottom-toolbar.text": "noreverse"})


def live_text(mirror: Mirror, rows: int, share: float = 1 / 3) -> str:
    """The live lines that fit in ``share`` of the screen, newline-terminated.

    Nothing while committed lines still wait for the terminal: the live lines
    come after them, and showing them first would show the stream out of order.
    """
    if mirror.writer.pending_bytes():
        return ""
    lines = mirror.transcript.live()
    if not lines:
        return ""
    keep = max(3, int(rows * share))
    if len(lines) > keep:
        hidden = len(lines) - keep + 1
        lines = [mirror.renderer.notice(f"… {hidden} more live lines"), *lines[-keep + 1 :]]
    return "\n".join(lines) + RESET + "\n"


def status_app(
    live: Callable[[], str],
    status: Callable[[], str],
    key_bindings: KeyBindingsBase,
    **app_kwargs: Any,
) -> Application[Any]:
    """An app of the live region, then (after a filler) the status line on the bottom row."""
    body = HSplit(
        [
            Window(FormattedTextControl(lambda: ANSI(live())), dont_extend_height=True),
            Window(),  # takes the rows between, so the status line sits at the bottom
            Window(
                FormattedTextControl(lambda: ANSI(status())),
                height=1,
                style="class:bottom-toolbar",
            ),
        ]
    )
    return Application(
        layout=Layout(body),
        key_bindings=key_bindings,
        style=STYLE,
        erase_when_done=True,
        **app_kwargs,  # input/output: tests drive it in-process
    )
