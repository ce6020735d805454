"""Grading: the criterion graders (LLM judge, offline local grader), their records, the scoring."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from medverify.backends.registry import BackendOptions, make_backend
from medverify.grading.judge import LLMJudge
from medverify.grading.records import Grade, RubricItem
from medverify.grading.scoring import Stat, aggregate, example_metrics, example_score


@runtime_checkable
class Grader(Protocol):
    """Anything that decides whether a response meets a criterion."""

    @property
    def spec(self) -> str:
        """What to record as the grader in results."""
        ...

    async def grade(
        self, conversation: Sequence[dict[str, str]], response: str, item: RubricItem
    ) -> Grade:
        """One verdict, or a Grade with ``met=None`` and the error; never raises for bad output."""
        ...

    async def aclose(self) -> None:
        """Release resources."""
        ...


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
        from medverify.grading.local_grader import LocalGrader

        return LocalGrader()
    return BackendJudge(make_backend(spec, options))


__all__ = [
    "BackendJudge",
    "Grade",
    "Grader",
    "LLMJudge",
    "RubricItem",
    "Stat",
    "aggregate",
    "example_metrics",
    "example_score",
    "make_grader",
]
