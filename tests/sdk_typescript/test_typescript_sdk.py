"""The TypeScript SDK (``sdk/typescript``): its Node test suite and its generated code.

The Node suite starts real kernels with this interpreter and talks to them
over loopback gRPC from Node; here it runs as one test that fails when any
Node test fails, with the Node output in the failure message. Both tests skip
only when ``node`` or ``npm`` is not installed; ``make install`` (or
``make test``) installs the package's dependencies with ``npm ci``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "sdk" / "typescript"
OUTPUT_TAIL = 6000
"""Characters of Node's output shown when a run fails."""

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are needed for the TypeScript SDK tests and are not installed",
)


def run_npm(*arguments: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run ``npm <arguments>`` in the package, the kernel started with this Python."""
    if not (PACKAGE / "node_modules").is_dir():
        pytest.fail(f"{PACKAGE}/node_modules is missing: run `make install` (npm ci there)")
    return subprocess.run(
        ["npm", "--silent", *arguments],
        cwd=PACKAGE,
        env={**os.environ, "TRADEKERNEL_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def test_node_suite_passes_against_a_real_kernel() -> None:
    result = run_npm("test", timeout_s=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-OUTPUT_TAIL:]
    assert "# fail 0" in output, output[-OUTPUT_TAIL:]


def test_generated_typescript_matches_the_protos() -> None:
    result = run_npm("run", "check-generated", timeout_s=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-OUTPUT_TAIL:]
