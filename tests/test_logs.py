"""Logs are readable or JSON, and never carry a credential."""

from __future__ import annotations

import io
import json
import logging

import pytest

from kernel.logs import redact, setup_logging


@pytest.mark.parametrize(
    "text",
    [
        "api_key=abc123DEF",
        '{"apiKey": "abc123DEF"}',
        "secret: abc123DEF",
        "Authorization: Bearer abc123DEF",
        "signature=abc123DEF&timestamp=1",
        "password=abc123DEF",
    ],
)
def test_secrets_are_redacted(text: str) -> None:
    assert "abc123DEF" not in redact(text)
    assert "***" in redact(text)


def test_json_lines_are_parseable_and_redacted() -> None:
    stream = io.StringIO()
    setup_logging("INFO", json_lines=True, stream=stream)
    try:
        logging.getLogger("kernel.test").warning("connecting with token=%s", "hunter2secret")
    finally:
        setup_logging("WARNING")
    entry = json.loads(stream.getvalue().strip())
    assert entry["level"] == "warning"
    assert entry["logger"] == "kernel.test"
    assert "hunter2secret" not in entry["message"]
