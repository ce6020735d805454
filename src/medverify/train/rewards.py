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
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from medverify.cases.records import CaseRecord, Transcript
from medverify.grading import Grade, Grader, RubricItem, example_score
from medverify.runs.kv import SqliteKV

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
    from medverify.cases.diagnosis import names_diagnosis

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


class GradeCache:
    """Verdicts by (grader, conversation, response, criterion); in memory, optionally on disk.

    Only real verdicts are cached: a failure is retried next time.
    """

    def __init__(self, path: str | None = None) -> None:
        self._mem: dict[str, bool] = {}
        self._kv = SqliteKV(path) if path else None
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(
        grader: str, conversation: Sequence[dict[str, str]], response: str, item: RubricItem
    ) -> str:
        """A stable hash of everything that decides the verdict."""
        blob = json.dumps(
            [grader, list(conversation), response, item.criterion, item.points], sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> bool | None:
        """The cached verdict, or ``None``."""
        if key in self._mem:
            self.hits += 1
            return self._mem[key]
        if self._kv is not None:
            value = self._kv.get("grade", key)
            if value is not None:
                self._mem[key] = bool(value)
                self.hits += 1
                return bool(value)
        self.misses += 1
        return None

    def put(self, key: str, met: bool) -> None:
        """Remember a verdict."""
        self._mem[key] = met
        if self._kv is not None:
            self._kv.put("grade", key, met)

    def close(self) -> None:
        """Close the on-disk cache."""
        if self._kv is not None:
            self._kv.close()


class RubricScorer:
    """Grades a response against rubric items and returns the HealthBench example score.

    Args:
        grader: any :class:`~medverify.grading.Grader`.
        concurrency: most grader calls in flight.
        cache: verdict cache (default: in memory).
        max_items: grade only the first N items (cheap smoke runs); ``None`` for all.
    """

    def __init__(
        self,
        grader: Grader,
        *,
        concurrency: int = 16,
        cache: GradeCache | None = None,
        max_items: int | None = None,
    ) -> None:
        self.grader = grader
        self.concurrency = concurrency
        self.cache = cache or GradeCache()
        self.max_items = max_items
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.failures = 0

    def _sem(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore, self._loop = asyncio.Semaphore(self.concurrency), loop
        return self._semaphore

    async def _grade(
        self, conversation: Sequence[dict[str, str]], response: str, item: RubricItem
    ) -> bool | None:
        key = GradeCache.key(self.grader.spec, conversation, response, item)
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        async with self._sem():
            try:
                grade: Grade = await self.grader.grade(conversation, response, item)
            except Exception as exc:
                log.warning("grader raised on %r: %s", item.criterion[:60], exc)
                return None
        if grade.met is None:
            log.info("grading failed (%s): %s", item.criterion[:60], grade.error)
            return None
        self.cache.put(key, grade.met)
        return grade.met

    async def score(
        self, conversation: Sequence[dict[str, str]], response: str, items: Sequence[RubricItem]
    ) -> float | None:
        """Example score, or ``None`` if any criterion could not be graded or none is positive."""
        items = list(items)[: self.max_items] if self.max_items else list(items)
        verdicts = await asyncio.gather(*(self._grade(conversation, response, i) for i in items))
        if any(v is None for v in verdicts):
            self.failures += 1
            return None
        return example_score(items, [bool(v) for v in verdicts])


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


def case_rubric_items(case: CaseRecord, transcript: Transcript | None = None) -> list[RubricItem]:
    """The case's core rubric (``medverify.rubrics.core_rubric``).

    Falls back, while that module is not installed, to a minimal rubric read off the record:
    the diagnosis, each red flag and each management step.
    """
    try:
        from medverify.rubrics import core_rubric  # type: ignore[attr-defined]
    except ImportError:
        core_rubric = None
    if core_rubric is not None:
        return list(core_rubric(case, transcript).items)
    items = [
        RubricItem(
            criterion=f"States that the most likely diagnosis is {case.diagnosis}.",
            points=5,
            tags=["axis:accuracy", "dimension:diagnostic_accuracy"],
        )
    ]
    items += [
        RubricItem(
            criterion=f"Asks about or addresses the red flag: {flag}.",
            points=3,
            tags=["axis:completeness", "dimension:consultation_logic"],
        )
        for flag in case.red_flags
    ]
    items += [
        RubricItem(
            criterion=f"Recommends: {step}.",
            points=2,
            tags=["axis:completeness", "dimension:treatment_rationality"],
        )
        for step in case.management
    ]
    return items


async def generated_rubric_items(case: CaseRecord, transcript: Transcript) -> list[RubricItem]:
    """A rubric generated for this case and transcript (``medverify.rubrics.generate_rubric``)."""
    try:
        from medverify.rubrics import generate_rubric  # type: ignore[attr-defined]
    except ImportError:
        return case_rubric_items(case, transcript)
    rubric = await generate_rubric(case, transcript)
    return list(rubric.items)


def transcript_grader_input(
    case: CaseRecord, transcript: Transcript
) -> tuple[list[dict[str, str]], str]:
    """``(conversation, response)`` for the grader: the case presentation, the whole dialogue."""
    try:
        from medverify.consult.render import grader_input
    except ImportError:
        grader_input = None
    if grader_input is not None:
        return grader_input(case, transcript)
    text = "\n".join(f"{t.role.capitalize()}: {t.text}" for t in transcript.turns)
    return [{"role": "user", "content": case.chief_complaint}], text


def process_score(case: CaseRecord, transcript: Transcript) -> float:
    """Mean of: the diagnosis named, history-fact recall, finding recall (each in [0, 1]).

    Read off the consultation benchmark's process measures
    (``medverify.consult.process.process_metrics``) where that module is installed, so the
    reward and the benchmark count the same things.
    """
    try:
        from medverify.consult.process import process_metrics
    except ImportError:
        process_metrics = None
    if process_metrics is not None:
        m = process_metrics(case, transcript)
        found = m.findings_elicited / m.findings_total if m.findings_total else 0.0
        return (float(m.diagnosis_correct) + m.fact_recall + found) / 3.0
    from medverify.cases.diagnosis import names_diagnosis

    revealed = transcript.revealed()
    history = {f.id for f in case.facts}
    findings = {f.id for f in (*case.exam_findings, *case.test_results)}
    named = bool(transcript.final_diagnosis) and names_diagnosis(
        transcript.final_diagnosis or "", case.diagnosis
    )
    recall = len(revealed & history) / len(history) if history else 0.0
    found = len(revealed & findings) / len(findings) if findings else 0.0
    return (float(named) + recall + found) / 3.0


class ConsultationReward:
    """Multi-turn reward: rubric score of the whole consultation plus process measures.

    Reads the columns ``case_id`` and ``transcript`` (a :class:`Transcript` as JSON, written by
    :func:`medverify.train.rollout.consultation_rollout`).

    Args:
        scorer: grades the rubric.
        cases: the case records by id.
        rubric: ``core`` (the case's core rubric) or ``generated``.
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

    async def score_one(self, case: CaseRecord, transcript: Transcript) -> float | None:
        """The reward of one consultation (``None`` if its rubric could not be graded)."""
        parts = self.process_weight * process_score(case, transcript)
        if self.rubric_weight > 0:
            if self.rubric == "generated":
                items = await generated_rubric_items(case, transcript)
            else:
                items = case_rubric_items(case, transcript)
            conversation, response = transcript_grader_input(case, transcript)
            rubric_score = await self.scorer.score(conversation, response, items)
            if rubric_score is None:
                return None
            parts += self.rubric_weight * rubric_score
        return parts / (self.rubric_weight + self.process_weight)

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
