"""What an evaluation run produces: per-example verdicts and the aggregate ``results.json``.

Shared by HealthBench and the consultation benchmark, and read by the HTML report. The top level
of ``results.json`` is fixed (tools parse it): ``overall``, ``tags``, ``model``, ``grader``,
``n_grading_failures``, ``usage``, ``cost_estimate_usd``, ``medverify_version``, ``data_sha256``;
one optional field is added only when it applies: ``grader_validity``, on a run whose grader's
scores are not comparable to the benchmark's own judge (``healthbench --grader local``):
``{"comparable": false, "reason": ..., "agreement": {measured figures} or null}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field, SerializerFunctionWrapHandler, model_serializer

from medverify import __version__
from medverify.backends.base import UsageMeter
from medverify.grading.scoring import OVERALL, Stat, aggregate


class CriterionVerdict(BaseModel):
    """A rubric item with the grader's verdict on one response."""

    criterion: str
    points: int
    tags: list[str] = Field(default_factory=list)
    met: bool | None
    explanation: str = ""
    error: str | None = None
    measured: bool = True


class ExampleResult(BaseModel):
    """One graded response: the conversation, the completion, each verdict and the scores."""

    prompt_id: str
    repeat: int = 0
    conversation: list[dict[str, str]]
    completion: str
    example_tags: list[str] = Field(default_factory=list)
    verdicts: list[CriterionVerdict]
    score: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)

    @property
    def n_failures(self) -> int:
        """Criteria whose grading failed (abstentions are not failures)."""
        return sum(1 for v in self.verdicts if v.met is None and v.measured)


class GraderValidity(BaseModel):
    """Whether a run's scores can be compared to the benchmark's own judge, and why not."""

    comparable: bool
    reason: str
    agreement: dict[str, Any] | None = None


class RunResults(BaseModel):
    """The aggregate written to ``results.json``."""

    overall: Stat
    tags: dict[str, Stat]
    model: str
    grader: str
    n_grading_failures: int
    usage: dict[str, Any]
    cost_estimate_usd: float | None
    medverify_version: str
    data_sha256: str
    grader_validity: GraderValidity | None = None

    @model_serializer(mode="wrap")
    def _without_unset_note(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave ``grader_validity`` out when there is no note (the fixed fields stay exact)."""
        data = handler(self)
        if isinstance(data, dict) and data.get("grader_validity", 0) is None:
            data.pop("grader_validity")
        return data


def summarize(
    results: Sequence[ExampleResult],
    *,
    model: str,
    grader: str,
    usage: dict[str, UsageMeter],
    cost_estimate_usd: float | None,
    data_sha256: str,
    bootstrap_seed: int = 0,
) -> RunResults:
    """The aggregate of a run, in the fixed ``results.json`` shape."""
    stats = aggregate([r.metrics for r in results if r.metrics], seed=bootstrap_seed)
    overall = stats.pop(OVERALL, Stat(score=0.0, std=0.0, n=0))
    return RunResults(
        overall=overall,
        tags=dict(sorted(stats.items())),
        model=model,
        grader=grader,
        n_grading_failures=sum(r.n_failures for r in results),
        usage={name: meter.model_dump() for name, meter in usage.items()},
        cost_estimate_usd=cost_estimate_usd,
        medverify_version=__version__,
        data_sha256=data_sha256,
    )
