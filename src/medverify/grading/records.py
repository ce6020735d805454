"""Typed records shared by the grader, HealthBench, the rubrics generator and the rewards.

A rubric item is HealthBench's format (also what the generator emits): a criterion, its points
(-10..10, never 0; negative for harmful behaviour) and tags such as ``axis:accuracy``.
A :class:`Grade` is one verdict on one criterion for one response, or a recorded grading failure:
failures are data, never silently counted as "not met".
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RubricItem(BaseModel):
    """One checkable criterion, HealthBench format."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    criterion: str = Field(min_length=1)
    points: int = Field(ge=-10, le=10)
    tags: list[str] = Field(default_factory=list)

    @field_validator("points")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("points must be non-zero (-10..-1 or 1..10)")
        return value

    @field_validator("tags")
    @classmethod
    def _tags_unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a rubric item's tags must be unique")
        return value


class Grade(BaseModel):
    """The grader's verdict on one criterion; ``met`` is ``None`` when grading failed.

    ``measured=False`` (with ``met=None``) is an abstention: the grader cannot decide this kind
    of criterion (the offline verifier on a judgement item). It is not a failure: nothing is
    retried, and the item is left out of the score and reported as not measured.
    """

    met: bool | None
    explanation: str = ""
    error: str | None = None
    attempts: int = 1
    measured: bool = True

    @property
    def failed(self) -> bool:
        """Whether no verdict could be obtained (an abstention is not a failure)."""
        return self.met is None and self.measured
