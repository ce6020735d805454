"""Errors a user can act on.

Every failure that is the user's to fix (a bad backend spec, a missing file, a malformed line,
an unreachable endpoint, a rejected API key) is raised as a :class:`MedverifyError`. The CLI
prints such errors as one line and exits with code 2; anything else is a bug and keeps its
traceback. Messages pass through :func:`medverify.secrets.redact` before they are shown, so an
API key that slipped into an exception never reaches the terminal.
"""

from __future__ import annotations

from pathlib import Path


class MedverifyError(Exception):
    """A failure the user can fix; shown as one line, exit code 2."""


class ConfigError(MedverifyError):
    """A bad flag, backend spec or configuration file."""


class InputError(MedverifyError):
    """Bad input data, located by file, line and field so the user can find it."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.reason = message
        where = ""
        if self.path is not None:
            where = self.path + (f":{line}" if line is not None else "")
        if field:
            where = f"{where} field '{field}'" if where else f"field '{field}'"
        super().__init__(f"{where}: {message}" if where else message)


class BackendError(MedverifyError):
    """A model backend failed for good (after any retries)."""

    def __init__(self, message: str, *, spec: str | None = None) -> None:
        self.spec = spec
        self.reason = message
        super().__init__(f"backend {spec}: {message}" if spec else message)


class TransientBackendError(BackendError):
    """A failure worth retrying: rate limit, 5xx, timeout, lost connection, malformed reply."""

    def __init__(
        self, message: str, *, spec: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, spec=spec)
        self.retry_after_s = retry_after_s


class AuthenticationError(BackendError):
    """The endpoint rejected the credentials (401/403); retrying cannot help."""
