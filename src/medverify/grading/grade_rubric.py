"""The one step that grades a whole rubric for one response, memoised per criterion.

HealthBench (run, grade, meta-eval), the consultation benchmark, the training rewards and the
deploy report all need the same thing: every item of a rubric judged against one (conversation,
response) by some :class:`~medverify.grading.Grader`, each verdict remembered so that a rerun or a
repeated completion never pays for a judge call twice, and a failed verdict kept apart (retried
next time, never counted as "not met"). Doing it once here means one hash convention for a
verdict, one place where failures are recorded, and the same verdicts for evaluation and reward.

A verdict is remembered under :func:`verdict_key`: a hash of the grader, the conversation, the
response and the criterion with its points. Anything that changes the verdict changes the key, so
a memo can never hand one criterion's verdict to another.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import Any, Protocol

from medverify.grading.protocol import Grader
from medverify.grading.records import Grade, RubricItem
from medverify.grading.results import CriterionVerdict
from medverify.runs.kv import SqliteKV
from medverify.secrets import redact

log = logging.getLogger(__name__)

#: The run-store namespace that holds verdicts.
VERDICTS = "verdict"


def verdict_key(
    grader: str, conversation: Sequence[dict[str, str]], response: str, item: RubricItem
) -> str:
    """A stable hash of everything that decides a verdict."""
    blob = json.dumps(
        [grader, list(conversation), response, item.criterion, item.points], sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class VerdictMemo(Protocol):
    """Where verdicts are remembered: a :class:`~medverify.runs.store.RunStore` or a cache."""

    def get(self, kind: str, key: str) -> Any | None:
        """A remembered value, or ``None``."""
        ...

    def put(self, kind: str, key: str, value: Any) -> None:
        """Remember a value (and forget an earlier failure)."""
        ...

    def record_failure(self, kind: str, key: str, error: str) -> None:
        """Note that this unit failed this time (it is retried next time)."""
        ...


class VerdictCache:
    """A verdict memo without a run: in memory, optionally backed by a SQLite file (``runs.kv``).

    Training grades the same completion many times across epochs and stages; this keeps those
    verdicts without a job's settings check. Failures are counted, not stored: they are retried.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._mem: dict[tuple[str, str], Any] = {}
        self._kv = SqliteKV(path) if path else None
        self.hits = 0
        self.misses = 0
        self.failures = 0

    def get(self, kind: str, key: str) -> Any | None:
        """The remembered value, or ``None``."""
        value = self._mem.get((kind, key))
        if value is None and self._kv is not None:
            value = self._kv.get(kind, key)
            if value is not None:
                self._mem[(kind, key)] = value
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, kind: str, key: str, value: Any) -> None:
        """Remember a value."""
        self._mem[(kind, key)] = value
        if self._kv is not None:
            self._kv.put(kind, key, value)

    def record_failure(self, kind: str, key: str, error: str) -> None:
        """Count a failure; nothing is stored, so it is retried."""
        self.failures += 1

    def close(self) -> None:
        """Close the SQLite file, if any."""
        if self._kv is not None:
            self._kv.close()


def _verdict(item: RubricItem, grade: Grade) -> CriterionVerdict:
    return CriterionVerdict(
        criterion=item.criterion,
        points=item.points,
        tags=list(item.tags),
        met=grade.met,
        explanation=grade.explanation,
        error=grade.error,
        measured=grade.measured,
    )


async def grade_rubric(
    grader: Grader,
    conversation: Sequence[dict[str, str]],
    response: str,
    items: Sequence[RubricItem],
    *,
    memo: VerdictMemo | None = None,
    limit: asyncio.Semaphore | None = None,
    on_graded: Callable[[], None] | None = None,
) -> list[CriterionVerdict]:
    """Every item of a rubric judged against one response, in the order of ``items``.

    Args:
        grader: decides each criterion (LLM judge, local grader, evidence checks...).
        conversation: what the response answers (chat messages).
        response: the text under review.
        items: the rubric.
        memo: remembers verdicts (a run store, a :class:`VerdictCache`); ``None`` for none.
        limit: bounds grader calls in flight across every rubric sharing it.
        on_graded: called once per criterion when its verdict is known (progress bars).

    Returns:
        One verdict per item; ``met`` is ``None`` where grading failed (``error`` says why).
        A grader that raises is a failed verdict too, logged, so one bad call cannot take a
        whole run or a training step down; it is retried on the next run.
    """

    async def one(item: RubricItem) -> CriterionVerdict:
        key = verdict_key(grader.spec, conversation, response, item)
        stored = memo.get(VERDICTS, key) if memo is not None else None
        if stored is not None:
            grade = Grade.model_validate(stored)
        else:
            gate: AbstractAsyncContextManager[Any] = limit if limit is not None else nullcontext()
            async with gate:
                try:
                    grade = await grader.grade(conversation, response, item)
                except Exception as exc:  # a grader bug or a backend that gave up
                    grade = Grade(met=None, error=f"{type(exc).__name__}: {exc}")
            if grade.failed:  # one line per failure, whether the grader raised or gave up
                error = " ".join(redact(grade.error or "").split())  # one line, even multi-line
                log.warning("grading failed on %r: %s", item.criterion[:60], error[:300])
            if memo is not None:
                if grade.failed:
                    memo.record_failure(VERDICTS, key, grade.error or "grading failed")
                else:
                    memo.put(VERDICTS, key, grade.model_dump())
        if on_graded is not None:
            on_graded()
        return _verdict(item, grade)

    return list(await asyncio.gather(*(one(item) for item in items)))
