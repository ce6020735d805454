"""The Fact Unit: which facts of the record does the doctor's turn ask about?

Baichuan-M2's patient simulator splits the patient in two so that it cannot leak: a Fact Unit that
sees the record and decides *what* may be said, and an Affective Unit that sees only those facts
and decides *how* to say them. This module is the first half. It answers from the record only,
never reveals a fact the turn does not ask about, and routes examinations and tests to the
record's findings (an item the record lacks is reported as "not in the record", never invented).

Two implementations share :class:`FactSelection` and the rule-based reading of the turn
(:mod:`~medverify.simulator.doctor_turn`):

* :class:`OfflineFactUnit` (here) -- rules first, embeddings for the rest: a question the rules
  leave open is matched by meaning to the facts with all-MiniLM-L6-v2
  (:mod:`medverify.text.embeddings`).
* :class:`~medverify.simulator.fact_unit_llm.LLMFactUnit` -- any
  :class:`~medverify.backends.base.Backend` picks fact ids from a numbered list; the reply is
  validated (unknown ids dropped) and a model that does not answer JSON after bounded retries
  falls back to the offline unit, recorded in ``mode``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field

from medverify.cases.records import HISTORY_CATEGORIES, CaseRecord, Fact
from medverify.simulator.doctor_turn import (
    UNSPECIFIED_TESTS,
    Intent,
    Kind,
    ParsedTurn,
    doctor_sentences,
    in_record_order,
    parse_turn,
)
from medverify.text import embeddings
from medverify.text.embeddings import Embedder

__all__ = [
    "UNSPECIFIED_TESTS",
    "FactSelection",
    "FactUnit",
    "Intent",
    "Kind",
    "OfflineFactUnit",
    "Thresholds",
    "doctor_sentences",
    "selection_from",
]


class FactSelection(BaseModel):
    """What one doctor turn asks for, decided from the record alone.

    Attributes:
        fact_ids: ids of the record's facts, exam findings and test results to reveal, in record
            order.
        kind: ``test`` if a test was ordered, else ``exam`` if an examination was requested, else
            ``question`` if the turn asked something, else ``other``.
        requested_items: the exams and tests the doctor named ("blood pressure", "CT").
        missing_exam_items: requested examinations the record has no finding for; reported as
            normal readings (as AgentClinic's measurement agent does).
        missing_test_items: requested tests the record has no result for; reported as not
            available (a test value is never invented).
        intent: why nothing or something special is answered (a diagnosis question, an attempt to
            break character, "anything else?", "what brings you in?").
        yes_no: the turn is a closed question (the patient's "nothing" answer depends on it).
        unanswered_topics: history topics asked about that the record is silent on.
        mode: which unit decided: ``offline``, ``llm``, or ``llm_fallback`` (the model failed).
        scores: best embedding similarity per fact id, for tuning and debugging.
        volunteered_ids: those of ``fact_ids`` that only an open invitation ("anything
            else?") brought out; the environment lets a patient volunteer a few per
            consultation (:data:`~medverify.simulator.environment.MAX_VOLUNTEERED`).
    """

    fact_ids: list[str] = Field(default_factory=list)
    kind: Kind = "other"
    requested_items: list[str] = Field(default_factory=list)
    missing_exam_items: list[str] = Field(default_factory=list)
    missing_test_items: list[str] = Field(default_factory=list)
    intent: Intent = "none"
    yes_no: bool = False
    unanswered_topics: list[str] = Field(default_factory=list)
    mode: Literal["offline", "llm", "llm_fallback"] = "offline"
    scores: dict[str, float] = Field(default_factory=dict)
    volunteered_ids: list[str] = Field(default_factory=list)


class FactUnit(Protocol):
    """Decides which facts a doctor turn asks about (offline or with a model)."""

    async def select(
        self, case: CaseRecord, doctor_turn: str, *, revealed: Iterable[str] = ()
    ) -> FactSelection:
        """The facts ``doctor_turn`` asks about; ``revealed`` are those already told."""
        ...


class Thresholds(BaseModel):
    """Embedding similarity thresholds of the offline unit (tuned with ``simulate eval``).

    Attributes:
        select: a fact at least this similar to a question sentence is selected.
        best: the single most similar fact is selected when at least this similar.
        best_silent_topic: the same, for a question on a known topic the record has no fact for
            ("Do you use drugs?" must not be answered with "Non-smoker").
        margin: ... and when it beats the runner-up by this much.
        finding: an exam/test request with no recognised item selects findings this similar.
        max_per_sentence: most facts one sentence selects by similarity.
    """

    select: float = 0.6
    best: float = 0.36
    best_silent_topic: float = 0.5
    margin: float = 0.08
    finding: float = 0.5
    max_per_sentence: int = 2


def _intent(p: ParsedTurn) -> Intent:
    for intent in ("facts", "anything_else", "chief_complaint", "diagnosis_query", "manipulation"):
        if intent in p.intents:
            return intent  # type: ignore[return-value]
    return "none"


def _kind(p: ParsedTurn) -> Kind:
    if p.test:
        return "test"
    if p.exam:
        return "exam"
    if p.asked:
        return "question"
    return "other"


def selection_from(
    p: ParsedTurn, ids: list[str], mode: str, scores: dict[str, float]
) -> FactSelection:
    """The :class:`FactSelection` of a parsed turn once a unit has chosen the fact ids.

    Args:
        p: the rule-based reading of the turn.
        ids: the chosen fact ids, in record order.
        mode: the deciding unit (``offline``, ``llm`` or ``llm_fallback``).
        scores: best embedding similarity per fact id (empty for the LLM unit).

    Returns:
        The selection, with the requested and missing items and the intent of the turn.
        Exam findings and test results are those the rules selected for the request, never
        more, and a turn that only requests an examination or a test gets no history fact
        besides: a model that picks every fact for "a slit lamp examination" gets none.
    """
    ruled = set(p.selected)
    asked = p.asked or bool(p.open_questions or p.silent_topic_questions)
    history_ok = asked or not (p.exam or p.test)
    ids = [i for i in ids if i in ruled or (history_ok and i not in p.finding_ids)]
    return FactSelection(
        fact_ids=ids,
        kind=_kind(p),
        requested_items=list(dict.fromkeys(p.requested)),
        missing_exam_items=list(dict.fromkeys(p.missing_exam)),
        missing_test_items=list(dict.fromkeys(p.missing_test)),
        intent=_intent(p) if ids or p.intents else "none",
        yes_no=p.yes_no,
        unanswered_topics=list(dict.fromkeys(p.unanswered)),
        mode=mode,  # type: ignore[arg-type]
        scores=scores,
        volunteered_ids=[i for i in ids if i in p.volunteered],
    )


class OfflineFactUnit:
    """Rules plus sentence embeddings; deterministic, no model calls.

    Args:
        embedder: sentence embedder (default: the process-wide all-MiniLM-L6-v2).
        thresholds: similarity thresholds.
    """

    def __init__(
        self, embedder: Embedder | None = None, thresholds: Thresholds | None = None
    ) -> None:
        self._embedder = embedder
        self.thresholds = thresholds or Thresholds()
        self._fact_vectors: dict[tuple[str, int], tuple[list[Fact], list[Fact], np.ndarray]] = {}

    @property
    def embedder(self) -> Embedder:
        """The sentence embedder (created on first use)."""
        if self._embedder is None:
            self._embedder = embeddings.default_embedder()
        return self._embedder

    def prepare(self, case: CaseRecord) -> None:
        """Embed the case's facts now (otherwise done on the first turn that needs them)."""
        self._vectors(case)

    def _vectors(self, case: CaseRecord) -> tuple[list[Fact], list[Fact], np.ndarray]:
        key = (case.id, hash(tuple((f.id, f.text, tuple(f.keywords)) for f in case.all_facts())))
        cached = self._fact_vectors.get(key)
        if cached is None:
            history = [f for f in case.facts if f.category in HISTORY_CATEGORIES]
            findings = [*case.exam_findings, *case.test_results]
            texts = [f"{f.text} {', '.join(f.keywords)}".strip() for f in [*history, *findings]]
            cached = (history, findings, self.embedder.embed(texts))
            if len(self._fact_vectors) > 256:
                self._fact_vectors.clear()
            self._fact_vectors[key] = cached
        return cached

    async def select(
        self, case: CaseRecord, doctor_turn: str, *, revealed: Iterable[str] = ()
    ) -> FactSelection:
        """The facts ``doctor_turn`` asks about (see :meth:`select_sync`)."""
        return self.select_sync(case, doctor_turn, revealed=revealed)

    def select_sync(
        self, case: CaseRecord, doctor_turn: str, *, revealed: Iterable[str] = ()
    ) -> FactSelection:
        """The facts ``doctor_turn`` asks about, decided by rules, then embeddings."""
        p = parse_turn(case, doctor_turn, revealed)
        scores: dict[str, float] = {}
        extra: list[str] = []
        if p.open_questions:
            extra.extend(self._by_meaning(case, p.open_questions, scores, self.thresholds.best))
        if p.silent_topic_questions:
            bar = self.thresholds.best_silent_topic
            extra.extend(self._by_meaning(case, p.silent_topic_questions, scores, bar))
        if extra:
            p.intents.append("facts")
        ids = in_record_order(case, [*p.selected, *extra])
        return selection_from(p, ids, "offline", scores)

    def _by_meaning(
        self, case: CaseRecord, sentences: list[str], scores: dict[str, float], best: float
    ) -> list[str]:
        history, _findings, matrix = self._vectors(case)
        if not history:
            return []
        t = self.thresholds
        queries = self.embedder.embed(sentences)
        sims = queries @ matrix[: len(history)].T
        chosen: list[str] = []
        for row in sims:
            order = np.argsort(-row)
            picked = [history[i].id for i in order[: t.max_per_sentence] if row[i] >= t.select]
            if not picked:
                top = order[0]
                runner = row[order[1]] if len(order) > 1 else -1.0
                if row[top] >= best and row[top] - runner >= t.margin:
                    picked = [history[top].id]
            for i in order[:3]:
                fid = history[i].id
                scores[fid] = max(scores.get(fid, -1.0), round(float(row[i]), 3))
            chosen.extend(picked)
        return chosen
