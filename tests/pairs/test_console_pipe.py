"""The console's prompt driven in process: keys in through a pipe, a kernel in memory.

prompt_toolkit's own pattern (its tests/test_cli.py): ``create_pipe_input()``
for the keyboard and ``DummyOutput()`` for the screen, here installed as the
app session, so the real :class:`Console` builds its real ``PromptSession``
(and its busy app) on them.  Its other half is :class:`MemoryKernel`, a
:class:`KernelTransport` that answers like ipykernel: every request and reply
is a real ``jupyter_client`` Session message, signed and serialised by the
"kernel" and deserialised by the "client", with the reply contents ipykernel
sends (``is_complete`` by IPython's own ``check_complete``).  The peer output
goes through the real terminal :class:`Mirror` (pipeline and TerminalWriter).

Every wait is for a state: the prompt's buffer changed, a request reached the
kernel, a frame was written, the prompt was drawn (``Changes`` in conftest).
"""

from __future__ import annotations

import asyncio
import builtins
import io
import re
from argparse import Namespace
from collections.abc import AsyncIterator
from typing import Any

import pytest
from IPython.core.inputtransformer2 import TransformerManager
from jupyter_client.session import Session, new_id
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from recording_support import KERNEL_INFO

from ipymirror.commands._lifecycle import mirror_for_link
from ipymirror.commands.console import Console
from ipymirror.core.events import KERNEL, KernelBack, KernelRestart, Peer
from ipymirror.transports.base import KernelInfo

ENTER, TAB, CTRL_D, LEFT, END = "\r", "\t", "\x04", "\x1b[D", "\x1b[F"


