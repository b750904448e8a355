"""Logging set-up: human-readable or JSON lines, with secrets redacted."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

__all__ = ["JsonFormatter", "SecretRedactor", "redact", "register_secret", "setup_logging"]

# key=value, "key": "value" and Bearer tokens, for any key that names a secret.
_SECRET_PATTERNS = (
    re.compile(
        r"(?i)(\"?(?:api[_-]?key|api[_-]?secret|secret|password|passphrase|token|signature)\"?"
        r"\s*[:=]\s*\"?)([^\s\",&]+)"
    ),
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]+)"),
)
_REDACTED = "***"
# Known credential values, redacted wherever they appear: a key inside a URL
# or a header dump matches no key=value pattern.
_known_secrets: set[str] = set()
_SHORTEST_SECRET = 8  # shorter values would redact ordinary words


def register_secret(value: str) -> None:
    """Redact ``value`` from every log line from now on."""
    if len(value) < _SHORTEST_SECRET:
        raise ValueError(f"a credential must be at least {_SHORTEST_SECRET} characters long")
    _known_secrets.add(value)


def redact(text: str) -> str:
    """Replace known credentials and the values of secret-looking fields in ``text``."""
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + _REDACTED, text)
    return text


class SecretRedactor(logging.Filter):
    """Rewrite every record's message so no credential reaches a log sink."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters print exc_text as it is; a traceback can quote a secret.
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(
    level: str = "INFO", *, json_lines: bool = False, stream: TextIO | None = None
) -> None:
    """Configure the root logger once for the process."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(SecretRedactor())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
