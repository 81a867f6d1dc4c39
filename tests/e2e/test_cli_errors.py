"""The command line's failures: one clear line on stderr, a specific exit status.

Each case runs ``python -m ipymirror`` as a subprocess (no terminal needed) in
the isolated Jupyter dirs of the ``jupyter_dirs`` fixture.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from terminal import REPO_ROOT

from ipymirror import __version__
from ipymirror.errors import ExitStatus


def run_cli(
    *args: str, timeout: float = 60, stdout=subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "ipymirror", *args],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": path},
        check=False,
    )


def one_error_line(proc: subprocess.CompletedProcess[str], status: ExitStatus) -> str:
    """Assert the failure shape; return the message after ``ipymirror: error: ``."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == status, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ipymirror: error: "), proc.stderr
    return lines[0].removeprefix("ipymirror: error: ")


def closed_ports(n: int) -> list[int]:
    """``n`` TCP ports on 127.0.0.1 that nothing listens on (bound, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def test_missing_connection_file():
    msg = one_error_line(run_cli("--existing", "/nonexistent.json"), ExitStatus.CONNECTION_FILE)
    assert "/nonexistent.json" in msg


def test_malformed_connection_file(tmp_path: Path):
    bad = tmp_path / "kernel-bad.json"
    bad.write_text('{"shell_port": 1, "key": ')
    msg = one_error_line(run_cli("--existing", str(bad)), ExitStatus.CONNECTION_FILE)
    assert str(bad) in msg


def test_wrong_field_types_in_connection_file(tmp_path: Path):
    bad = tmp_path / "kernel-types.json"
    bad.write_text(json.dumps({"shell_port": "not a port", "ip": 7, "key": 3}))
    msg = one_error_line(run_cli("--existing", str(bad)), ExitStatus.CONNECTION_FILE)
    assert str(bad) in msg


def test_unreachable_kernel_times_out_naming_the_file(tmp_path: Path):
    shell, iopub, stdin, control, hb = closed_ports(5)
    info = {
        "shell_port": shell,
        "iopub_port": iopub,
        "stdin_port": stdin,
        "control_port": control,
        "hb_port": hb,
        "ip": "127.0.0.1",
        "key": "00000000-0000-0000-0000-000000000000",
        "transport": "tcp",
        "signature_scheme": "hmac-sha256",
        "kernel_name": "python3",
    }
    path = tmp_path / "kernel-gone.json"
    path.write_text(json.dumps(info))
    proc = run_cli("--existing", str(path), "--timeout", "1", timeout=30)
    msg = one_error_line(proc, ExitStatus.UNREACHABLE)
    assert str(path) in msg


def test_unknown_kernelspec():
    msg = one_error_line(run_cli("--kernel", "no-such-kernel"), ExitStatus.KERNELSPEC)
    assert "no-such-kernel" in msg


def test_existing_with_empty_runtime_dir(jupyter_dirs):
    assert not list(jupyter_dirs["runtime"].iterdir())
    msg = one_error_line(run_cli("--existing"), ExitStatus.CONNECTION_FILE)
    assert str(jupyter_dirs["runtime"]) in msg


@pytest.mark.parametrize("args", [["--timeout", "-1"], ["--timeout", "soon"], ["--bogus"]])
def test_usage_errors(args):
    proc = run_cli(*args)
    assert proc.returncode == ExitStatus.USAGE, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    errors = [line for line in lines if line.startswith("ipymirror: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    assert lines[0].startswith("usage: ipymirror")


@pytest.mark.parametrize(
    ("args", "usage"),
    [
        (["watch", "--timeout", "0"], "usage: ipymirror watch"),
        (["watch", "--idle-limit", "1"], "usage: ipymirror watch"),  # an option of replay's
        (["export", "x.ipym", "--to", "html", "--speed", "2"], "usage: ipymirror export"),
    ],
)
def test_a_subcommands_usage_error_is_its_own(args, usage):
    proc = run_cli(*args)
    assert proc.returncode == ExitStatus.USAGE, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(usage), proc.stderr
    assert lines[-1].startswith(f"ipymirror {args[0]}: error:"), proc.stderr


def test_help():
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    assert "--existing" in proc.stdout
    assert "watch" in proc.stdout
    assert proc.stderr == ""


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"ipymirror {__version__}"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    missing = str(tmp_path / "kernel-missing.json")
    quiet = run_cli("--existing", missing)
    loud = run_cli("--existing", missing, "--debug")
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and "MirrorError" in loud.stderr
    assert loud.returncode == quiet.returncode == ExitStatus.CONNECTION_FILE


def test_missing_bash_kernelspec_says_how_to_install_it(jupyter_dirs):
    # the sandbox has no bash kernelspec (conftest installs it only for bash tests)
    msg = one_error_line(run_cli("--kernel", "bash"), ExitStatus.KERNELSPEC)
    assert "pip install bash_kernel && python -m bash_kernel.install" in msg
    assert not list(jupyter_dirs["runtime"].glob("*.log"))  # nothing left behind


@pytest.mark.parametrize("command", ["record", "share"])
def test_a_full_output_is_one_line_and_the_recording_is_kept(command, kernel, tmp_path: Path):
    """stdout on a full disk: one line, exit 1, no traceback from a task left behind."""
    args = [command, "--existing", kernel.connection_file]
    if command == "record":
        args.append(str(tmp_path / "r.ipym"))
    with open("/dev/full", "w") as full:
        proc = run_cli(*args, stdout=full)
    msg = one_error_line(proc, ExitStatus.ERROR)
    assert msg == "cannot write the output: No space left on device"
    if command == "record":  # what it had written stays a readable recording
        assert run_cli("replay", "--no-wait", str(tmp_path / "r.ipym")).returncode == 0
