"""Persistence shared by every long job: the run store and its SQLite key-value table."""

from medverify.runs.kv import SqliteKV
from medverify.runs.store import RunStore

__all__ = ["RunStore", "SqliteKV"]
