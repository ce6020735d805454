"""Grading: the criterion graders (LLM judge, offline local grader), their records, the scoring."""

from __future__ import annotations

from medverify.backends.registry import BackendOptions, make_backend
from medverify.grading.grade_rubric import VerdictCache, grade_rubric, verdict_key
from medverify.grading.judge import LLMJudge
from medverify.grading.local_grader import LocalGrader
from medverify.grading.protocol import Grader
from medverify.grading.records import Grade, RubricItem
from medverify.grading.scoring import Stat, aggregate, example_metrics, example_score


class BackendJudge(LLMJudge):
    """An LLM judge that owns its backend (created from a spec) and closes it."""

    async def aclose(self) -> None:
        """Close the judge's backend."""
        await self.backend.aclose()


def make_grader(spec: str, options: BackendOptions | None = None) -> Grader:
    """A grader from a spec.

    ``local`` is the offline local grader (MiniLM features and a trained logistic model,
    :mod:`medverify.grading.local_grader`): the embedded 135M chat model cannot judge. Every other
    spec is a backend spec and becomes an LLM judge on that backend (to use the embedded chat model
    as a judge anyway, wrap ``make_backend("local")`` in :class:`LLMJudge`).

    Raises:
        ConfigError: a bad spec, or the local grader's model or weights are missing.
    """
    if spec.strip() == "local":
        return LocalGrader()
    return BackendJudge(make_backend(spec, options))


__all__ = [
    "BackendJudge",
    "Grade",
    "Grader",
    "LLMJudge",
    "RubricItem",
    "Stat",
    "VerdictCache",
    "aggregate",
    "example_metrics",
    "example_score",
    "grade_rubric",
    "make_grader",
    "verdict_key",
]
