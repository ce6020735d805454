"""Reward functions for TRL's trainers, computed by the same code that scores evaluations.

Each reward is a TRL-style batched callable: it receives ``prompts``, ``completions`` and the
dataset's extra columns as keyword arguments and returns one float per completion, or ``None``
for a sample that could not be scored. ``None`` is "no reward" (TRL turns it into NaN, leaves it
out of the group baseline and gives it zero advantage): a grader that fails must not look like a
response that earned 0.

* :class:`RuleReward` -- verifiable answers: the option letter (or text) of a multiple-choice
  item, or a short answer such as a diagnosis, matched exactly (no grader).
* :class:`RubricReward` -- a HealthBench-format rubric (column ``rubric``) graded criterion by
  criterion by a :class:`~medverify.grading.Grader`, scored by
  :func:`medverify.grading.example_score` -- the HealthBench example score.
* :class:`ConsultationReward` -- a multi-turn consultation (column ``transcript`` from
  :mod:`medverify.train.rollout`): its rubric graded on the whole transcript, plus process
  measures (diagnosis named, facts and findings elicited).

Rubric and consultation rewards are ``async``: TRL gathers them on its event loop, and every
criterion of every sample is graded concurrently (bounded by a semaphore), with verdicts cached
by (grader, conversation, response, criterion) so a repeated completion costs nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from medverify.cases.diagnosis import names_diagnosis
from medverify.cases.records import CaseRecord, Transcript
from medverify.consult.task import ConsultationScore, ConsultationTask
from medverify.grading import Grader, RubricItem, VerdictCache, example_score, grade_rubric
from medverify.grading.results import CriterionVerdict

log = logging.getLogger(__name__)

Completion = str | list[dict[str, str]]


def completion_text(completion: Completion) -> str:
    """The text of a TRL completion (plain string, or a conversational list of messages)."""
    if isinstance(completion, str):
        return completion
    return "".join(m.get("content", "") for m in completion if m.get("role") == "assistant")


def prompt_messages(prompt: Any) -> list[dict[str, str]]:
    """A TRL prompt as chat messages (a plain string becomes one user message)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": m["role"], "content": m["content"]} for m in prompt]


# -- rule-based ------------------------------------------------------------------------------

_LETTER_PATTERNS = (
    re.compile(r"\banswer\s*(?:is|:)?\s*\(?([A-J])\b\)?", re.IGNORECASE),
    re.compile(r"^\s*\(?([A-J])[\).:\s]", re.MULTILINE),
    re.compile(r"^\s*\(?([A-J])\)?\.?\s*$", re.IGNORECASE),
)


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def extract_choice(text: str, options: dict[str, str]) -> str | None:
    """The option letter a response chose, or ``None`` if it names none (or several).

    A letter is read from ``Answer: C``, ``(C)``, ``C.`` at a line start or a bare ``C``;
    otherwise the response must contain exactly one option's full text.
    """
    letters = set(options)
    for pattern in _LETTER_PATTERNS:
        match = pattern.search(text)
        if match and match.group(1).upper() in letters:
            return match.group(1).upper()
    said = f" {_norm(text)} "
    named = [k for k, v in options.items() if _norm(v) and f" {_norm(v)} " in said]
    return named[0] if len(named) == 1 else None


def rule_score(text: str, answer: str, options: dict[str, str] | None = None) -> float:
    """1.0 for the right answer, else 0.0 (a wrong format is a wrong answer, not a failure).

    Args:
        text: the response.
        answer: the option letter for multiple-choice items, else the expected short answer.
        options: letter -> option text for multiple-choice items.
    """
    if options:
        return 1.0 if extract_choice(text, options) == answer.strip().upper() else 0.0
    stated = text
    match = re.search(r"(?:DIAGNOSIS|ANSWER)\s*:\s*(.+)", text, re.IGNORECASE)
    if match:
        stated = match.group(1).splitlines()[0]
    return 1.0 if names_diagnosis(stated, answer) else 0.0


class RuleReward:
    """Exact-answer reward for MCQ / short-answer items (columns ``answer``, ``options``).

    ``options`` is a JSON object string (letter -> text) or empty for short answers.
    """

    __name__ = "rule_reward"

    def __call__(
        self,
        completions: Sequence[Completion],
        answer: Sequence[str],
        options: Sequence[str | None] | None = None,
        **_: Any,
    ) -> list[float | None]:
        """One score per completion."""
        opts = options or [None] * len(completions)
        out: list[float | None] = []
        for completion, ans, opt in zip(completions, answer, opts, strict=True):
            parsed = json.loads(opt) if opt else None
            out.append(rule_score(completion_text(completion), ans, parsed))
        return out


# -- rubric-based -----------------------------------------------------------------------------


