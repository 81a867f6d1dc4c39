"""The interactive console: your prompt at the bottom, everyone's cells above it.

The prompt is a prompt_toolkit ``PromptSession`` whose message carries the
live region (progress bars, live displays) and whose bottom toolbar is the
status line; committed peer output is written above it by :class:`TerminalWriter`,
which erases and redraws the prompt around each frame, so a half-typed line
is never broken.  While your own cell runs, a small "busy" app takes the
prompt's place: it keeps showing the live region and status, and turns
Ctrl-C into an interrupt.
"""

from __future__ import annotations

import asyncio
import os
import sys
from argparse import Namespace
from collections.abc import AsyncGenerator
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import ANSI
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.lexers import DynamicLexer

from ipymirror.commands._lifecycle import (
    background,
    connected,
    heartbeat,
    mirror_for_link,
    until_stopped,
)
from ipymirror.commands.record import Recorder, check_target
from ipymirror.core.events import Event, Peer, Status
from ipymirror.core.presence import Running
from ipymirror.core.render import lexer_for
from ipymirror.core.status import status_line
from ipymirror.errors import ExitStatus
from ipymirror.terminal.mirror import Mirror
from ipymirror.terminal.widgets import STYLE, live_text, status_app
from ipymirror.transports.base import KernelTransport

__all__ = ["Console", "run_console"]

REQUEST_TIMEOUT = 2.0  # seconds to wait for is_complete / complete replies


class KernelCompleter(Completer):
    """Tab completion from the kernel's ``complete_reply``."""

    def __init__(self, link: KernelTransport) -> None:
        self.link = link

    def get_completions(self, document: Document, complete_event: CompleteEvent):
        return iter(())  # only the async path is used

    async def get_completions_async(
        self, document: Document, complete_event: CompleteEvent
    ) -> AsyncGenerator[Completion, None]:
        pos = document.cursor_position
        try:
            msg_id = self.link.complete(document.text, pos)
            reply = await self.link.request(msg_id, REQUEST_TIMEOUT)
        except TimeoutError:
            return
        content = reply.get("content") or {}
        start = content.get("cursor_start", pos)
        start = start if isinstance(start, int) else pos
        for match in content.get("matches") or []:
            if isinstance(match, str):
                yield Completion(match, start_position=start - pos)


