"""A small SQLite key-value table: the storage under the run store and the response cache.

SQLite in WAL mode lets readers proceed while one writer commits, survives ``kill -9`` at any
point (a committed row is on disk, an uncommitted one is simply absent) and needs no server.
Every write commits at once: a unit of work is either fully recorded or not recorded at all.
One connection is shared by the threads of a process under a lock; other processes may open the
same file (busy timeout instead of "database is locked" errors).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medverify.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    PRIMARY KEY (ns, key)
) WITHOUT ROWID;
"""


_TIMEOUT_S = 30.0


def _retry_while_locked(conn: sqlite3.Connection, sql: str, timeout_s: float) -> None:
    """Run a setup statement, waiting out other processes that are setting up the same file.

    Processes that open a new file at the same instant and switch it to WAL can get "database
    is locked" at once, without SQLite waiting out its busy timeout (four processes: about one
    failed open in five before this retry; it failed CI once). A short retry with backoff is
    enough; any other error, or a lock held past the timeout, is raised.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.005
    while True:
        try:
            conn.execute(sql)
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def _rows(ns: str, items: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (ns, k, json.dumps(v, ensure_ascii=False, separators=(",", ":"))) for k, v in items.items()
    ]


class SqliteKV:
    """JSON values under ``(namespace, key)`` in one SQLite file, committed on every write."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        # A folder or file that cannot be written is a one-line ConfigError naming the path,
        # at open, not a traceback at the first write in the middle of a run.
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
                raise PermissionError(errno.EACCES, "permission denied", str(self.path))
            self._conn = sqlite3.connect(
                self.path, timeout=_TIMEOUT_S, check_same_thread=False, isolation_level=None
            )
            _retry_while_locked(self._conn, "PRAGMA journal_mode=WAL", _TIMEOUT_S)
            # NORMAL in WAL mode: a committed row survives a killed process; only an OS crash
            # or power cut may lose the last transactions, never corrupt the file.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            _retry_while_locked(self._conn, _SCHEMA, _TIMEOUT_S)
        except (OSError, sqlite3.OperationalError, sqlite3.DatabaseError) as exc:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"cannot open {self.path} for writing: {reason}") from exc

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._conn is None

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection (raises if closed)."""
        if self._conn is None:
            raise RuntimeError(f"{self.path} is closed")
        return self._conn

    def get(self, ns: str, key: str) -> Any | None:
        """The value stored under ``(ns, key)``, or ``None``."""
        with self._lock:
            row = self.conn.execute(
                "SELECT value FROM kv WHERE ns = ? AND key = ?", (ns, key)
            ).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, ns: str, key: str, value: Any) -> None:
        """Store (or replace) a JSON-serialisable value; committed before returning."""
        blob = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        with self._lock:
            self.conn.execute(
                "INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)", (ns, key, blob)
            )

    @contextlib.contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (other writers wait), rolled back on error."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def put_many(self, ns: str, items: dict[str, Any]) -> None:
        """Store several values in one transaction (all or none)."""
        with self._immediate() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO kv (ns, key, value) VALUES (?, ?, ?)", _rows(ns, items)
            )

    def put_absent(self, ns: str, items: dict[str, Any]) -> bool:
        """Store several values only if none of the keys exists yet; whether they were stored.

        One immediate transaction, so of two processes racing to record the same entries
        exactly one wins and the other sees the winner's values.
        """
        if not items:
            return True
        with self._immediate() as conn:
            taken = conn.execute(
                f"SELECT 1 FROM kv WHERE ns = ? AND key IN ({','.join('?' * len(items))})",
                (ns, *items),
            ).fetchone()
            if taken is None:
                conn.executemany(
                    "INSERT INTO kv (ns, key, value) VALUES (?, ?, ?)", _rows(ns, items)
                )
        return taken is None

    def delete(self, ns: str, key: str) -> None:
        """Remove one entry if present."""
        with self._lock:
            self.conn.execute("DELETE FROM kv WHERE ns = ? AND key = ?", (ns, key))

    def keys(self, ns: str) -> set[str]:
        """All keys of a namespace."""
        with self._lock:
            rows = self.conn.execute("SELECT key FROM kv WHERE ns = ?", (ns,)).fetchall()
        return {r[0] for r in rows}

    def items(self, ns: str) -> Iterator[tuple[str, Any]]:
        """All ``(key, value)`` pairs of a namespace, in insertion order."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT key, value FROM kv WHERE ns = ? ORDER BY created, key", (ns,)
            ).fetchall()
        for key, blob in rows:
            yield key, json.loads(blob)

    def count(self, ns: str) -> int:
        """Number of entries in a namespace."""
        with self._lock:
            return int(
                self.conn.execute("SELECT COUNT(*) FROM kv WHERE ns = ?", (ns,)).fetchone()[0]
            )

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