class MemoryKernel(KernelInfo):
    """A KernelTransport whose kernel lives in memory and answers like ipykernel.

    Requests go out as the jupyter_client Session of "you"; the kernel's replies
    and IOPub come from a Session of its own, over serialise → deserialise with
    a shared key (so each is a well-formed, signed message).  The kernel runs a
    cell by broadcasting busy, execute_input, its outputs, the reply, idle.
    """

    where = "memory"
    state_at_connect = "idle"
    bad_signatures = 0
    malformed = 0
    manager = None
    kernel_name = "python3"

    def __init__(self, changes: Any, username: str = "me") -> None:
        self.changes = changes
        self.kernel_info = dict(KERNEL_INFO)
        key = new_id().encode()
        self.client = Session(key=key, username=username)
        self.kernel = Session(key=key, username="kernel")
        self.on_stdin: Any = None
        self.on_bad_message: Any = None
        self.on_malformed: Any = None
        self.on_notice: Any = None
        self.kernel_session = str(self.kernel.session)  # the kernel process's identity
        self.requests: list[dict[str, Any]] = []  # every request, as the kernel got it
        self.count = 0
        self.names = sorted(vars(builtins))  # what the kernel's namespace completes from
        self._iopub: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}

    # -- what the protocol names ------------------------------------------------
    @property
    def session_id(self) -> str:
        return str(self.client.session)

    @property
    def username(self) -> str:
        return str(self.client.username)

    def probe(self) -> str:
        return self._send("kernel_info_request", {})

    def keep_running(self) -> None:
        pass

    def shed_when_behind(self) -> None:
        self.shedding = True

    async def connect(self, timeout: float, *, stdin: bool = True, control: bool = True) -> None:
        pass

    async def close(self, shutdown: bool | None = None) -> None:
        pass

    def is_beating(self) -> bool:
        return True

    async def iopub_batches(self) -> AsyncIterator[list[dict[str, Any]]]:
        while True:
            yield await self._iopub.get()

    async def pending_iopub(self) -> list[dict[str, Any]]:
        return []

    def execute(self, code: str, *, allow_stdin: bool = True, stop_on_error: bool = True) -> str:
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": allow_stdin,
            "stop_on_error": stop_on_error,
        }
        return self._send("execute_request", content)

    def complete(self, code: str, cursor_pos: int) -> str:
        return self._send("complete_request", {"code": code, "cursor_pos": cursor_pos})

    def is_complete(self, code: str) -> str:
        return self._send("is_complete_request", {"code": code})

    def inspect(self, code: str, cursor_pos: int, detail_level: int = 0) -> str:
        content = {"code": code, "cursor_pos": cursor_pos, "detail_level": detail_level}
        return self._send("inspect_request", content)

    def history(self, **kwargs: Any) -> str:
        return self._send("history_request", kwargs)

    def input(self, value: str) -> None:
        self._send("input_reply", {"value": value})

    def expect(self, msg_id: str) -> asyncio.Future[dict[str, Any]]:
        fut = self._waiting.get(msg_id)
        if fut is None:
            fut = self._waiting[msg_id] = asyncio.get_running_loop().create_future()
        return fut

    async def request(self, msg_id: str, timeout: float | None = None) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.expect(msg_id), timeout)
        finally:
            self._waiting.pop(msg_id, None)

    async def interrupt(self) -> None:
        self._send("interrupt_request", {})

    async def restart(self) -> None:
        pass

    # -- the wire ----------------------------------------------------------------
    def _send(self, msg_type: str, content: dict[str, Any]) -> str:
        msg = self.client.msg(msg_type, content)
        asyncio.get_running_loop().call_soon(self._handle, self._wire(self.client, msg))
        return str(msg["header"]["msg_id"])

    def _wire(self, sender: Session, msg: dict[str, Any]) -> dict[str, Any]:
        """``msg`` as the other side deserialises it (signature checked)."""
        receiver = self.kernel if sender is self.client else self.client
        _, frames = receiver.feed_identities(sender.serialize(msg))
        return receiver.deserialize(frames)

    def _reply(self, request: dict[str, Any], msg_type: str, content: dict[str, Any]) -> None:
        reply = self._wire(self.kernel, self.kernel.msg(msg_type, content, parent=request))
        fut = self._waiting.get(reply["parent_header"]["msg_id"])
        if fut is not None and not fut.done():  # as KernelLink: a reply nobody awaits is dropped
            fut.set_result(reply)

    def _broadcast(self, parent: dict[str, Any], *items: tuple[str, dict[str, Any]]) -> None:
        msgs = [self._wire(self.kernel, self.kernel.msg(t, c, parent=parent)) for t, c in items]
        self._iopub.put_nowait(msgs)

    # -- the kernel ----------------------------------------------------------------
    def _handle(self, request: dict[str, Any]) -> None:
        self.requests.append(request)
        self.changes()
        kind, content = request["msg_type"], request["content"]
        if kind == "execute_request":
            self._run_cell(request, [])
        elif kind == "kernel_info_request":
            self._reply(request, "kernel_info_reply", dict(self.kernel_info))
        elif kind == "is_complete_request":
            status, indent = TransformerManager().check_complete(content["code"])  # as ipykernel
            reply = {"status": status, **({"indent": " " * indent} if indent is not None else {})}
            self._reply(request, "is_complete_reply", reply)
        elif kind == "complete_request":
            code, pos = content["code"], content["cursor_pos"]
            token = re.search(r"[A-Za-z_][A-Za-z0-9_]*$", code[:pos])
            text = token.group(0) if token else ""
            matches = [n for n in self.names if text and n.startswith(text)]
            self._reply(
                request,
                "complete_reply",
                {
                    "status": "ok",
                    "matches": matches,
                    "cursor_start": pos - len(text),
                    "cursor_end": pos,
                    "metadata": {},
                },
            )

    def _run_cell(self, request: dict[str, Any], outputs: list[tuple[str, dict[str, Any]]]) -> None:
        self.count += 1
        code = request["content"]["code"]
        self._broadcast(
            request,
            ("status", {"execution_state": "busy"}),
            ("execute_input", {"code": code, "execution_count": self.count}),
            *outputs,
        )
        reply = {"status": "ok", "execution_count": self.count, "user_expressions": {}}
        self._reply(request, "execute_reply", {**reply, "payload": []})
        self._broadcast(request, ("status", {"execution_state": "idle"}))

    def peer_runs(self, username: str, code: str, text: str) -> None:
        """Another client's cell (its own session), printing ``text``."""
        peer = Session(username=username)
        request = peer.msg("execute_request", {"code": code, "silent": False})
        self._run_cell(request, [("stream", {"name": "stdout", "text": text})])

    def executed(self) -> list[str]:
        return [r["content"]["code"] for r in self.requests if r["msg_type"] == "execute_request"]

    def asked(self, kind: str) -> list[dict[str, Any]]:
        return [r["content"] for r in self.requests if r["msg_type"] == f"{kind}_request"]