class Console:
    """Your prompt on a shared kernel."""

    def __init__(
        self, link: KernelTransport, mirror: Mirror, me: Peer, history: str | None
    ) -> None:
        self.link = link
        self.mirror = mirror
        self.me = me
        self._stdin_requests: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        link.on_stdin = self._stdin_requests.put_nowait
        self._mine_done: dict[str, asyncio.Event] = {}
        self.dead = asyncio.Event()  # set by the heartbeat watcher
        self._tasks: set[asyncio.Task[Any]] = set()
        self._typeahead: list[Any] = []  # KeyPresses typed while your cell ran
        self._lexer: Any = None  # built after the first prompt is drawn (see _warm_up)
        self._message_key: Any = None
        self._message_ansi = ANSI("")
        self._toolbar_key = -1
        self._toolbar_ansi = ANSI("")
        self.session: PromptSession[str] = PromptSession(
            message=self._message,
            bottom_toolbar=self._toolbar,
            multiline=True,
            key_bindings=self._bindings(),
            completer=KernelCompleter(link),
            complete_while_typing=False,
            history=_history(history),
            lexer=DynamicLexer(lambda: self._lexer),
            prompt_continuation=self._continuation,
            style=STYLE,
            include_default_pygments_style=False,
        )
        self._busy_app = self._make_busy_app()

    def _background(self, coro: Any) -> None:
        """Run a coroutine from a key binding, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- what the prompt shows ----------------------------------------------
    def _live_text(self) -> str:
        return live_text(self.mirror, self.session.app.output.get_size().rows)

    def _in_prompt(self) -> str:
        return self.mirror.renderer.paint("\x1b[32m", f"In [{self.mirror.presence.next_count()}]: ")

    def _message(self) -> ANSI:
        app = self.session.app
        size = app.output.get_size()
        self.mirror.renderer.width = max(20, size.columns - 2)  # rich layouts follow resizes
        # prompt_toolkit hides the bottom toolbar while it does not know the rows
        # below the cursor (a terminal that ignores cursor position reports): then
        # the status line goes above the prompt instead.
        below = not app.is_done and not app.renderer.height_is_known
        waiting = self.mirror.writer.pending_bytes() > 0  # then live lines are not shown
        key = (
            self.mirror.transcript.version,
            self.mirror.presence.version,
            size,
            app.is_done,
            below,
            waiting,
        )
        if key != self._message_key:  # redrawn every frame of a flood: parse ANSI only on change
            if app.is_done:
                text = self._in_prompt()
            else:
                status = self._status() + "\n" if below else ""
                text = self._live_text() + status + self._in_prompt()
            self._message_key, self._message_ansi = key, ANSI(text)
        return self._message_ansi

    def _continuation(self, width: int, line_number: int, wrap_count: int) -> ANSI:
        return ANSI(self.mirror.renderer.paint("\x1b[32m", "...: ".rjust(width)))

    def _status(self) -> str:
        return status_line(self.mirror.presence, self.mirror.renderer, self.me)

    def _toolbar(self) -> ANSI:
        if self._toolbar_key != self.mirror.presence.version:
            self._toolbar_key, self._toolbar_ansi = (
                self.mirror.presence.version,
                ANSI(self._status()),
            )
        return self._toolbar_ansi

    def _bindings(self) -> KeyBindings:
        kb = KeyBindings()

        @kb.add("enter")
        def _enter(event: Any) -> None:
            buf = event.current_buffer
            if buf.complete_state is not None and buf.complete_state.current_completion:
                buf.complete_state = None
                return
            doc = buf.document
            if self.dead.is_set() and doc.text.strip():
                self.mirror.notice("the kernel is not answering: nothing sent, your input is kept")
                return
            if doc.text.strip() and not doc.is_cursor_at_the_end:
                buf.insert_text("\n")
                return
            if not doc.text.strip() or doc.text.endswith("\n"):
                buf.validate_and_handle()
                return
            self._background(self._submit_if_complete(buf))

        @kb.add("escape", "enter")
        @kb.add("c-j")
        def _newline(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        return kb

    async def _submit_if_complete(self, buf: Any) -> None:
        """Enter: run the cell if the kernel says it is complete, else a new line."""
        code = buf.text
        try:
            reply = await self.link.request(self.link.is_complete(code), REQUEST_TIMEOUT)
            content = reply.get("content") or {}
        except TimeoutError:
            content = {"status": "unknown"}
        if buf.text != code:  # typed on meanwhile: their keystrokes win
            return
        if content.get("status") == "incomplete":
            indent = content.get("indent")
            buf.insert_text("\n" + (indent if isinstance(indent, str) else ""))
        else:
            buf.validate_and_handle()

    # -- running your own cells -----------------------------------------------
    def _make_busy_app(self) -> Application[None]:
        kb = KeyBindings()

        @kb.add("<any>")
        def _type_ahead(event: Any) -> None:
            """Keys typed while your cell runs are replayed into the next prompt."""
            self._typeahead.extend(event.key_sequence)

        @kb.add("c-c")
        def _interrupt(event: Any) -> None:
            self._background(self.link.interrupt())

        return status_app(self._live_text, self._status, kb)

    def on_event(self, ev: Event) -> None:
        """Pipeline listener: the idle of one of your cells ends its busy phase."""
        if isinstance(ev, Status) and ev.state == "idle":
            done = self._mine_done.get(ev.cell)
            if done is not None:
                done.set()

    async def _execute(self, code: str) -> None:
        msg_id = self.link.execute(code, allow_stdin=True)
        done = self._mine_done[msg_id] = asyncio.Event()
        first_line = code.strip().split("\n", 1)[0]
        self.mirror.presence.running.setdefault(msg_id, Running(self.me, None, first_line))
        try:
            while not done.is_set():
                if self.dead.is_set():
                    self.mirror.notice("the kernel died while your cell was running")
                    return
                waiter = asyncio.ensure_future(
                    _first(done.wait(), self.dead.wait(), self._stdin_requests.get())
                )
                request = await self._run_busy(waiter)
                if isinstance(request, dict):
                    await self._answer_input(request)
        finally:
            self._mine_done.pop(msg_id, None)
            self.mirror.presence.running.pop(msg_id, None)

    async def _run_busy(self, waiter: asyncio.Future[Any]) -> Any:
        app = self._busy_app
        self.mirror.writer.app = app
        waiter.add_done_callback(lambda _: app.exit() if app.is_running else None)
        try:
            await app.run_async()
        finally:
            self.mirror.writer.app = None
        if not waiter.done():
            waiter.cancel()
            return None
        return waiter.result()

    async def _answer_input(self, request: dict[str, Any]) -> None:
        content = request.get("content") or {}
        prompt = self.mirror.renderer.clean(str(content.get("prompt", "")))
        reader: PromptSession[str] = PromptSession()
        self.mirror.writer.app = reader.app
        try:
            value = await reader.prompt_async(prompt, is_password=bool(content.get("password")))
        except (EOFError, KeyboardInterrupt):
            await self.link.interrupt()
            value = ""
        finally:
            self.mirror.writer.app = None
        self.link.input(value)

    # -- the main loop ----------------------------------------------------------
    def _warm_up(self) -> None:
        """Compile the highlighter after start-up: pygments needs ~60 ms for Python."""
        self._lexer = _lexer(self.link.language)
        self.mirror.renderer.code("x = 1")
        self.session.app.invalidate()

    def _replay_typeahead(self) -> None:
        """Feed keys typed during your last cell to the new prompt, as IPython would."""
        keys, self._typeahead = self._typeahead, []
        if keys:
            processor = self.session.app.key_processor
            processor.feed_multiple(keys)
            processor.process_keys()

    async def run(self) -> None:
        self.session.app.min_redraw_interval = 0.01
        asyncio.get_running_loop().call_later(0.05, self._warm_up)
        while True:
            self.mirror.writer.app = self.session.app
            try:
                code = await self.session.prompt_async(pre_run=self._replay_typeahead)
            except KeyboardInterrupt:
                continue
            except EOFError:
                return
            finally:
                self.mirror.writer.app = None
            if code.strip():
                await self._execute(code)


async def _first(*aws: Any) -> Any:
    """The result of whichever awaitable finishes first (a dict wins a tie)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        results = [t.result() for t in done]
        return next((r for r in results if isinstance(r, dict)), results[0])
    finally:
        for task in tasks:
            task.cancel()


