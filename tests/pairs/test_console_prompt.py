"""The console driven in-process: prompt_toolkit's pipe input and DummyOutput,
a fake kernel link that answers like ipykernel (captured reply shapes).

Each test types keys, waits for the link to receive what the console sends
(event based: an asyncio.Event per request), and asserts on what was sent or
shown.  No terminal, no kernel: fast, and exact about payload handling.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any, ClassVar

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.key_binding.vi_state import InputMode
from prompt_toolkit.output import DummyOutput

from ipymirror.commands.console import Console
from ipymirror.commands.leaving import leave
from ipymirror.core.events import ExecuteInput, Peer, Status
from ipymirror.core.render import Renderer
from ipymirror.core.replies import AskExit
from ipymirror.terminal.mirror import Mirror
from ipymirror.terminal.writer import TerminalWriter

ME = Peer("me-session", "me")


class FakeLink:
    """Answers execute / complete / is_complete the way ipykernel does."""

    language = "python"
    kernel_name = "python3"
    where = "/run/kernel-1.json"
    kernel_info: ClassVar[dict[str, str]] = {"banner": "Python 3.11 (fake)\nIPython 9"}

    def __init__(self, manager: Any = None, complete_delay: float = 0.0) -> None:
        self.manager = manager
        self.on_stdin = None
        self.executed: list[str] = []
        self.completions: list[tuple[str, int]] = []
        self.payloads: dict[str, list[dict[str, Any]]] = {}
        self.sent = asyncio.Event()
        self.console: Console | None = None
        self.complete_delay = complete_delay
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._n = 0

    def _id(self) -> str:
        self._n += 1
        return f"msg-{self._n}"

    def _future(self, msg_id: str) -> asyncio.Future[dict[str, Any]]:
        return self._replies.setdefault(msg_id, asyncio.get_running_loop().create_future())

    def execute(self, code: str, *, allow_stdin: bool = True, stop_on_error: bool = True) -> str:
        msg_id = self._id()
        self.executed.append(code)
        payload = self.payloads.get(code.strip(), [])
        self._future(msg_id).set_result(
            {"content": {"status": "ok", "execution_count": len(self.executed), "payload": payload}}
        )
        loop = asyncio.get_running_loop()
        assert self.console is not None
        status = Status(ME, msg_id, "idle", "execute_request")
        loop.call_soon(self.console.on_event, status)
        loop.call_soon(self.sent.set)
        return msg_id

    def is_complete(self, code: str) -> str:
        msg_id = self._id()
        lines = code.split("\n")  # like ipykernel: a block ends with a blank line
        incomplete = any(x.rstrip().endswith(":") for x in lines) and bool(lines[-1].strip())
        content = (
            {"status": "incomplete", "indent": "    "} if incomplete else {"status": "complete"}
        )
        self._future(msg_id).set_result({"content": content})
        return msg_id

    def complete(self, code: str, cursor_pos: int) -> str:
        msg_id = self._id()
        self.completions.append((code, cursor_pos))
        word_start = cursor_pos - len(code[:cursor_pos].split(".")[-1])
        content = {
            "status": "ok",
            "matches": ["OrderedDict"],
            "cursor_start": word_start,
            "cursor_end": cursor_pos,
            "metadata": {
                "_jupyter_types_experimental": [
                    {"start": word_start, "end": cursor_pos, "text": "OrderedDict", "type": "class"}
                ]
            },
        }
        fut = self._future(msg_id)
        asyncio.get_running_loop().call_later(
            self.complete_delay, lambda: fut.done() or fut.set_result({"content": content})
        )
        return msg_id

    async def request(self, msg_id: str, timeout: float | None = None) -> dict[str, Any]:
        return await asyncio.wait_for(self._future(msg_id), timeout)

    async def interrupt(self) -> None:
        pass

    def input(self, value: str) -> None:
        pass


def make_console(link: FakeLink, pipe: Any, **options: Any) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    mirror = Mirror(Renderer(color=False, language="python"), TerminalWriter(out), me=ME.session)
    opts = type("Opts", (), {"editing_mode": "emacs", "confirm_exit": True, "pager": "", **options})
    console = Console(link, mirror, ME, None, opts(), pt_input=pipe, pt_output=DummyOutput())
    mirror.pipeline.listeners.append(console.on_event)
    link.console = console
    return console, out


async def executed(link: FakeLink, n: int) -> None:
    """Until the link has received ``n`` execute requests in all, and the prompt is back."""
    while len(link.executed) < n:
        link.sent.clear()
        await asyncio.wait_for(link.sent.wait(), 10)
    assert link.console is not None
    await until(lambda: prompting(link.console))


def prompting(console: Console) -> bool:
    return console.session.app.is_running and not console._busy_app.is_running


async def until(check: Any, timeout: float = 10) -> None:
    """Poll ``check`` once per loop turn (prompt_toolkit has no event for these states)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


