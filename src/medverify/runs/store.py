"""The run store: every long job's memory, so a killed job resumes without redoing or losing work.

A run directory (``--run-dir``) holds ``run.sqlite``. A job records its configuration once; each
unit of work (a completion, a grade, a consultation) is written the moment it finishes, keyed by
what identifies it (``prompt_id/repeat``, ``case/persona``). Rerunning the same command with the
same ``--run-dir`` skips every finished unit, retries the ones that failed or never finished, and
ends with the same results as an uninterrupted run. Rerunning with *different* settings is
refused with the settings that differ, since mixing them would make the results meaningless.

Used by ``medverify demo``, ``healthbench run|grade``, ``consult-bench`` and the trainers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from medverify.errors import ConfigError, MedverifyError
from medverify.runs.kv import SqliteKV

log = logging.getLogger(__name__)
T = TypeVar("T")

_META = "_meta"
_FAILED = "_failed:"


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


class RunStore:
    """Units of work of one job, persisted as they finish.

    Args:
        run_dir: the run directory; created if missing.
        job: the job's name (``healthbench-run``); a run dir belongs to one job.
        config: the settings that determine results (model, grader, data hash...). Recorded on
            the first run; a rerun must present the same settings.
    """

    def __init__(self, run_dir: str | Path, *, job: str, config: Mapping[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.kv = SqliteKV(self.run_dir / "run.sqlite")
        self.job = job
        self.config = {k: _jsonable(v) for k, v in config.items()}
        self._failed: dict[str, set[str]] = {}
        self._check_or_record_config()

    def _check_or_record_config(self) -> None:
        first = {"job": self.job, "config": self.config, "created": time.time()}
        if self.kv.put_absent(_META, first):
            return
        recorded_job = self.kv.get(_META, "job")
        if recorded_job != self.job:
            raise ConfigError(
                f"{self.run_dir} holds a '{recorded_job}' run, not '{self.job}': "
                "use another --run-dir"
            )
        recorded = self.kv.get(_META, "config") or {}
        differ = sorted(
            k for k in set(recorded) | set(self.config) if recorded.get(k) != self.config.get(k)
        )
        if differ:
            details = "; ".join(
                f"{k}: was {recorded.get(k)!r}, now {self.config.get(k)!r}" for k in differ
            )
            raise ConfigError(
                f"{self.run_dir} was started with other settings ({details}); rerun with the "
                "same settings to resume, or use a new --run-dir"
            )

    @property
    def is_resumed(self) -> bool:
        """Whether this directory already held finished work when opened."""
        return any(ns for ns in self._namespaces() if not ns.startswith("_"))

    def _namespaces(self) -> list[str]:
        rows = self.kv.conn.execute("SELECT DISTINCT ns FROM kv").fetchall()
        return [r[0] for r in rows]

    def get(self, kind: str, key: str) -> Any | None:
        """A finished unit's value, or ``None``."""
        return self.kv.get(kind, key)

    def _failed_keys(self, kind: str) -> set[str]:
        if kind not in self._failed:
            self._failed[kind] = self.kv.keys(_FAILED + kind)
        return self._failed[kind]

    def put(self, kind: str, key: str, value: Any) -> None:
        """Record a finished unit (committed before returning) and clear any earlier failure."""
        self.kv.put(kind, key, _jsonable(value))
        failed = self._failed_keys(kind)
        if key in failed:
            self.kv.delete(_FAILED + kind, key)
            failed.discard(key)

    def done(self, kind: str) -> set[str]:
        """Keys of the finished units of a kind."""
        return self.kv.keys(kind)

    def items(self, kind: str) -> dict[str, Any]:
        """All finished units of a kind."""
        return dict(self.kv.items(kind))

    def record_failure(self, kind: str, key: str, error: str) -> None:
        """Remember that a unit failed for good this time (it is retried on the next run)."""
        self.kv.put(_FAILED + kind, key, {"error": error, "at": time.time()})
        self._failed_keys(kind).add(key)

    def failures(self, kind: str) -> dict[str, str]:
        """Units of a kind whose last attempt failed, with the error."""
        return {k: v["error"] for k, v in self.kv.items(_FAILED + kind)}

    async def map(
        self,
        kind: str,
        units: Mapping[str, T] | Iterable[tuple[str, T]],
        work: Callable[[str, T], Awaitable[Any]],
        *,
        concurrency: int = 8,
        on_done: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Run ``work(key, unit)`` for every unit not yet finished, persisting each result.

        A unit whose work raises a :class:`MedverifyError` (a backend that gave up, a bad input)
        is recorded as a failure and the others go on; any other exception is a bug and stops
        the job, with every unit finished so far kept.

        Returns:
            The values of all finished units of this kind (earlier runs included).
        """
        pairs = list(units.items()) if isinstance(units, Mapping) else list(units)
        finished = self.done(kind)
        todo = [(k, u) for k, u in pairs if k not in finished]
        if on_done is not None:
            for k, _ in pairs:
                if k in finished:
                    on_done(k)
        if todo:
            log.info("%s: %d of %d units to do", kind, len(todo), len(pairs))
        queue: asyncio.Queue[tuple[str, T]] = asyncio.Queue()
        for pair in todo:
            queue.put_nowait(pair)

        async def worker() -> None:
            while True:
                try:
                    key, unit = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                try:
                    value = await work(key, unit)
                except MedverifyError as exc:
                    log.warning("%s %s failed: %s", kind, key, exc)
                    self.record_failure(kind, key, str(exc))
                else:
                    self.put(kind, key, value)
                if on_done is not None:
                    on_done(key)

        workers = [
            asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(todo))))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
        wanted = {k for k, _ in pairs}
        return {k: v for k, v in self.items(kind).items() if k in wanted}

    def close(self) -> None:
        """Close the database."""
        self.kv.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
