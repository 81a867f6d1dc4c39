"""The interactive console: your prompt at the bottom, everyone's cells above it.

The prompt is a prompt_toolkit ``PromptSession`` (:mod:`ipymirror.terminal.prompt`)
whose message carries the live region and whose bottom toolbar is the status
line; committed peer output is written above it by the TerminalWriter, so a
half-typed line is never broken.  While your own cell runs, a small "busy" app
takes the prompt's place and turns Ctrl-C into an interrupt.

Your own replies are honoured as IPython's terminal does: a ``page`` payload
(``len?``) is shown inline or in a pager, ``set_next_input`` (``%load``) fills
your next prompt, ``ask_exit`` (``exit``) leaves, ``edit_magic`` opens $EDITOR.

Leaving never destroys a shared kernel by accident: a kernel you joined is never
shut down, and one you started is shut down only after asking, if others use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from argparse import Namespace
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application
from prompt_toolkit.enums import DEFAULT_BUFFER
from prompt_toolkit.filters import has_focus
from prompt_toolkit.key_binding import KeyBindings

from ipymirror.commands._lifecycle import (
    background,
    connected,
    heartbeat,
    listening,
    mirror_for_link,
    until_stopped,
)
from ipymirror.commands.leaving import (
    banner_lines,
    history_file,
    leave,
    leave_words,
    simple_prompt_wanted,
)
from ipymirror.commands.pages import edit_file, show_page
from ipymirror.commands.record import Recorder, check_target
from ipymirror.core.events import Event, Peer, Status, Submitted
from ipymirror.core.replies import (
    AskExit,
    CompleteReply,
    EditMagic,
    InputRequest,
    Page,
    SetNextInput,
    complete_reply,
    execute_reply,
    input_request,
    is_complete_reply,
)
from ipymirror.errors import ExitStatus
from ipymirror.terminal import prompt as tp
from ipymirror.terminal.mirror import Mirror
from ipymirror.terminal.prompt_face import PromptFace
from ipymirror.terminal.widgets import STYLE, status_app
from ipymirror.transports.base import KernelTransport

__all__ = ["Console", "run_console"]

REQUEST_TIMEOUT = 2.0  # seconds to wait for is_complete (Enter must not hang)
COMPLETE_TIMEOUT = 60.0  # a first completion may load jedi: seconds, not a bug
REPLY_GRACE = 5.0  # seconds to wait for execute_reply after the cell's idle
#: A new kernel on its way: your cell waits until it is back (see Console._until_back).
COMING_BACK = ("restarting", "starting")


class Console:
    """Your prompt on a shared kernel.

    ``options`` are the command's options (editing_mode, confirm_exit, pager…);
    ``simple`` reads plain lines instead of drawing a prompt.  ``pt_input`` and
    ``pt_output`` are for tests (prompt_toolkit's pipe input and DummyOutput).
    """

    def __init__(
        self,
        link: KernelTransport,
        mirror: Mirror,
        me: Peer,
        history: str | None,
        options: Any = None,
        *,
        simple: bool = False,
        pt_input: Any = None,
        pt_output: Any = None,
    ) -> None:
        self.link = link
        self.mirror = mirror
        self.me = me
        self.options = options if options is not None else Namespace()
        self.simple = simple
        if simple and pt_output is None:  # nothing of prompt_toolkit may reach the terminal
            from prompt_toolkit.input import DummyInput
            from prompt_toolkit.output import DummyOutput

            pt_input, pt_output = DummyInput(), DummyOutput()
        self._io = {"input": pt_input, "output": pt_output}
        self._stdin_requests: asyncio.Queue[InputRequest] = asyncio.Queue()
        link.on_stdin = lambda msg: self._stdin_requests.put_nowait(input_request(msg))
        self._mine_done: dict[str, asyncio.Event] = {}
        self.dead = asyncio.Event()  # set by the heartbeat watcher
        self._tasks: set[asyncio.Task[Any]] = set()
        self._typeahead: list[Any] = []  # KeyPresses typed while your cell ran
        self._next_input = ""  # set_next_input: the text of your next prompt
        self.exit_request: AskExit | None = None  # exit/quit typed
        self.face = PromptFace(mirror, me, lambda: self.session.app)
        self.reader = tp.LineReader() if simple else None
        self._python = link.language.lower().startswith(("python", "ipython"))
        self.session: PromptSession[str] = PromptSession(
            message=self.face.message,
            bottom_toolbar=None if simple else self.face.toolbar,
            multiline=True,
            key_bindings=self._bindings(),
            completer=tp.KernelCompleter(self._complete),
            complete_while_typing=False,
            enable_history_search=True,
            auto_suggest=tp.auto_suggest(_opt(self.options, "auto_suggest", True)),
            history=tp.history_for(history),
            input_processors=tp.input_processors(
                _opt(self.options, "highlight_matching_brackets", True)
            ),
            editing_mode=tp.editing_mode(_opt(self.options, "editing_mode", "emacs")),
            prompt_continuation=self.face.continuation,
            style=tp.prompt_style(STYLE, light=True),
            include_default_pygments_style=False,
            **self.pt_io(),
        )
        self._busy_app = self._make_busy_app()

    def pt_io(self) -> dict[str, Any]:
        return {k: v for k, v in self._io.items() if v is not None}

    def _background(self, coro: Any) -> None:
        """Run a coroutine from a key binding, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _bindings(self) -> KeyBindings:
        kb = KeyBindings()
        mine = has_focus(DEFAULT_BUFFER)  # not while Ctrl-R's search field has the keys

        @kb.add("enter", filter=mine)
        def _enter(event: Any) -> None:
            buf = event.current_buffer
            if buf.complete_state is not None and buf.complete_state.current_completion:
                buf.complete_state = None
                return
            doc = buf.document
            if self.dead.is_set() and doc.text.strip():
                self.mirror.notice("the kernel is not answering: nothing sent, your input is kept")
                return
            last = doc.line_count - doc.empty_line_count_at_the_end()
            if doc.text.strip() and doc.cursor_position_row < last - 1:  # IPython's rule
                buf.insert_text("\n" + tp.newline_indent(doc.text_before_cursor, self._python))
                return
            if not doc.text.strip() or doc.text.endswith("\n"):
                buf.validate_and_handle()
                return
            self._background(self._submit_if_complete(buf))

        @kb.add("escape", "enter", filter=mine)
        @kb.add("c-j", filter=mine)
        def _newline(event: Any) -> None:
            buf = event.current_buffer
            buf.insert_text("\n" + tp.newline_indent(buf.document.text_before_cursor, self._python))

        return kb

    async def _complete(self, code: str, pos: int) -> CompleteReply:
        reply = await self.link.request(self.link.complete(code, pos), COMPLETE_TIMEOUT)
        return complete_reply(reply, pos)

    async def _is_complete(self, code: str) -> tuple[str, str]:
        try:
            reply = is_complete_reply(
                await self.link.request(self.link.is_complete(code), REQUEST_TIMEOUT)
            )
        except TimeoutError:
            return "unknown", ""
        indent = reply.indent
        if not indent and reply.status == "incomplete" and self._python:
            indent = tp.newline_indent(code, True)
        return reply.status, indent

    async def _submit_if_complete(self, buf: Any) -> None:
        """Enter: run the cell if the kernel says it is complete, else a new line."""
        code = buf.text
        status, indent = await self._is_complete(code)
        if buf.text != code:  # typed on meanwhile: their keystrokes win
            return
        if status == "incomplete":
            buf.insert_text("\n" + indent)
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

        return status_app(self.face.live_text, self.face.status, kb, **self.pt_io())

    def on_event(self, ev: Event) -> None:
        """Pipeline listener: the idle of one of your cells ends its busy phase."""
        if isinstance(ev, Status) and ev.state == "idle":
            done = self._mine_done.get(ev.cell)
            if done is not None:
                done.set()

    async def _until_back(self) -> bool:
        """A restarting kernel gets your cell once it is back: False if it died instead.

        Its shell can answer before its IOPub reaches us (each ZMQ socket reconnects
        on its own timer; a Jupyter Server's own sockets to the new kernel too), and
        a cell run then shows nothing: its broadcasts are lost.  The kernel is back
        on the events that say IOPub delivers (the heartbeat's ``KernelBack``, which
        waits for that, or the new kernel's busy/idle), as JupyterLab holds messages
        while a kernel restarts.  Meanwhile the busy app shows, and Ctrl-C interrupts.
        """
        presence = self.mirror.presence
        if presence.state not in COMING_BACK:
            return True
        self.mirror.notice("the kernel is restarting: your cell runs once it is back")
        back = asyncio.Event()

        def on_event(ev: Event) -> None:
            if presence.state not in COMING_BACK:
                back.set()

        with listening(self.mirror, on_event):
            await self._run_busy(asyncio.ensure_future(_first(back.wait(), self.dead.wait())))
        return not self.dead.is_set()

    async def execute(self, code: str) -> None:
        """Run your cell, answer its input requests, then act on its reply's payloads."""
        if not await self._until_back():
            self.mirror.notice("the kernel did not come back: your cell was not sent")
            return
        msg_id = self.link.execute(code, allow_stdin=True)
        reply = asyncio.ensure_future(self.link.request(msg_id))
        done = self._mine_done[msg_id] = asyncio.Event()
        first_line = code.strip().split("\n", 1)[0]
        self.mirror.feed_events([Submitted(self.me, msg_id, first_line)])
        try:
            while not done.is_set():
                if self.dead.is_set():
                    self.mirror.notice("the kernel died while your cell was running")
                    return
                waiter = asyncio.ensure_future(
                    _first(done.wait(), self.dead.wait(), self._stdin_requests.get())
                )
                request = await self._run_busy(waiter)
                if isinstance(request, InputRequest):
                    await self._answer_input(request)
            try:
                msg = await asyncio.wait_for(asyncio.shield(reply), REPLY_GRACE)
            except TimeoutError:
                return
            for payload in execute_reply(msg).payloads:
                await self._payload(payload)
        finally:
            reply.cancel()
            self._mine_done.pop(msg_id, None)

    async def _run_busy(self, waiter: asyncio.Future[Any]) -> Any:
        if self.simple:
            return await waiter
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

    async def _answer_input(self, request: InputRequest) -> None:
        prompt = self.mirror.renderer.clean(request.prompt)
        try:
            value = await self.ask(prompt, password=request.password)
        except (EOFError, KeyboardInterrupt):
            await self.link.interrupt()
            value = ""
        self.link.input(value)

    async def ask(self, prompt: str, *, password: bool = False) -> str:
        """One line from you (input(), getpass, a question of ours)."""
        if self.reader is not None:
            return await self.reader.readline(prompt)
        reader: PromptSession[str] = PromptSession(**self.pt_io())
        self.mirror.writer.app = reader.app
        try:
            return await reader.prompt_async(prompt, is_password=password)
        finally:
            self.mirror.writer.app = None

    # -- payloads of your own replies --------------------------------------------
    async def _payload(self, payload: Any) -> None:
        if isinstance(payload, Page):
            await show_page(self, payload.text, payload.start)
        elif isinstance(payload, SetNextInput):
            self._next_input = payload.text
        elif isinstance(payload, AskExit):
            self.exit_request = payload
        elif isinstance(payload, EditMagic):
            self._next_input = await edit_file(self, payload) or self._next_input

    # -- the main loop ----------------------------------------------------------
    def _warm_up(self) -> None:
        """Compile the highlighter after start-up: pygments needs ~60 ms for Python.

        (No completion is asked ahead of your first Tab: on a shared kernel that is
        load for everyone, and the Tab itself waits as long as the kernel needs.)
        """
        # Set on the session itself: its own DynamicLexer then sees a new lexer and
        # re-lexes what was typed before (one nested DynamicLexer would hide it).
        self.session.lexer = tp.prompt_lexer(self.link.language)
        self.mirror.renderer.code("x = 1")
        self.session.app.invalidate()

    def _replay_typeahead(self) -> None:
        """Feed keys typed during your last cell to the new prompt, as IPython would."""
        keys, self._typeahead = self._typeahead, []
        if keys:
            processor = self.session.app.key_processor
            processor.feed_multiple(keys)
            processor.process_keys()

    async def read(self) -> str:
        """Your next cell (EOFError: Ctrl-D / end of input; KeyboardInterrupt: Ctrl-C)."""
        default, self._next_input = self._next_input, ""
        if self.reader is not None:
            return await self._read_simple(default)
        self.mirror.writer.app = self.session.app
        try:
            return await self.session.prompt_async(default=default, pre_run=self._replay_typeahead)
        finally:
            self.mirror.writer.app = None

    async def _read_simple(self, default: str) -> str:
        assert self.reader is not None
        if default:  # no editing here: the text is shown, an empty line runs it as it is
            self.mirror.writer.push([f"{default}\n"])
            self.mirror.writer.flush_now()
        prompt = f"In [{self.mirror.presence.next_count()}]: "
        return await self.reader.read_cell(prompt, self._is_complete) or default

    async def run(self) -> AskExit | None:
        """Prompt and run cells until you leave; what ``exit`` asked, if it was that.

        The terminal stays in raw mode from the first prompt to the last: the prompt,
        the busy app and an ``input()`` each set raw mode only while they run, and a
        key typed in the moment between two of them (a fast typist, a loaded machine)
        met a cooked terminal, which echoed it where nothing belongs and turned its
        Enter into a newline (ICRNL) that the next prompt read as Ctrl-J: the cell
        typed ahead was not run.  Raw, a key just waits for the next app.  (The
        simple prompt has no app: it keeps the cooked terminal, and SIGINT.)
        """
        self.session.app.min_redraw_interval = 0.01
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, self._warm_up)
        if self.simple:  # no prompt_toolkit to read Ctrl-C: it interrupts the kernel
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(
                    signal.SIGINT, lambda: self._background(self.link.interrupt())
                )
        with self.terminal_mode("raw"):
            return await self._run()

    def terminal_mode(self, mode: str) -> contextlib.AbstractContextManager[None]:
        """The terminal raw (between apps) or cooked (for a program we run: pager, editor)."""
        pt_input = self.session.input
        return pt_input.raw_mode() if mode == "raw" else pt_input.cooked_mode()

    async def _run(self) -> AskExit | None:
        while True:
            try:
                code = await self.read()
            except KeyboardInterrupt:
                continue
            except EOFError:
                return None
            leaving = leave_words(code)
            if leaving is not None:  # never sent: ipykernel (and R, bash) would end itself
                self.exit_request = leaving
            elif code.strip():
                await self.execute(code)
            if self.exit_request is not None:
                return self.exit_request