@pytest.fixture
def pipe():
    with create_pipe_input() as p:
        yield p


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_set_next_input_lands_in_the_next_prompt(pipe):
    async def main() -> None:
        link = FakeLink()
        link.payloads["%load snip.py"] = [
            {
                "source": "set_next_input",
                "text": "# %load snip.py\nprint('loaded')\n",
                "replace": False,
            }
        ]
        console, _ = make_console(link, pipe)
        task = asyncio.ensure_future(console.run())
        pipe.send_text("%load snip.py\r")
        await executed(link, 1)
        pipe.send_text("\r")  # Enter on the prefilled prompt runs the loaded text as it is
        await executed(link, 2)
        assert link.executed[1] == "# %load snip.py\nprint('loaded')\n"
        pipe.send_text("\x04")
        assert await task is None

    run(main())


def test_short_page_is_inline_sanitised_with_colours_off(pipe):
    async def main() -> None:
        link = FakeLink()
        page = "\x1b[31mSignature:\x1b[39m len(obj, /)\x1b]52;c;aGk=\x07\nType: builtin"
        link.payloads["len?"] = [{"source": "page", "data": {"text/plain": page}, "start": 0}]
        console, out = make_console(link, pipe)
        task = asyncio.ensure_future(console.run())
        pipe.send_text("len?\r")
        await executed(link, 1)
        pipe.send_text("\x04")
        await task
        text = out.getvalue()
        assert "Signature: len(obj, /)\nType: builtin\n" in text
        assert "\x1b" not in text and "aGk" not in text

    run(main())


@pytest.mark.parametrize("keep", [False, True])
def test_ask_exit_payload_leaves_the_console(pipe, keep):
    async def main() -> None:
        link = FakeLink()
        code = "get_ipython().ask_exit()"
        link.payloads[code] = [{"source": "ask_exit", "keepkernel": keep}]
        console, _ = make_console(link, pipe)
        task = asyncio.ensure_future(console.run())
        pipe.send_text(code + "\r")
        assert await task == AskExit(keep)
        assert link.executed == [code]

    run(main())


@pytest.mark.parametrize(
    ("typed", "keep"),
    [("exit", False), ("exit()", False), ("quit", False), (" quit() ", False),
     ("%exit", False), ("exit(keep_kernel=True)", True), ("quit -k", True)],
)  # fmt: skip
def test_exit_and_quit_are_never_sent(pipe, typed, keep):
    """ipykernel stops itself on exit(): sent, it would end the kernel for everyone."""

    async def main() -> None:
        link = FakeLink()
        console, _ = make_console(link, pipe)
        task = asyncio.ensure_future(console.run())
        pipe.send_text(typed + "\r")
        assert await task == AskExit(keep)
        assert link.executed == []

    run(main())


def test_first_tab_waits_for_a_slow_kernel_and_shows_types(pipe):
    """A first completion that takes longer than the old 2 s timeout still completes."""

    async def main() -> None:
        link = FakeLink(complete_delay=2.5)
        console, _ = make_console(link, pipe)
        task = asyncio.ensure_future(console.run())
        await until(lambda: prompting(console))
        pipe.send_text("collections.Ord\t")
        buf = console.session.default_buffer
        await until(lambda: buf.text == "collections.OrderedDict")
        assert ("collections.Ord", 15) in link.completions
        pipe.send_text("\x15\x04")  # Ctrl-U, Ctrl-D
        await task

    run(main())


def test_completion_menu_carries_the_type():
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    async def main() -> list[Any]:
        link = FakeLink()
        with create_pipe_input() as pipe:
            console, _ = make_console(link, pipe)
            completer = console.session.completer
            assert completer is not None
            doc = Document("collections.Ord")
            return [c async for c in completer.get_completions_async(doc, CompleteEvent())]

    (completion,) = run(main())
    assert completion.text == "OrderedDict" and completion.start_position == -3
    assert completion.display_meta_text == "class"


def test_up_searches_history_by_prefix(pipe):
    async def main() -> None:
        link = FakeLink()
        console, _ = make_console(link, pipe)
        task = asyncio.ensure_future(console.run())
        await until(lambda: prompting(console))
        for i, line in enumerate(["grid = 1", "x = 2", "gray = 3", "y = 4"], 1):
            pipe.send_text(line + "\r")
            await executed(link, i)
        pipe.send_text("gr\x1b[A\r")  # gr, Up: the last line starting "gr"
        await executed(link, 5)
        pipe.send_text("gr\x1b[A\x1b[A\x1b[A\r")  # Up, Up: older lines starting "gr"
        await executed(link, 6)
        pipe.send_text("\x12x =")  # Ctrl-R "x =": reverse search
        layout = console.session.app.layout
        await until(lambda: layout.current_buffer.name == "SEARCH_BUFFER")
        pipe.send_text("\r")  # Enter accepts the line found
        await until(lambda: layout.current_buffer.text == "x = 2")
        pipe.send_text("\r")  # and Enter runs it
        await executed(link, 7)
        pipe.send_text("\x04")
        await task
        assert link.executed[4:] == ["gray = 3", "grid = 1", "x = 2"]

    run(main())


