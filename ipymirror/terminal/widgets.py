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

from ipymirror.core.images import Picture
from ipymirror.core.render import RESET
from ipymirror.terminal.mirror import Mirror

__all__ = ["STYLE", "live_text", "status_app"]

STYLE = Style.from_dict({"bottom-toolbar": "noreverse", "bottom-toolbar.text": "noreverse"})


def live_text(mirror: Mirror, rows: int, share: float = 1 / 3) -> str:
    """The live lines that fit in ``share`` of the screen, newline-terminated.

    A live picture (a display that may still be updated) is drawn in
    half-blocks, small enough to fit: it is redrawn in place on each update,
    which graphics protocols cannot do under a running app.  Once committed
    it is drawn again with the terminal's best protocol.

    Nothing while committed lines still wait for the terminal: the live lines
    come after them, and showing them first would show the stream out of order.
    """
    if mirror.writer.pending_bytes():
        return ""
    items = mirror.transcript.live_lines()
    if not items:
        return ""
    keep = max(3, int(rows * share))
    painter = mirror.writer.painter
    lines: list[str] = []
    for item in items:
        if not isinstance(item, Picture):
            lines.append(item)
        elif painter is None:
            lines.extend(item.lines())
        else:  # half-blocks: text the app can redraw in place, whatever the terminal
            lines.extend(painter.live(item, keep - 1))
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
