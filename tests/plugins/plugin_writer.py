"""Plug-in modules written on the fly for the host's tests."""

from __future__ import annotations

import textwrap
import uuid
from importlib.metadata import EntryPoint
from pathlib import Path


class PluginModules:
    """Write plug-in modules into a temporary directory on ``sys.path``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules: list[str] = []

    def write(self, source: str, *, name: str = "plugin", api: str | None = "1.0") -> EntryPoint:
        """Write a module from ``source`` and return an entry point named ``name`` for it.

        ``api`` becomes the module's ``TRADEKERNEL_API`` (``None``: not declared).
        """
        module = f"tk_test_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
        header = "from tradekernel_sdk import Strategy, hookimpl\n"
        if api is not None:
            header += f"TRADEKERNEL_API = {api!r}\n"
        (self.root / f"{module}.py").write_text(header + textwrap.dedent(source))
        self.modules.append(module)
        return EntryPoint(name=name, value=module, group="tradekernel")
