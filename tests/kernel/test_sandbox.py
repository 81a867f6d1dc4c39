"""The tests' kernels come from their own sandbox, never from the machine's kernelspecs."""

from __future__ import annotations

from pathlib import Path


def test_python3_is_the_sandboxes_lossless_kernel(make_kernel, jupyter_dirs):
    km = make_kernel()
    assert Path(km.kernel_spec.resource_dir).is_relative_to(jupyter_dirs["data"])
    assert any(arg.endswith("lossless_kernel.py") for arg in km.kernel_spec.argv)
