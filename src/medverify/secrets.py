"""Keep API keys out of logs, caches, reports and error messages.

Keys come from the environment (``OPENAI_API_KEY`` and friends) or a ``--api-key`` flag. Backends
register every key they hold with :func:`register_secret`; :func:`redact` replaces registered
values, and anything shaped like a bearer token or an ``sk-`` key, with ``***``. The CLI installs
:class:`RedactingFilter` on the root logger so a key that reaches a log record is masked there too.

Credentials written into a URL (``http://admin:pw@host/v1``) are secrets as well: :func:`redact`
and :func:`redact_url` show such a URL as ``http://admin:***@host/v1`` (a user name alone, which
may be a token, as ``http://***@host/v1``), and :func:`split_url_credentials` takes them out of a
URL so that a backend can send them as HTTP basic auth instead of keeping them in the URL it
logs and records.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import unquote, urlsplit, urlunsplit

_SECRET_ENV_VARS = (
    "OPENAI_API_KEY",
    "MEDVERIFY_API_KEY",
    "MEDVERIFY_GRADER_API_KEY",
    "HF_TOKEN",
    "ANTHROPIC_API_KEY",
)
# scheme://userinfo@ — userinfo stops at the first "/", "?", "#", "@", space, quote, "<", ">" or
# backslash (none of which RFC 3986 allows there unencoded), so a path or query with an "@", or an
# "@" in the next JSON string or HTML attribute, is left alone.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/?#@\s\"'<>\\]+)@")
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


def _mask_userinfo(match: re.Match[str]) -> str:
    user, sep, _password = match.group(2).partition(":")
    return f"{match.group(1)}{user}:{MASK}@" if sep else f"{match.group(1)}{MASK}@"


def redact_url(text: str) -> str:
    """Mask the credentials of every URL in ``text``: ``http://admin:***@host/v1``."""
    return _URL_USERINFO.sub(_mask_userinfo, text)


def split_url_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``url`` without its userinfo, and the (percent-decoded) user name and password in it.

    ``http://admin:pw@host:8000/v1`` gives ``("http://host:8000/v1", "admin", "pw")``; a URL
    without userinfo gives ``(url, None, None)``; a user name alone gives a ``None`` password.
    """
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None, None
    user, sep, password = userinfo.partition(":")
    clean = urlunsplit(parts._replace(netloc=host))
    return clean, unquote(user), unquote(password) if sep else None


def redact(text: str) -> str:
    """Return ``text`` with every known or key-shaped secret replaced by ``***``."""
    text = redact_url(text)
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
