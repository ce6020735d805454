"""Fakes for the training tests: graders that answer by rule, fail on cue, or raise."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from medverify.grading import Grade, RubricItem


class FakeGrader:
    """A Grader whose verdict is ``decide(response, item)``: True/False, or None for a failure."""

    def __init__(
        self, decide: Callable[[str, RubricItem], bool | None], spec: str = "fake"
    ) -> None:
        self.decide = decide
        self._spec = spec
        self.calls = 0

    @property
    def spec(self) -> str:
        return self._spec

    async def grade(
        self, conversation: Sequence[dict[str, str]], response: str, item: RubricItem
    ) -> Grade:
        self.calls += 1
        met = self.decide(response, item)
        if met is None:
            return Grade(met=None, error="judge never answered JSON")
        return Grade(met=met, explanation="fake")

    async def aclose(self) -> None:
        pass


def keyword_decider(response: str, item: RubricItem) -> bool | None:
    """Met when the criterion's first word appears in the response (case-insensitive)."""
    word = item.criterion.split()[0].lower()
    return word in response.lower()


@pytest.fixture
def keyword_grader() -> FakeGrader:
    return FakeGrader(keyword_decider)