class RubricScorer:
    """Grades a response against rubric items and returns the HealthBench example score.

    The verdicts come from :func:`~medverify.grading.grade_rubric`, the step evaluation uses, so a
    reward and a benchmark score of the same response agree.

    Args:
        grader: any :class:`~medverify.grading.Grader`.
        concurrency: most grader calls in flight.
        cache: verdict memo (default: in memory); a failure is never remembered.
        max_items: grade only the first N items (cheap smoke runs); ``None`` for all.
    """

    def __init__(
        self,
        grader: Grader,
        *,
        concurrency: int = 16,
        cache: VerdictCache | None = None,
        max_items: int | None = None,
    ) -> None:
        self.grader = grader
        self.concurrency = concurrency
        self.cache = cache or VerdictCache()
        self.max_items = max_items
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.failures = 0

    def limit(self) -> asyncio.Semaphore:
        """The bound on grader calls in flight (one per event loop)."""
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore, self._loop = asyncio.Semaphore(self.concurrency), loop
        return self._semaphore

    async def verdicts(
        self, conversation: Sequence[dict[str, str]], response: str, items: Sequence[RubricItem]
    ) -> list[CriterionVerdict]:
        """Every item's verdict (``met`` is ``None`` where grading failed)."""
        items = list(items)[: self.max_items] if self.max_items else list(items)
        return await grade_rubric(
            self.grader, conversation, response, items, memo=self.cache, limit=self.limit()
        )

    async def score(
        self, conversation: Sequence[dict[str, str]], response: str, items: Sequence[RubricItem]
    ) -> float | None:
        """Example score, or ``None`` if any criterion could not be graded or none is positive."""
        verdicts = await self.verdicts(conversation, response, items)
        if any(v.met is None for v in verdicts):
            self.failures += 1
            return None
        graded = [RubricItem(criterion=v.criterion, points=v.points, tags=v.tags) for v in verdicts]
        return example_score(graded, [bool(v.met) for v in verdicts])


def parse_rubric(value: str | Sequence[Any]) -> list[RubricItem]:
    """A ``rubric`` column value (JSON string or list of dicts) as rubric items."""
    raw = json.loads(value) if isinstance(value, str) else value
    return [RubricItem.model_validate(item) for item in raw]


class RubricReward:
    """HealthBench-style rubric reward: grader verdicts -> example score (column ``rubric``)."""

    __name__ = "rubric_reward"

    def __init__(self, scorer: RubricScorer) -> None:
        self.scorer = scorer

    async def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Completion],
        rubric: Sequence[str],
        **_: Any,
    ) -> list[float | None]:
        """One score per completion, ``None`` where grading failed."""
        jobs = [
            self.scorer.score(prompt_messages(p), completion_text(c), parse_rubric(r))
            for p, c, r in zip(prompts, completions, rubric, strict=True)
        ]
        return list(await asyncio.gather(*jobs))


# -- multi-turn consultation ------------------------------------------------------------------


class ConsultationReward:
    """Multi-turn reward: the consultation task's score, mixed with its process measures.

    Reads the columns ``case_id`` and ``transcript`` (a :class:`Transcript` as JSON, written by
    :func:`medverify.train.rollout.consultation_rollout`). The score is
    :meth:`medverify.consult.task.ConsultationTask.score`, the function ``consult-bench`` uses,
    so with ``process_weight=0`` the reward equals the benchmark's score of the same transcript.

    Args:
        scorer: the grader, its verdict memo and its concurrency bound.
        cases: the case records by id.
        rubric: ``core`` or ``generated``; both are the task's rubric without an LLM writer
            (the names are kept for existing configs).
        rubric_weight / process_weight: the weighted mean of the two parts.
    """

    __name__ = "consultation_reward"

    def __init__(
        self,
        scorer: RubricScorer,
        cases: dict[str, CaseRecord],
        *,
        rubric: str = "core",
        rubric_weight: float = 1.0,
        process_weight: float = 0.5,
    ) -> None:
        if rubric_weight + process_weight <= 0:
            raise ValueError("rubric_weight + process_weight must be positive")
        self.scorer = scorer
        self.cases = cases
        self.rubric = rubric
        self.rubric_weight = rubric_weight
        self.process_weight = process_weight

    async def evaluate(self, case: CaseRecord, transcript: Transcript) -> ConsultationScore:
        """The consultation task's score of one consultation."""
        task = ConsultationTask(case=case)
        rubric = await task.rubric(transcript)
        if self.rubric_weight == 0:
            rubric = rubric.model_copy(update={"items": [], "origins": [], "checks": {}})
        scored = await task.score(
            transcript,
            self.scorer.grader,
            rubric=rubric,
            memo=self.scorer.cache,
            limit=self.scorer.limit(),
            max_items=self.scorer.max_items,
        )
        if any(v.met is None for v in scored.verdicts):
            self.scorer.failures += 1
        return scored

    async def score_one(self, case: CaseRecord, transcript: Transcript) -> float | None:
        """The reward of one consultation (``None`` if its rubric could not be graded)."""
        scored = await self.evaluate(case, transcript)
        return scored.reward(rubric_weight=self.rubric_weight, process_weight=self.process_weight)

    async def __call__(
        self,
        completions: Sequence[Completion],
        case_id: Sequence[str],
        transcript: Sequence[str],
        **_: Any,
    ) -> list[float | None]:
        """One reward per rollout."""
        jobs = [
            self.score_one(self.cases[cid], Transcript.model_validate_json(t))
            for cid, t in zip(case_id, transcript, strict=True)
        ]
        return list(await asyncio.gather(*jobs))