def _history(path: str | None) -> Any:
    if path is None:
        return InMemoryHistory()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return FileHistory(path)


def _lexer(language: str) -> Any:
    lexer = lexer_for(language)
    if lexer is None:
        return None
    from prompt_toolkit.lexers import PygmentsLexer

    return PygmentsLexer(type(lexer))


async def run_console(args: Namespace) -> ExitStatus:
    """The console: your prompt on the kernel, everyone's cells above it."""
    recording = getattr(args, "record", None)
    if recording:
        check_target(recording)  # refused before connecting, not after
    async with connected(args) as link:
        recorder = Recorder.for_link(recording, link) if recording else None
        try:
            return await _console(link, args, recorder)
        finally:
            if recorder is not None:
                recorder.close()


async def _console(link: KernelTransport, args: Namespace, recorder: Recorder | None) -> ExitStatus:
    from jupyter_core.paths import jupyter_data_dir

    stream = sys.stdout
    mirror = mirror_for_link(link, args, stream)
    me = Peer(link.session_id, link.username)
    history = os.path.join(jupyter_data_dir(), "ipymirror", "history")
    console = Console(link, mirror, me, history)
    mirror.pipeline.listeners.append(console.on_event)
    if recorder is not None:
        recorder.on_error = recorder.on_warning = mirror.notice
        mirror.pipeline.sinks.append(recorder.write)
        mirror.notice(f"recording to {args.record}")
    if link.manager is not None:
        mirror.notice(
            f"started a {link.description}; peers join with: "
            f"ipymirror --existing {link.where}  (jupyter console --existing works too)"
        )
    else:
        mirror.notice(f"joined the {link.description} of {link.where} as {me.label}")
    async with background(mirror.run(link.iopub_batches()), heartbeat(link, mirror, console.dead)):
        await until_stopped(asyncio.ensure_future(console.run()), sigint=False)
    if link.bad_signatures:
        mirror.notice(f"{link.bad_signatures} messages failed the signature check in all")
    mirror.writer.flush_now()
    return ExitStatus.OK
