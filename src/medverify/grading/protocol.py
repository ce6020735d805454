"""What a grader is: anything that decides whether one response meets one criterion.

The LLM judge, the offline local grader and the evidence checks all answer the same call, so the
rubric-grading step, the benchmarks and the rewards never need to know which one they hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from medverify.grading.records import Grade, RubricItem


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
