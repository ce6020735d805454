"""The consultation task: one case and persona to consult on, and how a consultation of it scores.

Evaluation (``medverify consult-bench``, ``medverify demo``) and training (the consultation reward,
multi-turn rollouts) must judge a consultation the same way, or a model is trained towards one
score and measured on another. So both go through this one task, as nanochat's ``Task`` offers
``evaluate`` and ``reward`` over one definition:

* :meth:`ConsultationTask.environment` -- the patient simulator for the case and persona;
* :meth:`ConsultationTask.doctor_messages` -- what the doctor sees, including the last-turn nudge;
* :meth:`ConsultationTask.rubric` -- the rubric of the case and this transcript;
* :meth:`ConsultationTask.score` -- every criterion graded by the one rubric-grading step, the
  HealthBench example score, per-tag scores (the five dimensions, the axes) and the process
  measures. :meth:`ConsultationScore.reward` mixes the rubric score with the process measures for
  RL; with ``process_weight=0`` it *is* the benchmark's score.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from medverify.backends.base import Backend, Message
from medverify.cases.personas import persona_for
from medverify.cases.records import CaseRecord, Persona, Transcript, Turn
from medverify.consult.process import ProcessMetrics, process_metrics
from medverify.consult.render import grader_input
from medverify.grading import Grader, grade_rubric
from medverify.grading.grade_rubric import VerdictMemo
from medverify.grading.records import RubricItem
from medverify.grading.results import CriterionVerdict
from medverify.grading.scoring import OVERALL, example_metrics
from medverify.rubrics import Rubric, generate_rubric
from medverify.simulator.consult import (
    DEFAULT_DOCTOR_SYSTEM_PROMPT,
    DoctorTurn,
    doctor_messages,
    run_consultation,
)
from medverify.simulator.environment import ConsultationEnv
from medverify.simulator.fact_unit import OfflineFactUnit
from medverify.simulator.gate import DEFAULT_MAX_TURNS

DIMENSION_PREFIX = "dimension:"


class ConsultationScore(BaseModel):
    """How one consultation scored.

    Attributes:
        verdicts: one per rubric item (``met`` is ``None`` where grading failed).
        score: the HealthBench example score of the rubric; ``None`` when a verdict failed (the
            consultation is not scored, as in HealthBench runs) or no item is positive.
        metrics: ``overall`` and the score of every tag (``dimension:...``, ``axis:...``).
        process: what the consultation did, measured without a grader.
    """

    verdicts: list[CriterionVerdict]
    score: float | None
    metrics: dict[str, float] = Field(default_factory=dict)
    process: ProcessMetrics

    @property
    def dimensions(self) -> dict[str, float]:
        """Score per clinical dimension (the ``dimension:`` tags)."""
        return {
            tag.removeprefix(DIMENSION_PREFIX): value
            for tag, value in self.metrics.items()
            if tag.startswith(DIMENSION_PREFIX)
        }

    @property
    def process_score(self) -> float:
        """Mean of: the diagnosis named, history-fact recall, finding recall (each in [0, 1])."""
        p = self.process
        found = p.findings_elicited / p.findings_total if p.findings_total else 0.0
        return (float(p.diagnosis_correct) + p.fact_recall + found) / 3.0

    def reward(self, *, rubric_weight: float = 1.0, process_weight: float = 0.5) -> float | None:
        """The weighted mean of the rubric score and the process score (``None`` if unscored)."""
        if rubric_weight + process_weight <= 0:
            raise ValueError("rubric_weight + process_weight must be positive")
        total = process_weight * self.process_score
        if rubric_weight > 0:
            if self.score is None:
                return None
            total += rubric_weight * self.score
        return total / (rubric_weight + process_weight)


class ConsultationTask(BaseModel):
    """A case to consult on, with the persona the patient plays and the consultation's limits.

    Args:
        case: the patient's record.
        persona: how the patient talks (default: the case's own persona, else a neutral one).
        max_turns: most doctor turns; the last one is nudged to give ``DIAGNOSIS:``.
        seed: fixes the patient's wording and the doctor's sampling seed.
        system_prompt: the doctor's instructions.
    """

    model_config = ConfigDict(frozen=True)

    case: CaseRecord
    persona: Persona | None = None
    max_turns: int = DEFAULT_MAX_TURNS
    seed: int = 0
    system_prompt: str = DEFAULT_DOCTOR_SYSTEM_PROMPT

    def patient_persona(self) -> Persona:
        """The persona the patient plays."""
        return self.persona if self.persona is not None else persona_for(self.case)

    def environment(
        self, *, patient: Backend | None = None, fact_unit: OfflineFactUnit | None = None
    ) -> ConsultationEnv:
        """The patient simulator for this case (offline when ``patient`` is ``None``)."""
        return ConsultationEnv.create(
            self.case,
            patient=patient,
            persona=self.persona,
            seed=self.seed,
            max_turns=self.max_turns,
            offline_fact_unit=fact_unit,
        )

    def doctor_messages(self, transcript: Transcript, *, last_turn: bool = False) -> list[Message]:
        """What the doctor sees: its instructions, the dialogue, and on its last turn the nudge."""
        return doctor_messages(transcript, self.system_prompt, last_turn=last_turn)

    async def play(
        self,
        doctor: Backend | DoctorTurn,
        *,
        patient: Backend | None = None,
        fact_unit: OfflineFactUnit | None = None,
        on_turn: Callable[[Turn], None] | None = None,
    ) -> Transcript:
        """One consultation of this task with a doctor model (or turn function)."""
        return await run_consultation(
            self.case,
            doctor,
            patient=patient,
            persona=self.persona,
            seed=self.seed,
            max_turns=self.max_turns,
            doctor_system_prompt=self.system_prompt,
            on_turn=on_turn,
            fact_unit=fact_unit,
        )

    async def rubric(self, transcript: Transcript, *, writer: Backend | None = None) -> Rubric:
        """The rubric of the case and this consultation (the core, plus the writer's items)."""
        return await generate_rubric(self.case, transcript, writer=writer, seed=self.seed)

    async def score(
        self,
        transcript: Transcript,
        grader: Grader,
        *,
        items: Sequence[RubricItem] | None = None,
        memo: VerdictMemo | None = None,
        limit: asyncio.Semaphore | None = None,
        example_tags: Sequence[str] = (),
    ) -> ConsultationScore:
        """Grade the consultation against its rubric and measure its process.

        Args:
            transcript: the consultation.
            grader: decides every criterion.
            items: the rubric (default: :meth:`rubric` without a writer).
            memo: remembers verdicts (a run store, a verdict cache).
            limit: bounds grader calls in flight.
            example_tags: tags of the consultation as a whole (``persona:...``), scored like
                HealthBench's example tags.
        """
        if items is None:
            items = (await self.rubric(transcript)).items
        items = list(items)
        conversation, response = grader_input(self.case, transcript)
        verdicts = await grade_rubric(grader, conversation, response, items, memo=memo, limit=limit)
        metrics: dict[str, float] = {}
        if verdicts and all(v.met is not None for v in verdicts):
            metrics = example_metrics(items, [bool(v.met) for v in verdicts], list(example_tags))
        return ConsultationScore(
            verdicts=verdicts,
            score=metrics.get(OVERALL),
            metrics=metrics,
            process=process_metrics(self.case, transcript),
        )
