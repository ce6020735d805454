"""The run store: every long job's memory, so a killed job resumes without redoing or losing work.

A run directory (``--run-dir``) holds ``run.sqlite``. A job records its configuration once; each
unit of work (a completion, a grade, a consultation) is written the moment it finishes, keyed by
what identifies it (``prompt_id/repeat``, ``case/persona``). Rerunning the same command with the
same ``--run-dir`` skips every finished unit, retries the ones that failed or never finished, and
ends with the same results as an uninterrupted run. Rerunning with *different* settings is
refused with the settings that differ, since mixing them would make the results meaningless.

A run directory belongs to one process at a time: :class:`RunStore` holds an exclusive lock on
``run.lock`` (``flock``, so the system releases it when the holder exits, however it exits), and
a second process opening the same directory is refused with the holder's pid instead of paying
for every unit twice. Stores opened again inside the holding process share its lock; the ranks
of a distributed launch (``WORLD_SIZE`` > 1: torchrun, accelerate) share one run directory by
design and take no lock.

Used by ``medverify demo``, ``healthbench run|grade``, ``consult-bench`` and the trainers.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
import time
import weakref
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
LOCK_FILE = "run.lock"

try:
    import fcntl
except ImportError:  # Windows: no flock; run directories are not locked there
    fcntl = None  # type: ignore[assignment]

# The run-dir locks this process holds: lock file -> (fd, pid of the holder, stores sharing it).
_HELD: dict[str, tuple[int, int, int]] = {}
_GUARD = threading.Lock()


class RunDirLock:
    """An exclusive, per-process lock on a run directory, released when its process ends.

    The lock file keeps the holder's pid for the refusal message. It is never deleted (deleting
    it would let two processes lock two different files); a holder killed with ``kill -9``
    leaves a stale pid in it, but the system has released the lock itself.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._key: str | None = None

    def acquire(self) -> None:
        """Take the lock (again, if this process holds it already).

        Raises:
            ConfigError: another process holds it; the message names that process's pid.
        """
        if fcntl is None or self._key is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # read-only or not a folder: one line, not a traceback
            raise ConfigError(f"cannot create {self.path.parent}: {exc.strerror}") from None
        key = str(self.path.resolve())
        with _GUARD:
            held = _HELD.get(key)
            if held is not None and held[1] == os.getpid():
                _HELD[key] = (held[0], held[1], held[2] + 1)
                self._key = key
                return
            try:
                fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ConfigError(f"cannot write to {self.path.parent}: {exc.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
                holder = _holder_pid(fd)
                os.close(fd)
                raise ConfigError(
                    f"{self.path.parent} is in use by another medverify process (pid "
                    f"{holder or 'unknown'}); wait for it to finish or use another --run-dir"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            _HELD[key] = (fd, os.getpid(), 1)
            self._key = key

    def release(self) -> None:
        """Give the lock back (the last release in this process unlocks the file)."""
        key, self._key = self._key, None
        if key is not None:
            _release(key)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._key is not None


def _holder_pid(fd: int) -> int | None:
    """The pid written by the holder (it writes it right after locking: wait a moment)."""
    deadline = time.monotonic() + 1.0
    while True:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return int(text)
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def _release(key: str) -> None:
    with _GUARD:
        held = _HELD.get(key)
        if held is None:
            return
        fd, pid, count = held
        if pid != os.getpid():  # a forked child: the parent's lock is not the child's to drop
            return
        if count > 1:
            _HELD[key] = (fd, pid, count - 1)
            return
        del _HELD[key]
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _distributed_rank() -> bool:
    """Whether this process is one rank of a distributed launch (torchrun, accelerate)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


class RunStore:
    """Units of work of one job, persisted as they finish.

    Args:
        run_dir: the run directory; created if missing.
        job: the job's name (``healthbench-run``); a run dir belongs to one job.
        config: the settings that determine results (model, grader, data hash...). Recorded on
            the first run; a rerun must present the same settings.
        lock: hold the run directory's lock while open (see the module docs); by default,
            unless this process is a rank of a distributed launch.

    Raises:
        ConfigError: another process holds the run directory, or it holds another job's run
            or other settings.
    """

    def __init__(
        self,
        run_dir: str | Path,
        *,
        job: str,
        config: Mapping[str, Any],
        lock: bool | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.job = job
        self.config = {k: _jsonable(v) for k, v in config.items()}
        self._failed: dict[str, set[str]] = {}
        self.dir_lock = RunDirLock(self.run_dir)
        if lock if lock is not None else not _distributed_rank():
            self.dir_lock.acquire()
        # A store dropped without close() gives its lock back when collected.
        self._finalizer = weakref.finalize(self, self.dir_lock.release)
        try:
            self.kv = SqliteKV(self.run_dir / "run.sqlite")
            self._check_or_record_config()
        except BaseException:
            self.close()
            raise

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
        """Close the database and give the run directory's lock back."""
        try:
            if hasattr(self, "kv"):
                self.kv.close()
        finally:
            self._finalizer()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
