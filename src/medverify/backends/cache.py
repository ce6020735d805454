"""The response cache: an identical request is never paid for twice.

Keyed by a hash of the backend identity, the messages and the sampling parameters (see
:func:`medverify.backends.base.request_key`), never by credentials. Reruns of an evaluation, a
grader applied twice to the same completion, or a training reward recomputed after a restart are
answered from disk. ``--no-cache`` on the CLI turns it off. The default location is
``$MEDVERIFY_CACHE_DIR/responses.sqlite`` (``~/.cache/medverify`` when unset).
"""

from __future__ import annotations

import os
from pathlib import Path

from medverify.backends.base import Completion
from medverify.runs.kv import SqliteKV

_NS = "responses"


def default_cache_dir() -> Path:
    """Where medverify keeps caches and converted models."""
    env = os.environ.get("MEDVERIFY_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "medverify"


class ResponseCache:
    """Completions on disk, by request hash.

    Writes are buffered and committed ``flush_every`` at a time (and on close): the cache only
    saves money, the run store is what must never lose a result, so the cache need not pay a
    commit per call. A killed process loses at most the last unflushed entries.
    """

    def __init__(self, path: str | Path | None = None, *, flush_every: int = 64) -> None:
        self.path = Path(path) if path else default_cache_dir() / "responses.sqlite"
        self._kv = SqliteKV(self.path)
        self._pending: dict[str, dict] = {}
        self.flush_every = flush_every

    def get(self, key: str) -> Completion | None:
        """The cached completion for a request hash, if any."""
        value = self._pending.get(key) or self._kv.get(_NS, key)
        return None if value is None else Completion.model_validate(value)

    def put(self, key: str, completion: Completion) -> None:
        """Remember a completion (without its per-call bookkeeping)."""
        self._pending[key] = completion.model_dump(exclude={"cached"})
        if len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Commit buffered entries."""
        if self._pending:
            pending, self._pending = self._pending, {}
            self._kv.put_many(_NS, pending)

    def __len__(self) -> int:
        return self._kv.count(_NS) + sum(1 for k in self._pending if self._kv.get(_NS, k) is None)

    def close(self) -> None:
        """Commit what is buffered and close the database."""
        if not self._kv.closed:
            self.flush()
        self._kv.close()