def _opt(options: Any, name: str, default: Any) -> Any:
    value = getattr(options, name, None)
    return default if value is None else value


async def _first(*aws: Any) -> Any:
    """The result of whichever awaitable finishes first (an input request wins a tie)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        results = [t.result() for t in done]
        return next((r for r in results if isinstance(r, InputRequest)), results[0])
    finally:
        for task in tasks:
            task.cancel()


async def run_console(args: Namespace) -> ExitStatus:
    """The console: your prompt on the kernel, everyone's cells above it."""
    recording = getattr(args, "record", None)
    if recording:
        check_target(recording)  # refused before connecting, not after
    if simple_prompt_wanted(args):
        args.simple_prompt = True
        args.no_color = True  # a plain line reader: no escape sequences at all
    async with connected(args) as link:
        recorder = Recorder.for_link(recording, link) if recording else None
        try:
            return await _console(link, args, recorder)
        finally:
            if recorder is not None:
                recorder.close()


async def _console(link: KernelTransport, args: Namespace, recorder: Recorder | None) -> ExitStatus:
    mirror = mirror_for_link(link, args, sys.stdout)
    me = Peer(link.session_id, link.username)
    console = Console(link, mirror, me, history_file(link), args, simple=bool(args.simple_prompt))
    mirror.pipeline.listeners.append(console.on_event)
    if recorder is not None:
        recorder.on_error = recorder.on_warning = mirror.notice
        mirror.pipeline.sinks.append(recorder.write)
        mirror.notice(f"recording to {args.record}")
    mirror.writer.push(banner_lines(link, mirror.renderer, whole=bool(getattr(args, "banner", 0))))
    if link.manager is not None:
        also = "" if "://" in link.where else "  (jupyter console --existing works too)"
        mirror.notice(
            f"started a {link.description}; peers join with: "
            f"ipymirror --existing {link.where}{also}"
        )
    else:
        mirror.notice(f"joined the {link.description} of {link.where} as {me.label}")
    async with background(mirror.run(link.iopub_batches()), heartbeat(link, mirror, console.dead)):
        run = asyncio.ensure_future(console.run())
        await until_stopped(run, sigint=False)
        if (
            run.done()
            and not run.cancelled()
            and not await leave(console, link, run.result(), args)
        ):
            link.keep_running()  # others use it: close() leaves it running
    if link.bad_signatures:
        mirror.notice(f"{link.bad_signatures} messages failed the signature check in all")
    try:
        mirror.writer.flush_now()
    finally:
        mirror.close()
    return ExitStatus.OK
