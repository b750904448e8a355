"""``tradekernel run`` in a child process, for the serving tests that need the whole kernel.

The kernel runs on the test's configuration (API on port 0, tokens from the
environment); its log is drained by a thread as it comes, so the kernel never
blocks on a full pipe, and the API's port is read from it. Stages and
metrics are read through the SDK's client, as an operator's tools read them.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tradekernel_sdk.client import KernelClient, ModelView

__all__ = ["RunningKernel", "kernel_head"]

ROOT = Path(__file__).resolve().parents[2]
_SERVING = re.compile(r"API serving on 127\.0\.0\.1:(\d+)")


def kernel_head(tmp_path: Path) -> str:
    """The start of a test kernel's configuration: state under ``tmp_path``, the API on port 0."""
    return f"""
[kernel]
exit_when_replay_done = false
state_dir = "{tmp_path / "state"}"

[metrics]
enabled = false

[api]
enabled = true
port = 0
"""


class RunningKernel:
    """``tradekernel run --config CONFIG`` until :meth:`stop`, serving model ``model``."""

    def __init__(self, config: Path, token: str, *, model: str, ready_s: float = 60) -> None:
        self.token = token
        self.model = model
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kernel", "run", "--config", str(config), "--no-progress"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "TRADEKERNEL_API_TOKENS": f"{token}=read+admin",
            },
            cwd=ROOT,
        )
        self.log: list[str] = []
        self.port = 0
        self._serving = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._serving.wait(ready_s):
            self.process.kill()
            raise AssertionError("the kernel did not serve its API:\n" + "".join(self.log))
        self.address = f"127.0.0.1:{self.port}"
        self.client = KernelClient(self.address, token)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            found = _SERVING.search(line)
            if found and not self.port:
                self.port = int(found.group(1))
                self._serving.set()

    def models(self) -> dict[str, ModelView]:
        """The model's versions as ``ListModels`` shows them, by version."""
        return {model.version: model for model in self.client.models(self.model)}

    def stages(self) -> dict[str, str]:
        """Each version's stage: ``production``, ``shadow``, ``canary``, ``loaded``, ``retired``."""
        return {version: model.stage for version, model in self.models().items()}

    def until(
        self, what: str, check: Callable[[dict[str, ModelView]], bool], timeout_s: float = 60
    ) -> None:
        """Wait for the listing to satisfy ``check``; fail naming ``what`` and the listing."""
        deadline = time.monotonic() + timeout_s
        while not check(self.models()):
            assert time.monotonic() < deadline, f"{what}: {self.models()}"
            time.sleep(0.2)

    def cli(self, *argv: str) -> tuple[int, str, str]:
        """Run ``tradekernel ARGV --address ADDRESS``; return its status, stdout and stderr."""
        done = subprocess.run(
            [sys.executable, "-m", "kernel", *argv, "--address", self.address],
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "TRADEKERNEL_API_TOKEN": self.token},
            cwd=ROOT,
            timeout=60,
        )
        return done.returncode, done.stdout, done.stderr

    def stop(self, timeout_s: float = 60) -> str:
        """SIGTERM; check the kernel exits 0 and return its whole log."""
        self.client.close()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout_s)
        self._reader.join(10)
        log = "".join(self.log)
        assert self.process.returncode == 0, log[-4000:]
        return log