class RecordingOutput(DummyOutput):
    """DummyOutput that keeps what is written: text (``write``) and raw frames."""

    def __init__(self, changes: Any) -> None:
        self.changes = changes
        self.written: list[str] = []

    def write(self, data: str) -> None:
        self.written.append(data)

    def write_raw(self, data: str) -> None:
        self.written.append(data)
        self.changes()

    def text(self) -> str:
        return "".join(self.written)


class Rig:
    """A Console on a MemoryKernel, its keyboard, its screen, its Mirror's stream."""

    def __init__(self, changes: Any, keys: Any, screen: RecordingOutput) -> None:
        self.changes, self.keys, self.screen = changes, keys, screen
        self.kernel = MemoryKernel(changes)
        self.stream = io.StringIO()
        self.mirror = mirror_for_link(self.kernel, Namespace(), self.stream)
        self.console = Console(
            self.kernel, self.mirror, Peer(self.kernel.session_id, "me"), history=None
        )
        self.mirror.pipeline.listeners.append(self.console.on_event)
        self.buffer = self.console.session.default_buffer
        self.buffer.on_text_changed += changes
        self.console.session.app.after_render += changes
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self) -> None:
        self._tasks.append(asyncio.ensure_future(self.mirror.run(self.kernel.iopub_batches())))
        self.running = asyncio.ensure_future(self.console.run())
        self.running.add_done_callback(self.changes)

    def type(self, text: str) -> None:
        self.keys.send_text(text)

    async def until(self, pred: Any, what: str) -> Any:
        def check() -> Any:
            if self.running.done():
                self.running.result()  # the console failed or ended: say why
                raise AssertionError(f"the console ended while waiting for {what}")
            return pred()

        return await self.changes.until(check, what)

    async def buffer_is(self, text: str) -> None:
        await self.until(lambda: self.buffer.text == text, f"the buffer to read {text!r}")

    async def executed(self, *codes: str) -> None:
        await self.until(lambda: self.kernel.executed() == list(codes), f"execute of {codes}")

    async def prompt(self, count: int) -> None:
        """The prompt is back, drawn and reading keys, for cell ``count``."""
        app = self.console.session.app
        await self.until(
            lambda: (
                app.is_running
                and self.buffer.text == ""
                and self.mirror.presence.next_count() == count
                and f"In [{count}]:" in self.screen.text()
            ),
            f"the prompt In [{count}]",
        )

    async def quit(self) -> None:
        """Ctrl-D on an empty prompt ends the console."""
        self.type(CTRL_D)
        await self.changes.until(self.running.done, "the console to end")
        self.running.result()

    async def stop(self) -> None:
        """Whatever still runs (after a failure), before the pipe closes."""
        for task in (self.running, *self._tasks):
            task.cancel()
        await asyncio.gather(self.running, *self._tasks, return_exceptions=True)


def drive(run: Any, changes: Any, scenario: Any) -> None:
    """Run ``scenario(rig)``: the console reads keys from a pipe and draws on a RecordingOutput."""

    async def main() -> None:
        with create_pipe_input() as keys:
            screen = RecordingOutput(changes)
            with create_app_session(input=keys, output=screen):
                rig = Rig(changes, keys, screen)
                rig.start()
                try:
                    await scenario(rig)
                    await rig.quit()
                finally:
                    await rig.stop()

    run(main())


# ------------------------------------------------------------------------ tests


def test_a_line_and_enter_sends_exactly_that_line(run, changes):
    async def scenario(rig: Rig) -> None:
        await rig.prompt(1)
        rig.type("x = 6 * 7" + ENTER)
        await rig.executed("x = 6 * 7")
        assert rig.kernel.asked("is_complete") == [{"code": "x = 6 * 7"}]
        await rig.prompt(2)  # the kernel's idle ended the busy phase
        rig.type("print(x)" + ENTER)
        await rig.executed("x = 6 * 7", "print(x)")
        await rig.prompt(3)

    drive(run, changes, scenario)


def test_an_incomplete_line_gets_a_continuation_instead_of_running(run, changes):
    async def scenario(rig: Rig) -> None:
        await rig.prompt(1)
        rig.type("for i in range(3):" + ENTER)
        await rig.buffer_is("for i in range(3):\n    ")  # the kernel's indent
        rig.type("print(i)" + ENTER)
        await rig.buffer_is("for i in range(3):\n    print(i)\n    ")
        assert rig.kernel.executed() == []
        assert [c["code"] for c in rig.kernel.asked("is_complete")] == [
            "for i in range(3):",
            "for i in range(3):\n    print(i)",
        ]
        await rig.until(lambda: "...:" in rig.screen.text(), "the continuation prompt")
        rig.type(ENTER)  # a blank last line: IPython says complete
        await rig.executed("for i in range(3):\n    print(i)\n    ")
        await rig.prompt(2)

    drive(run, changes, scenario)


