"""Case records, personas and transcripts: the typed data the patient simulator runs on.

A case record is the ground truth of one patient (DESIGN.md "Case record"): atomic facts the
patient may reveal when asked, exam findings and test results revealed only when examined or
ordered, and what must stay hidden from the patient's speech (the diagnosis and differential).
A persona says how the patient talks. A transcript is what happened in one consultation.
Used by ``medverify simulate``, ``medverify cases import``, the rubric generator and the
consultation benchmark.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

FactCategory = Literal[
    "history", "symptom", "medication", "allergy", "social", "family", "exam", "test"
]
HealthLiteracy = Literal["low", "medium", "high"]
Verbosity = Literal["terse", "normal", "talkative"]
TerminationReason = Literal["diagnosis", "turn_limit", "patient_left"]

#: Fact categories a doctor learns by asking (exam and test facts come from examining, ordering).
HISTORY_CATEGORIES = frozenset({"history", "symptom", "medication", "allergy", "social", "family"})


class Fact(BaseModel):
    """One atomic, checkable piece of the record."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    category: FactCategory
    text: str = Field(min_length=1)
    keywords: list[str] = Field(default_factory=list)


class Demographics(BaseModel):
    """Who the patient is."""

    model_config = ConfigDict(extra="forbid")

    age: int = Field(ge=0, le=120)
    sex: str = Field(min_length=1)
    occupation: str | None = None


class Persona(BaseModel):
    """How the patient talks and behaves (not what they know).

    ``mbti`` holds the four MBTI-style letters (e.g. ``ISTJ``): extraversion/introversion,
    sensing/intuition, thinking/feeling, judging/perceiving, as Baichuan-M2 describes its
    personas. ``patience`` is the number of unhelpful doctor turns the patient tolerates before
    leaving (``None``: never leaves).
    """

    model_config = ConfigDict(extra="forbid")

    personality: str = "calm and cooperative"
    mbti: str | None = Field(default=None, pattern=r"^[EI][SN][TF][JP]$")
    health_literacy: HealthLiteracy = "medium"
    verbosity: Verbosity = "normal"
    emotional_state: str = "a little worried"
    language_style: str | None = None
    social_background: str | None = None
    patience: int | None = Field(default=None, ge=1)


#: Findings fields of a case record, with the category their facts must carry.
_FINDING_KINDS = {
    "exam_findings": ("exam", "exam finding"),
    "test_results": ("test", "test result"),
}


class CaseRecord(BaseModel):
    """The ground truth of one simulated patient."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    demographics: Demographics
    chief_complaint: str = Field(min_length=1)
    facts: list[Fact] = Field(min_length=1)
    exam_findings: list[Fact] = Field(default_factory=list)
    test_results: list[Fact] = Field(default_factory=list)
    diagnosis: str = Field(min_length=1)
    differential: list[str] = Field(default_factory=list)
    red_flags: list[str] = Field(default_factory=list)
    management: list[str] = Field(default_factory=list)
    persona: Persona | None = None
    source: str = Field(min_length=1)

    @field_validator("exam_findings", "test_results")
    @classmethod
    def _finding_category(cls, facts: list[Fact], info: ValidationInfo) -> list[Fact]:
        wanted, label = _FINDING_KINDS[info.field_name]
        for fact in facts:
            if fact.category != wanted:
                raise ValueError(f"{label} {fact.id!r} must have category '{wanted}'")
        return facts

    @model_validator(mode="after")
    def _unique_ids(self) -> CaseRecord:
        seen: set[str] = set()
        for fact in self.all_facts():
            if fact.id in seen:
                raise ValueError(f"fact id {fact.id!r} is used twice")
            seen.add(fact.id)
        return self

    def all_facts(self) -> list[Fact]:
        """History facts, exam findings and test results together."""
        return [*self.facts, *self.exam_findings, *self.test_results]

    def fact(self, fact_id: str) -> Fact:
        """A fact by id."""
        for fact in self.all_facts():
            if fact.id == fact_id:
                return fact
        raise KeyError(fact_id)


class Turn(BaseModel):
    """One utterance of a consultation.

    Attributes:
        role: who spoke.
        text: what was said.
        revealed_fact_ids: (patient turns) the record facts this reply revealed.
        requested: (patient turns) examinations and tests the doctor asked for that the record
            has no finding for, answered "normal" or "not available"; with the revealed exam
            and test findings, they are everything the doctor examined or ordered.
    """

    role: Literal["doctor", "patient"]
    text: str
    revealed_fact_ids: list[str] = Field(default_factory=list)
    requested: list[str] = Field(default_factory=list)


class Transcript(BaseModel):
    """A consultation as it happened (DESIGN.md "Consultation transcript")."""

    case_id: str
    persona: Persona
    turns: list[Turn] = Field(default_factory=list)
    termination_reason: TerminationReason | None = None
    final_diagnosis: str | None = None
    doctor: str = ""
    patient: str = ""
    max_turns: int | None = Field(
        None,
        ge=1,
        description="the doctor's turn budget (its last turn was asked to conclude); None: unknown",
    )

    def revealed(self) -> set[str]:
        """Ids of every fact the patient revealed."""
        return {fid for turn in self.turns for fid in turn.revealed_fact_ids}
