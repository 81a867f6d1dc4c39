"""A kernel ipymirror starts that dies at start: told at once, and a lost port race retried.

jupyter_client picks free ports and the kernel binds them only later; another
process can take one in between (seen under two CI runs on one machine).  The
kernels here are real processes in the sandbox's kernelspecs: one that really
loses that race on its first start, one that exits before it answers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from terminal import ENTER, at_empty_prompt
from test_cli_errors import one_error_line, run_cli
from test_console import env_for

from ipymirror.errors import ExitStatus

SUPPORT = Path(__file__).resolve().parents[1] / "support"


def _kernelspec(data: Path, name: str, argv: list[str]) -> None:
    spec = data / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": name, "language": "python"})
    )


def test_a_kernel_that_loses_the_port_race_is_started_again_on_new_ports(
    jupyter_dirs, terminal, ipymirror_argv, tmp_path: Path
):
    marker = tmp_path / "first-start-done"
    launcher = str(SUPPORT / "clashing_kernel.py")
    argv = [sys.executable, launcher, str(marker), "-f", "{connection_file}"]
    _kernelspec(jupyter_dirs["data"], "clashing", argv)
    term = terminal(ipymirror_argv("--kernel", "clashing"), env=env_for())
    term.wait_for(at_empty_prompt, timeout=60)
    term.send("print(6 * 7)" + ENTER)
    term.wait_for("42")
    assert marker.exists()  # the first start did clash...
    logs = [p.read_text() for p in jupyter_dirs["runtime"].glob("*.log")]
    assert any("Address already in use" in log for log in logs), logs  # ...for real
    term.wait_for(at_empty_prompt)  # a Ctrl-D typed before the next prompt is not read as one
    term.ctrl("d")
    assert term.wait_exit(timeout=20) == 0


def test_a_kernel_that_dies_at_start_is_told_at_once_with_its_last_words(jupyter_dirs):
    code = "import sys; print('no licence for this kernel', file=sys.stderr); sys.exit(3)"
    _kernelspec(jupyter_dirs["data"], "dying", [sys.executable, "-c", code, "{connection_file}"])
    # --timeout 600: without noticing the death, the wait outlasts run_cli's 60 s.
    msg = one_error_line(run_cli("--kernel", "dying", "--timeout", "600"), ExitStatus.KERNELSPEC)
    assert msg.startswith("kernel 'dying' exited at start (status 3): 'no licence for this kernel'")
    (log,) = jupyter_dirs["runtime"].glob("*.log")
    assert f"(log: {log})" in msg
    assert not list(jupyter_dirs["runtime"].glob("*.json"))  # no connection file left


def test_a_kernel_that_dies_silently_at_start_says_so(jupyter_dirs):
    _kernelspec(jupyter_dirs["data"], "mute", [sys.executable, "-c", "", "{connection_file}"])
    msg = one_error_line(run_cli("--kernel", "mute", "--timeout", "600"), ExitStatus.KERNELSPEC)
    assert msg == "kernel 'mute' exited at start (status 0): no output"
    assert not list(jupyter_dirs["runtime"].iterdir())  # neither log nor connection file
