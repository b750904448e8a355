"""The server's scope table says what the rpc comments in the protos say."""

from __future__ import annotations

import re
from pathlib import Path

from kernel.api.scopes import ADMIN, METHOD_SCOPES, required_scope

PROTOS = Path(__file__).resolve().parents[2] / "protos" / "tradekernel" / "v1"
SCOPE = re.compile(r"Scope: `(\w+)`")


def scopes_in_protos() -> dict[str, str]:
    """Return each rpc's scope from the ``Scope: `x``` line of the comment above it."""
    found: dict[str, str] = {}
    for path in sorted(PROTOS.glob("*.proto")):
        service = ""
        comment: list[str] = []
        for line in path.read_text().splitlines():
            text = line.strip()
            if match := re.match(r"service (\w+)", text):
                service = match.group(1)
            if text.startswith("//"):
                comment.append(text)
                continue
            if match := re.match(r"rpc (\w+)", text):
                scope = SCOPE.search(" ".join(comment))
                if scope is not None:
                    found[f"/tradekernel.v1.{service}/{match.group(1)}"] = scope.group(1)
            comment = []
    return found


def test_table_matches_the_proto_comments() -> None:
    documented = scopes_in_protos()
    assert len(documented) > 20
    assert {method: METHOD_SCOPES[method] for method in documented} == documented


def test_unknown_methods_need_admin_and_health_is_open() -> None:
    assert required_scope("/tradekernel.v1.NewService/Rpc") == ADMIN
    assert required_scope("/grpc.health.v1.Health/Check") is None
    assert required_scope("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") is None
