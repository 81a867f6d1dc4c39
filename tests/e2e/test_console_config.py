"""Settings the Jupyter way, and the command line around them.

In-process through ``cli.parse`` (the options object commands get) and as
``python -m ipymirror`` subprocesses for what a user types.  Config files go
in the isolated JUPYTER_CONFIG_DIR of the autouse ``jupyter_dirs`` fixture.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from recording_support import write_recording
from test_cli_errors import run_cli

from ipymirror.core.events import Peer
from ipymirror.core.render import _LIGHT_PALETTE, _PALETTE, Renderer
from ipymirror.errors import ExitStatus
from ipymirror.options import parse


def usage_error(proc, prog: str = "ipymirror") -> str:
    """One error line after the (sub)command's own usage, status 2, no traceback."""
    assert proc.returncode == ExitStatus.USAGE, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"usage: {prog}"), proc.stderr
    assert lines[-1].startswith(f"{prog}: error: "), proc.stderr
    return lines[-1]


# ---------------------------------------------------------------- precedence


def test_defaults(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("IPYMIRROR_NAME", raising=False)
    o = parse([])
    assert (o.name, o.timeout, o.kernel, o.colors, o.no_color) == (
        None,
        10.0,
        "python3",
        "Linux",
        False,
    )
    assert (o.confirm_exit, o.editing_mode, o.simple_prompt, o.banner) == (
        True,
        "emacs",
        None,
        False,
    )


def test_config_file_py_then_env_then_command_line(jupyter_dirs, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("IPYMIRROR_NAME", raising=False)
    (jupyter_dirs["config"] / "jupyter_mirror_config.py").write_text(
        "c.Mirror.name = 'fromfile'\n"
        "c.Mirror.timeout = 3.5\n"
        "c.MirrorConsole.editing_mode = 'vi'\n"
        "c.MirrorConsole.confirm_exit = False\n"
    )
    o = parse([])
    assert (o.name, o.timeout, o.editing_mode, o.confirm_exit) == ("fromfile", 3.5, "vi", False)
    assert o.settings.loaded_files and o.settings.loaded_files[0].endswith(
        "jupyter_mirror_config.py"
    )
    monkeypatch.setenv("IPYMIRROR_NAME", "fromenv")
    assert parse([]).name == "fromenv"
    assert parse(["--Mirror.name=fromtrait"]).name == "fromtrait"
    assert parse(["--name", "fromoption"]).name == "fromoption"
    assert parse(["--emacs"]).editing_mode == "emacs"
    assert parse(["--confirm-exit"]).confirm_exit is True
    assert parse(["--MirrorConsole.confirm_exit", "True"]).confirm_exit is True
    off = parse(
        ["--MirrorConsole.auto_suggest=False", "--MirrorConsole.highlight_matching_brackets=0"]
    )
    assert (off.auto_suggest, off.highlight_matching_brackets) == (False, False)


def test_config_file_json(jupyter_dirs):
    (jupyter_dirs["config"] / "jupyter_mirror_config.json").write_text(
        json.dumps({"Mirror": {"kernel": "bash", "colors": "LightBG"}})
    )
    o = parse([])
    assert (o.kernel, o.colors) == ("bash", "LightBG")


def test_images_come_from_the_config_file_unless_the_command_line_says(jupyter_dirs):
    assert (parse([]).images, parse([]).image_rows) == ("auto", 20)
    (jupyter_dirs["config"] / "jupyter_mirror_config.py").write_text(
        "c.Mirror.images = 'Blocks'\nc.Mirror.image_rows = 8\n"
    )
    o = parse(["watch"])
    assert (o.images, o.image_rows) == ("blocks", 8)
    o = parse(["--images", "off", "watch", "--image-rows", "3"])
    assert (o.images, o.image_rows) == ("off", 3)
    assert parse(["--Mirror.images=sixel"]).images == "sixel"


def test_no_color_env(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert parse([]).no_color is True
    assert parse(["--Mirror.colors=Linux"]).colors == "Linux"  # the command line wins


def test_options_before_the_subcommand_are_kept(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    o = parse(["--no-color", "--name", "bob", "--timeout", "3", "watch", "--existing", "k.json"])
    assert (o.command, o.no_color, o.name, o.timeout, o.existing) == (
        "watch",
        True,
        "bob",
        3.0,
        "k.json",
    )
    o = parse(["--name", "bob", "record", "out.ipym"])
    assert (o.command, o.name, o.out) == ("record", "bob", "out.ipym")
    o = parse(["watch", "--name", "carol", "--colors", "lightbg"])  # after it, as before
    assert (o.name, o.colors) == ("carol", "LightBG")
    assert parse(["-f", "k.json"]).existing == "k.json"


# ---------------------------------------------------------------- the CLI


def test_bad_config_file_is_one_usage_line(jupyter_dirs):
    (jupyter_dirs["config"] / "jupyter_mirror_config.py").write_text("c.Mirror.timeout = 'soon'\n")
    msg = usage_error(run_cli("--existing", "nope.json"))
    assert "timeout" in msg


@pytest.mark.parametrize(
    "args",
    [
        ["--Mirror.timeout=nan"],
        ["--Mirror.colors=pink"],
        ["--colors", "pink"],
        ["--timeout", "inf"],
        ["--timeout", "nan"],
        ["--log-level", "LOUD"],
        ["--Mirror.images=png"],
        ["--Mirror.image_rows=0"],
    ],
)
def test_bad_values_are_usage_errors(args):
    usage_error(run_cli(*args))


@pytest.mark.parametrize(
    ("args", "prog"),
    [
        (["replay", "x.ipym", "--speed", "nan"], "ipymirror replay"),
        (["replay", "x.ipym", "--speed", "inf"], "ipymirror replay"),
        (["replay", "x.ipym", "--speed", "-2"], "ipymirror replay"),
        (["replay", "x.ipym", "--idle-limit", "nan"], "ipymirror replay"),
        (["replay", "x.ipym", "--idle-limit", "-1"], "ipymirror replay"),
        (["watch", "--timeout", "nan"], "ipymirror watch"),
        (["record", "o.ipym", "--timeout=-inf"], "ipymirror record"),
        (["share", "--timeout", "1e999"], "ipymirror share"),
    ],
)
def test_numbers_are_validated(args, prog):
    msg = usage_error(run_cli(*args), prog)
    assert re.search(r"argument --[a-z-]+: must be (a finite number|> 0)", msg), msg


def test_non_utf8_argument_is_a_usage_error():
    import os
    import subprocess
    import sys

    from terminal import REPO_ROOT

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable.encode(), b"-m", b"ipymirror", b"watch", b"--existing", b"k\xff.json"],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == ExitStatus.USAGE, stderr
    assert stderr.splitlines()[-1].startswith("ipymirror watch: error: argument is not valid UTF-8")


@pytest.mark.parametrize("command", ["watch", "record", "replay", "export", "share"])
def test_every_subcommand_help_has_examples(command):
    proc = run_cli(command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: ipymirror {command}")
    assert (
        "examples:" in proc.stdout and f"ipymirror {command}" in proc.stdout.split("examples:")[1]
    )
    assert "Exit status:" in proc.stdout


def test_record_help_says_what_happens_when_out_exists():
    out = run_cli("record", "--help").stdout
    assert "existing non-empty OUT is refused with exit status 6" in " ".join(out.split())


def test_export_to_an_unwritable_path_is_exit_status_1(tmp_path: Path):
    """As export's --help says: one error line, status 1 (not 6, which is the input's)."""
    lines = (
        (Path(__file__).parent.parent / "data" / "ipykernel_iopub.jsonl").read_text().splitlines()
    )
    msgs = [json.loads(line) for line in lines]
    rec = write_recording(tmp_path / "s.ipym", [(i / 100, m) for i, m in enumerate(msgs)])
    proc = run_cli("export", str(rec), "--to", "ipynb", "-o", str(tmp_path / "no" / "dir.ipynb"))
    assert proc.returncode == ExitStatus.ERROR == 1, proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and "cannot write" in proc.stderr
    assert "exit status 1" in " ".join(run_cli("export", "--help").stdout.split())


def test_help_all_lists_every_trait():
    proc = run_cli("--help-all")
    assert proc.returncode == 0, proc.stderr
    for trait in (
        "--Mirror.name",
        "--Mirror.colors",
        "--Mirror.timeout",
        "--MirrorConsole.confirm_exit",
        "--MirrorConsole.editing_mode",
        "--MirrorConsole.simple_prompt",
        "--MirrorConsole.pager",
    ):
        assert trait in proc.stdout


def test_generate_config_writes_a_commented_file_that_loads(jupyter_dirs):
    proc = run_cli("--generate-config")
    assert proc.returncode == 0, proc.stderr
    path = jupyter_dirs["config"] / "jupyter_mirror_config.py"
    text = path.read_text()
    assert "# c.MirrorConsole.confirm_exit = True" in text and "# c.Mirror.name = ''" in text
    assert parse([]).timeout == 10.0  # all commented out: loads, changes nothing
    again = run_cli("--generate-config")
    assert again.returncode == ExitStatus.USAGE and "-y" in again.stderr
    assert run_cli("--generate-config", "-y").returncode == 0


# ---------------------------------------------------------------- colours


def _luminance(index: int) -> float:
    """Relative luminance of xterm-256 colour ``index`` (16..255)."""
    if index >= 232:
        r = g = b = 8 + 10 * (index - 232)
    else:
        index -= 16
        steps = (0, 95, 135, 175, 215, 255)
        r, g, b = steps[index // 36], steps[index // 6 % 6], steps[index % 6]

    def lin(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)


@pytest.mark.parametrize("sgr", _LIGHT_PALETTE)
def test_light_palette_reads_on_white(sgr):
    index = int(sgr.split(";")[-1])
    contrast = (1.0 + 0.05) / (_luminance(index) + 0.05)
    assert contrast >= 4.5, (sgr, contrast)


def test_light_scheme_uses_the_light_palette():
    peer = Peer("abcd-1234", "bob")
    dark, light = Renderer(), Renderer(light=True)
    assert dark.peer_sgr(peer) in {f"\x1b[{c}m" for c in _PALETTE}
    assert light.peer_sgr(peer) in {f"\x1b[{c}m" for c in _LIGHT_PALETTE}
    assert re.search(r"bob·abcd", light.header(peer, 3))
