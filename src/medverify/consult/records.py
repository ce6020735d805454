"""Typed records of the consultation benchmark: what runs, what one consultation yields, results.

``ConsultResults`` extends HealthBench's ``results.json`` shape (overall, tags, model, grader,
failures, usage, cost, version, data hash) with what only a consultation has: the patient and
rubric-writer specs, per-dimension scores pulled out of the tags, process measures and a row per
consultation; tools that read HealthBench results read these too.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from medverify.cases.records import CaseRecord, Persona, Transcript
from medverify.consult.process import ProcessMetrics, ProcessSummary
from medverify.consult.task import ConsultationScore, ScanScores
from medverify.grading.records import RubricItem
from medverify.grading.results import RunResults
from medverify.grading.scoring import Stat

DIMENSIONS = (
    "diagnostic_accuracy",
    "consultation_logic",
    "treatment_rationality",
    "communication_empathy",
    "medical_ethics",
)


class ConsultUnit(BaseModel):
    """One case played with one persona: the unit of work (and of resume)."""

    key: str
    case: CaseRecord
    persona_name: str
    persona: Persona


class UnitOutcome(BaseModel):
    """Everything one consultation produced: transcript, rubric, verdicts, process measures."""

    key: str
    case_id: str
    persona_name: str
    transcript: Transcript
    rubric: list[RubricItem]
    rubric_warnings: list[str] = Field(default_factory=list)
    scored: ConsultationScore

    @property
    def process(self) -> ProcessMetrics:
        """What the consultation did, measured without a grader."""
        return self.scored.process


class CaseSummary(BaseModel):
    """One row of the results table: a consultation's score and what happened in it."""

    key: str
    case_id: str
    persona: str
    score: float | None
    record_diagnosis: str
    stated_diagnosis: str | None
    diagnosis_correct: bool
    facts_elicited: int
    facts_total: int
    doctor_turns: int
    termination_reason: str | None
    n_criteria: int
    n_grading_failures: int
    scan: ScanScores = Field(default_factory=ScanScores)
    n_evidence_checked: int = 0
    n_not_measured: int = 0


class ConsultResults(RunResults):
    """``results.json`` of a consultation benchmark run."""

    patient: str
    rubric_writer: str | None
    dimensions: dict[str, Stat]
    process: ProcessSummary
    scan: dict[str, float | None] = Field(default_factory=dict)
    cases: list[CaseSummary]
    failed_units: dict[str, str] = Field(default_factory=dict)
