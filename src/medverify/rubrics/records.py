"""The rubric record and its tag vocabulary.

A generated rubric is a list of HealthBench rubric items (:class:`~medverify.grading.records.
RubricItem`: criterion, points -10..10 but not 0, tags), so the grader and the scoring functions
that run HealthBench score it unchanged. Each item carries exactly one ``dimension:<name>`` tag
(Baichuan-M2's five clinical dimensions) and exactly one HealthBench ``axis:<name>`` tag, which
lets the consultation benchmark report a score per dimension and per axis with the same
tag-scoring code. :class:`Rubric` adds what a result needs to be reproducible and auditable: the
case, the generator and its version, the writer, the seed, where each item came from, and every
warning the generator raised (a writer that failed is a warning, never a crash).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from medverify.grading.evidence import EvidenceCheck
from medverify.grading.records import RubricItem

#: Bumped whenever the deterministic core would produce different items for the same case.
GENERATOR_VERSION = "1.1"

Dimension = Literal[
    "diagnostic_accuracy",
    "consultation_logic",
    "treatment_rationality",
    "communication_empathy",
    "medical_ethics",
]
Axis = Literal[
    "accuracy",
    "completeness",
    "communication_quality",
    "context_awareness",
    "instruction_following",
]
#: Where an item came from: the case record, this consultation's transcript, or the LLM writer.
Origin = Literal["core", "transcript", "writer"]

DIMENSIONS: tuple[str, ...] = (
    "diagnostic_accuracy",
    "consultation_logic",
    "treatment_rationality",
    "communication_empathy",
    "medical_ethics",
)
AXES: tuple[str, ...] = (
    "accuracy",
    "completeness",
    "communication_quality",
    "context_awareness",
    "instruction_following",
)
DIMENSION_PREFIX = "dimension:"
AXIS_PREFIX = "axis:"


def item(criterion: str, points: int, dimension: Dimension, axis: Axis) -> RubricItem:
    """A rubric item with its one dimension tag and one axis tag.

    Args:
        criterion: what a grader looks for.
        points: the item's weight, negative for a fault.
        dimension: the clinical dimension it scores.
        axis: the HealthBench axis it scores.

    Returns:
        The HealthBench rubric item.
    """
    return RubricItem(
        criterion=criterion,
        points=points,
        tags=[f"{DIMENSION_PREFIX}{dimension}", f"{AXIS_PREFIX}{axis}"],
    )


def tag_values(rubric_item: RubricItem, prefix: str) -> list[str]:
    """The values of an item's tags with ``prefix``.

    Args:
        rubric_item: the item.
        prefix: ``"dimension:"`` or ``"axis:"``.

    Returns:
        The tags' values without the prefix, in tag order.
    """
    return [t[len(prefix) :] for t in rubric_item.tags if t.startswith(prefix)]


def dimension_of(rubric_item: RubricItem) -> str | None:
    """The item's dimension, or ``None`` unless it has exactly one dimension tag."""
    values = tag_values(rubric_item, DIMENSION_PREFIX)
    return values[0] if len(values) == 1 else None


def axis_of(rubric_item: RubricItem) -> str | None:
    """The item's HealthBench axis, or ``None`` unless it has exactly one axis tag."""
    values = tag_values(rubric_item, AXIS_PREFIX)
    return values[0] if len(values) == 1 else None


class Rubric(BaseModel):
    """A generated rubric for one case (and, when given, one consultation of it).

    Attributes:
        case_id: the case record's id.
        items: the criteria, HealthBench format; what graders and scoring consume.
        origins: where each item came from, parallel to ``items``.
        generator: which generator made it (``core``, ``core+transcript``, ``...+writer``).
        version: :data:`GENERATOR_VERSION` of the deterministic core.
        writer: the LLM writer's backend spec, or ``None`` (core only).
        seed: the writer's sampling seed (the core is deterministic and ignores it).
        transcript_aware: whether a consultation transcript was used.
        warnings: everything a user should know: a writer that failed or was partly rejected,
            a dimension the case could not cover, an unbalanced rubric.
        checks: for the items the consultation's evidence decides, the check, by criterion
            (:mod:`medverify.grading.evidence`); items without one are left to the grader.
    """

    model_config = ConfigDict(extra="forbid")

    case_id: str = Field(min_length=1)
    items: list[RubricItem]
    origins: list[Origin]
    generator: str
    version: str = GENERATOR_VERSION
    writer: str | None = None
    seed: int = 0
    transcript_aware: bool = False
    warnings: list[str] = Field(default_factory=list)
    checks: dict[str, EvidenceCheck] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _parallel(self) -> Rubric:
        if len(self.origins) != len(self.items):
            raise ValueError(f"{len(self.items)} items but {len(self.origins)} origins")
        unknown = set(self.checks) - {i.criterion for i in self.items}
        if unknown:
            raise ValueError(f"checks for criteria not in the rubric: {sorted(unknown)[:3]}")
        return self

    @property
    def positive_points(self) -> int:
        """Sum of positive points: the denominator of HealthBench's example score."""
        return sum(i.points for i in self.items if i.points > 0)

    @property
    def negative_points(self) -> int:
        """Sum of negative points (a negative number or 0)."""
        return sum(i.points for i in self.items if i.points < 0)

    def by_dimension(self) -> dict[str, list[RubricItem]]:
        """Items grouped by dimension, every dimension present (possibly empty)."""
        groups: dict[str, list[RubricItem]] = {d: [] for d in DIMENSIONS}
        for rubric_item in self.items:
            dim = dimension_of(rubric_item)
            if dim is not None:
                groups.setdefault(dim, []).append(rubric_item)
        return groups