def test_tab_inserts_the_kernels_completion(run, changes):
    async def scenario(rig: Rig) -> None:
        await rig.prompt(1)
        rig.type("pri" + TAB)
        await rig.buffer_is("print")
        assert rig.kernel.asked("complete") == [{"code": "pri", "cursor_pos": 3}]
        rig.type("(1)" + ENTER)
        await rig.executed("print(1)")
        await rig.prompt(2)

    drive(run, changes, scenario)


def test_enter_on_a_chosen_completion_takes_it_and_runs_nothing(run, changes):
    async def scenario(rig: Rig) -> None:
        await rig.prompt(1)
        rig.type("pr" + TAB)  # two matches, nothing in common to add: a menu
        await rig.until(lambda: rig.buffer.complete_state is not None, "the completion menu")
        assert rig.buffer.text == "pr"
        rig.type(TAB)  # the first of them
        await rig.buffer_is("print")
        rig.type(ENTER)
        await rig.until(lambda: rig.buffer.complete_state is None, "the menu to close")
        assert rig.buffer.text == "print" and rig.kernel.executed() == []
        rig.type("()" + ENTER)
        await rig.executed("print()")
        await rig.prompt(2)

    drive(run, changes, scenario)


def test_peer_output_above_a_half_typed_line_leaves_it_alone(run, changes):
    async def scenario(rig: Rig) -> None:
        await rig.prompt(1)
        rig.type("x = 12")
        await rig.buffer_is("x = 12")
        rig.type(LEFT + LEFT)  # the cursor mid-line
        await rig.until(lambda: rig.buffer.cursor_position == 4, "the cursor to move")
        rig.kernel.peer_runs("bob", "print('from bob')", "from bob\n")
        shown = await rig.until(
            lambda: (t := rig.screen.text()).find("│ from bob") >= 0 and t, "bob's output"
        )
        after = shown[shown.index("│ from bob") :]
        await rig.until(
            lambda: "x = 12" in rig.screen.text()[len(shown) - len(after) :],
            "the prompt to be drawn again under bob's output",
        )
        assert (rig.buffer.text, rig.buffer.cursor_position) == ("x = 12", 4)
        assert rig.kernel.executed() == [] and rig.stream.getvalue() == ""
        rig.type("3")  # typing goes on where the cursor was
        await rig.buffer_is("x = 312")
        rig.type(END + ENTER)  # (Enter mid-line would start a new line)
        await rig.executed("x = 312")
        await rig.prompt(3)  # bob's cell was 1 on the shared kernel, this one 2

    drive(run, changes, scenario)


def test_a_cell_typed_while_the_kernel_restarts_waits_until_it_is_back(run, changes):
    """A Jupyter Server says it restarts the kernel that died: the new kernel's shell
    may answer before its IOPub reaches us, and a cell run then would show nothing.
    So the cell waits for the kernel to be back (the heartbeat's KernelBack)."""

    async def scenario(rig: Rig) -> None:
        await rig.prompt(1)
        rig.mirror.feed_events([KernelRestart(KERNEL, "", restart=True, reason="died")])
        rig.type("40 + 2" + ENTER)
        await rig.until(
            lambda: "your cell runs once it is back" in rig.screen.text(), "the cell held"
        )
        assert rig.kernel.asked("is_complete") == [{"code": "40 + 2"}]
        assert rig.kernel.executed() == []
        rig.mirror.feed_events([KernelBack(KERNEL, "", "the-new-kernel")])
        await rig.executed("40 + 2")
        await rig.prompt(2)  # a new kernel counts from 1

    drive(run, changes, scenario)


class Screen(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("stream", "args", "sheds"),
    [
        (Screen, Namespace(), True),  # a screen far behind: fewer lines, counted
        (io.StringIO, Namespace(), False),  # a pipe blocks and loses nothing
        (Screen, Namespace(record="s.ipym"), False),  # a recording keeps every message
    ],
)
def test_only_a_screen_that_records_nothing_may_shed(changes, stream, args, sheds):
    kernel = MemoryKernel(changes)
    mirror_for_link(kernel, args, stream())
    assert getattr(kernel, "shedding", False) is sheds
