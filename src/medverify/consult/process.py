"""Process measures of one consultation: what the doctor did, read off the transcript.

Rubric scores say how well the doctor did by a clinician's standards; process measures say what
happened, without a grader: how many turns and questions, how much of the record the doctor
drew out, whether the stated diagnosis names the record's, whether red flags were addressed.
They are cheap, exact and grader-independent, so the report can show them beside the scores
(a model that scores low *and* elicited nothing is a different problem from one that asked
everything and then concluded wrongly).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, Field

from medverify.cases.closing import names_condition
from medverify.cases.diagnosis import names_diagnosis
from medverify.cases.records import CaseRecord, TerminationReason, Transcript
from medverify.grading.evidence import repeated_turns

_STOPWORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "from",
        "that",
        "this",
        "into",
        "onto",
        "than",
        "then",
        "due",
        "its",
        "not",
        "non",
        "are",
        "was",
        "were",
        "has",
        "have",
        "had",
    ]
)


def content_words(text: str) -> set[str]:
    """Lower-case words of three or more letters, minus function words."""
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2 and w not in _STOPWORDS}


def diagnosis_named(stated: str | None, truth: str) -> bool:
    """Whether the stated diagnosis names the record's (any written variant or its initialism).

    Strict on purpose (a process measure, not a grade): "pneumonia" does not name "community
    acquired pneumonia". The rubric's diagnostic-accuracy items, judged by the grader, decide
    whether a differently worded diagnosis is right.
    """
    return bool(stated) and names_diagnosis(stated or "", truth)


def addressed(doctor_text: str, concern: str) -> bool:
    """Whether the doctor's words cover at least half the content words of a concern."""
    wanted = content_words(concern)
    if not wanted:
        return False
    return len(wanted & content_words(doctor_text)) * 2 >= len(wanted)


class ProcessMetrics(BaseModel):
    """What one consultation did, measured without a grader.

    ``diagnosis_given`` counts a final assessment only when it names a condition
    (:func:`~medverify.cases.closing.names_condition`), not any text after ``DIAGNOSIS:``.
    """

    doctor_turns: int
    questions_asked: int
    facts_elicited: int
    facts_total: int
    findings_elicited: int
    findings_total: int
    diagnosis_given: bool
    diagnosis_correct: bool
    red_flags_total: int
    red_flags_addressed: int
    termination_reason: TerminationReason | None
    repeated_turns: int | None = Field(
        None,
        description="doctor turns that repeat an earlier one (None: a score stored before this "
        "was measured); the rubric's repeat item is charged once, this counts every repeat",
    )

    @property
    def fact_recall(self) -> float:
        """Share of the record's history facts the doctor drew out."""
        return self.facts_elicited / self.facts_total if self.facts_total else 0.0


def process_metrics(case: CaseRecord, transcript: Transcript) -> ProcessMetrics:
    """Measure one consultation against its case record."""
    doctor_turns = [t.text for t in transcript.turns if t.role == "doctor"]
    revealed = transcript.revealed()
    history = {f.id for f in case.facts}
    findings = {f.id for f in (*case.exam_findings, *case.test_results)}
    doctor_text = "\n".join(doctor_turns)
    correct = diagnosis_named(transcript.final_diagnosis, case.diagnosis)
    return ProcessMetrics(
        doctor_turns=len(doctor_turns),
        questions_asked=sum(text.count("?") for text in doctor_turns),
        facts_elicited=len(revealed & history),
        facts_total=len(history),
        findings_elicited=len(revealed & findings),
        findings_total=len(findings),
        diagnosis_given=correct or names_condition(transcript.final_diagnosis),
        diagnosis_correct=correct,
        red_flags_total=len(case.red_flags),
        red_flags_addressed=sum(1 for flag in case.red_flags if addressed(doctor_text, flag)),
        termination_reason=transcript.termination_reason,
        repeated_turns=len(repeated_turns(transcript)),
    )


class ProcessSummary(BaseModel):
    """Process measures averaged over the consultations of a run."""

    n: int
    mean_doctor_turns: float
    mean_questions_asked: float
    mean_fact_recall: float
    mean_finding_recall: float | None
    diagnosis_given_rate: float
    diagnosis_correct_rate: float
    red_flags_addressed_rate: float | None
    terminations: dict[str, int]
    mean_repeated_turns: float | None = Field(
        None, description="over the consultations where repeats were counted (None: none)"
    )


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def summarize_process(metrics: Sequence[ProcessMetrics]) -> ProcessSummary:
    """Averages over consultations; rates over cases that have the thing (findings, red flags)."""
    with_findings = [m for m in metrics if m.findings_total]
    flags = sum(m.red_flags_total for m in metrics)
    repeats = [m.repeated_turns for m in metrics if m.repeated_turns is not None]
    terminations: dict[str, int] = {}
    for m in metrics:
        reason = m.termination_reason or "stopped"
        terminations[reason] = terminations.get(reason, 0) + 1
    return ProcessSummary(
        n=len(metrics),
        mean_doctor_turns=_mean([m.doctor_turns for m in metrics]),
        mean_questions_asked=_mean([m.questions_asked for m in metrics]),
        mean_fact_recall=_mean([m.fact_recall for m in metrics]),
        mean_finding_recall=(
            _mean([m.findings_elicited / m.findings_total for m in with_findings])
            if with_findings
            else None
        ),
        diagnosis_given_rate=_mean([float(m.diagnosis_given) for m in metrics]),
        diagnosis_correct_rate=_mean([float(m.diagnosis_correct) for m in metrics]),
        red_flags_addressed_rate=(
            sum(m.red_flags_addressed for m in metrics) / flags if flags else None
        ),
        terminations=dict(sorted(terminations.items())),
        mean_repeated_turns=_mean(repeats) if repeats else None,
    )
