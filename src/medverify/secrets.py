"""Keep API keys out of logs, caches, reports and error messages.

Keys come from the environment (``OPENAI_API_KEY`` and friends) or a ``--api-key`` flag. Backends
register every key they hold with :func:`register_secret`; :func:`redact` replaces registered
values, and anything shaped like a bearer token or an ``sk-`` key, with ``***``. The CLI installs
:class:`RedactingFilter` on the root logger so a key that reaches a log record is masked there too.
"""

from __future__ import annotations

import logging
import os
import re

_SECRET_ENV_VARS = ("OPENAI_API_KEY", "MEDVERIFY_API_KEY", "HF_TOKEN", "ANTHROPIC_API_KEY")
_PATTERNS = (
    re.compile(r"sk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9_\-\.=:+/]{8,}"),
    re.compile(r"(?i)(api[_-]?key[\"'=:\s]+)[A-Za-z0-9_\-\.]{8,}"),
)
_registered: set[str] = set()
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret value so that :func:`redact` masks it wherever it appears."""
    if value and len(value) >= 4:
        _registered.add(value)


def _known_secrets() -> list[str]:
    values = set(_registered)
    for name in _SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            values.add(value)
    # Longest first, so a key that contains another is masked whole.
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """Return ``text`` with every known or key-shaped secret replaced by ``***``."""
    for value in _known_secrets():
        text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in the fully formatted message."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