def test_colon_auto_indents_python(pipe):
    async def main() -> None:
        link = FakeLink()
        console, _ = make_console(link, pipe)
        task = asyncio.ensure_future(console.run())
        await until(lambda: prompting(console))
        pipe.send_text("for i in x:\r")
        buf = console.session.default_buffer
        await until(lambda: buf.text == "for i in x:\n    ")
        pipe.send_text("pass\r")
        await until(lambda: buf.text == "for i in x:\n    pass\n    ")
        pipe.send_text("\r")  # a blank line ends the block
        await executed(link, 1)
        assert link.executed == ["for i in x:\n    pass\n    "]
        pipe.send_text("\x04")
        await task

    run(main())


def test_vi_mode(pipe):
    async def main() -> None:
        link = FakeLink()
        console, _ = make_console(link, pipe, editing_mode="vi")
        task = asyncio.ensure_future(console.run())
        await until(lambda: prompting(console))
        app = console.session.app
        # A lone Escape is Escape at once (no terminal to wait for, and no Alt-Enter
        # to tell apart from Escape then Enter).
        app.ttimeoutlen = app.timeoutlen = 0.01
        pipe.send_text("abc = 1\x1b")
        await until(lambda: app.vi_state.input_mode == InputMode.NAVIGATION)
        pipe.send_text("0xxxixyz\x1b")  # to the start, delete 3, insert
        buf = console.session.default_buffer
        await until(
            lambda: buf.text == "xyz = 1" and app.vi_state.input_mode == InputMode.NAVIGATION
        )
        pipe.send_text("\r")
        await executed(link, 1)
        pipe.send_text("\x04")
        await task
        assert link.executed == ["xyz = 1"]

    run(main())


class Manager:
    pass


class Asker:
    """Stands in for the console in ``leave``: records the question, gives an answer."""

    def __init__(self, answer: str | None, others: list[Peer]) -> None:
        self.answer = answer
        self.questions: list[str] = []
        out = io.StringIO()
        self.out = out
        self.mirror = Mirror(Renderer(color=False), TerminalWriter(out), me=ME.session)
        for p in others:  # present: each ran a cell, as the kernel would broadcast it
            self.mirror.presence.feed(ExecuteInput(p, f"cell-{p.session}", "1", 1))

    async def ask(self, prompt: str, *, password: bool = False) -> str:
        self.questions.append(prompt)
        if self.answer is None:
            raise EOFError
        return self.answer


BOB = Peer("b0b0b0b0-1111", "bob")


@pytest.mark.parametrize(
    ("manager", "others", "request_", "answer", "confirm", "shutdown", "asked"),
    [
        (None, [BOB], None, "y", True, False, False),  # joined: never, and never asked
        (None, [BOB], AskExit(False), "y", True, False, False),
        (Manager(), [], None, "", True, True, False),  # alone: shut down as usual
        (Manager(), [BOB], None, "", True, False, True),  # default answer keeps it
        (Manager(), [BOB], None, None, True, False, True),  # EOF keeps it
        (Manager(), [BOB], None, "y", True, True, True),
        (Manager(), [BOB], AskExit(False), "yes", True, True, True),
        (Manager(), [BOB], AskExit(True), "y", True, False, False),  # exit(keep_kernel=True)
        (Manager(), [BOB], None, "", False, True, False),  # --no-confirm-exit
    ],
)
def test_leaving(manager, others, request_, answer, confirm, shutdown, asked):
    console = Asker(answer, others)
    link = FakeLink(manager=manager)
    options = type("O", (), {"confirm_exit": confirm})()
    assert asyncio.run(leave(console, link, request_, options)) is shutdown
    assert bool(console.questions) is asked
    if asked:
        assert "bob·b0b0 would lose it" in console.questions[0]
    if not shutdown:
        assert "ipymirror --existing /run/kernel-1.json" in console.out.getvalue()


def test_ctrl_j_and_alt_enter_open_a_new_line(pipe):
    async def main() -> None:
        link = FakeLink()
        console, _ = make_console(link, pipe)
        task = asyncio.ensure_future(console.run())
        await until(lambda: prompting(console))
        buf = console.session.default_buffer
        pipe.send_text("a = 1\n")  # Ctrl-J: a new line, even though the cell is complete
        await until(lambda: buf.text == "a = 1\n")
        pipe.send_text("if a:\x1b\r")  # Alt-Enter, after ":" indented
        await until(lambda: buf.text == "a = 1\nif a:\n    ")
        pipe.send_text("b = 2\r")
        await until(lambda: buf.text.endswith("b = 2\n    "))
        pipe.send_text("\r")
        await executed(link, 1)
        assert link.executed == ["a = 1\nif a:\n    b = 2\n    "]
        pipe.send_text("\x04")
        await task

    run(main())


def test_suggestions_and_bracket_matching_can_be_turned_off(pipe):
    async def main() -> None:
        on, _ = make_console(FakeLink(), pipe)
        off, _ = make_console(
            FakeLink(), pipe, auto_suggest=False, highlight_matching_brackets=False
        )
        assert on.session.auto_suggest is not None and on.session.input_processors
        assert off.session.auto_suggest is None and not off.session.input_processors

    run(main())
