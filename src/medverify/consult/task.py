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
from collections.abc import Callable, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from medverify.backends.base import Backend, Message
from medverify.cases.personas import persona_for
from medverify.cases.records import CaseRecord, Persona, Transcript, Turn
from medverify.consult.process import ProcessMetrics, process_metrics
from medverify.consult.render import grader_input
from medverify.grading import Grader, grade_rubric
from medverify.grading.consultation_grader import ConsultationGrader, is_offline
from medverify.grading.evidence import (
    ConsultationEvidence,
    DetectorCheck,
    EvidenceCheck,
    RevealedCheck,
)
from medverify.grading.grade_rubric import VerdictMemo
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


class ScanScores(BaseModel):
    """SCAN-bench-style sub-scores of one consultation, decided from evidence alone.

    Attributes:
        inquiry: weighted recall of the history checklist (the rubric's history items whose
            facts were revealed, by points); ``None`` when the rubric has none.
        exam_tests_recall: weighted recall of the examination and test checklist.
        exam_tests_precision: of everything examined or ordered, the share the record has a
            finding for (requests the record lacks were answered "normal" or "not available");
            ``None`` when nothing was examined or ordered.
        diagnosis_final: the single final diagnosis is the record's.
        diagnosis_in_differential: the record's diagnosis is final, hedged or in the
            differential, and not ruled out.
    """

    inquiry: float | None = None
    exam_tests_recall: float | None = None
    exam_tests_precision: float | None = None
    diagnosis_final: bool = False
    diagnosis_in_differential: bool = False


def scan_scores(
    case: CaseRecord,
    transcript: Transcript,
    checks: Mapping[str, EvidenceCheck],
    verdicts: Sequence[CriterionVerdict],
    evidence: ConsultationEvidence | None = None,
) -> ScanScores:
    """The sub-scores of a consultation from its evidence-checked verdicts.

    ``evidence`` is the consultation's record as the grader already read it (the closing
    statement parsed once); it is read here when not given.
    """
    history = {f.id for f in case.facts}
    findings = {f.id for f in (*case.exam_findings, *case.test_results)}
    asked = [0, 0]
    examined = [0, 0]
    for verdict in verdicts:
        check = checks.get(verdict.criterion)
        if not isinstance(check, RevealedCheck) or verdict.points <= 0 or verdict.met is None:
            continue
        tally = asked if set(check.fact_ids) <= history else examined
        if set(check.fact_ids) <= history or set(check.fact_ids) <= findings:
            tally[1] += verdict.points
            tally[0] += verdict.points if verdict.met else 0
    if evidence is None:
        evidence = ConsultationEvidence(case, transcript)
    obtained = {f for f in evidence.first_revealed if f in findings}
    extra = sum(len(t.requested) for t in transcript.turns)
    closing = evidence.closing
    return ScanScores(
        inquiry=asked[0] / asked[1] if asked[1] else None,
        exam_tests_recall=examined[0] / examined[1] if examined[1] else None,
        exam_tests_precision=len(obtained) / (len(obtained) + extra) if obtained or extra else None,
        diagnosis_final=closing.names_final(case.diagnosis),
        diagnosis_in_differential=closing.considers(case.diagnosis),
    )


class ConsultationScore(BaseModel):
    """How one consultation scored.

    Attributes:
        verdicts: one per rubric item (``met`` is ``None`` where grading failed).
        score: the HealthBench example score of the rubric; ``None`` when a verdict failed (the
            consultation is not scored, as in HealthBench runs) or no item is positive.
        metrics: ``overall`` and the score of every tag (``dimension:...``, ``axis:...``).
        process: what the consultation did, measured without a grader.
        scan: SCAN-style sub-scores (inquiry, examinations and tests, diagnosis).
        evidence_checked: how many items the consultation's evidence decided (the rest went
            to the grader, or offline to a detector).
        not_measured: criteria the offline verifier cannot decide (judgement items without a
            detector); they are left out of ``score`` and ``metrics``.
        judge_agreement: with ``judge_checked``, the share of evidence-checked items on which
            the grader agreed with the evidence (``None`` otherwise).
    """

    verdicts: list[CriterionVerdict]
    score: float | None
    metrics: dict[str, float] = Field(default_factory=dict)
    process: ProcessMetrics
    scan: ScanScores = Field(default_factory=ScanScores)
    evidence_checked: int = 0
    not_measured: list[str] = Field(default_factory=list)
    judge_agreement: float | None = None

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
        rubric: Rubric | None = None,
        memo: VerdictMemo | None = None,
        limit: asyncio.Semaphore | None = None,
        example_tags: Sequence[str] = (),
        evidence: bool = True,
        judge_checked: bool = False,
        max_items: int | None = None,
    ) -> ConsultationScore:
        """Grade the consultation against its rubric and measure its process.

        Args:
            transcript: the consultation.
            grader: decides the judgement items (and, with ``evidence=False``, every item).
            rubric: the rubric (default: :meth:`rubric` without a writer).
            memo: remembers verdicts (a run store, a verdict cache).
            limit: bounds grader calls in flight.
            example_tags: tags of the consultation as a whole (``persona:...``), scored like
                HealthBench's example tags.
            evidence: decide the rubric's evidence-checked items from the consultation record
                (:mod:`medverify.grading.evidence`) instead of asking ``grader``; with the
                offline local grader, judgement items go to the offline detectors or are
                reported as not measured (:mod:`medverify.grading.consultation_grader`).
            judge_checked: ask ``grader`` about the checked items too and report how often it
                agrees with the evidence (the evidence verdict is still the one scored).
            max_items: grade only the first N items (cheap smoke runs).
        """
        if rubric is None:
            rubric = await self.rubric(transcript)
        items = list(rubric.items)[:max_items] if max_items else list(rubric.items)
        checks = rubric.checks if evidence else {}
        judge: Grader = grader
        routed = None
        if checks or (evidence and is_offline(grader)):
            routed = ConsultationGrader(
                self.case, transcript, checks, grader, judge_checked=judge_checked
            )
            judge = routed
        conversation, response = grader_input(self.case, transcript)
        verdicts = await grade_rubric(judge, conversation, response, items, memo=memo, limit=limit)
        # Abstentions (not measured offline) are left out of the score, never counted as unmet.
        measured = [(i, v) for i, v in zip(items, verdicts, strict=True) if v.measured]
        metrics: dict[str, float] = {}
        if measured and all(v.met is not None for _, v in measured):
            metrics = example_metrics(
                [i for i, _ in measured], [bool(v.met) for _, v in measured], list(example_tags)
            )
        agreement = None
        if routed is not None and routed.agreement:
            pairs = list(routed.agreement.values())
            agreement = sum(1 for e, j in pairs if e == j) / len(pairs)
        return ConsultationScore(
            verdicts=verdicts,
            score=metrics.get(OVERALL),
            metrics=metrics,
            process=process_metrics(self.case, transcript),
            scan=scan_scores(
                self.case,
                transcript,
                rubric.checks,
                verdicts,
                routed.evidence if routed is not None else None,
            ),
            evidence_checked=sum(
                1
                for i in items
                if i.criterion in checks and not isinstance(checks[i.criterion], DetectorCheck)
            ),
            not_measured=[v.criterion for v in verdicts if not v.measured],
            judge_agreement=agreement,
        )
