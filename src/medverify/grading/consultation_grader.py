"""The grader of a consultation rubric: evidence first, detectors offline, judgement to a judge.

One consultation's rubric mixes three kinds of item, and each goes where it can be decided:

* items with an evidence check (:mod:`medverify.grading.evidence`) are decided from what the
  simulator recorded, whatever grader is configured;
* judgement items with a detector (:mod:`medverify.grading.detectors`) go to the LLM judge when
  one is configured, and offline to the detector;
* every other item goes to the judge; offline, it is *not measured*: the verdict says so and the
  item is left out of the score (never a constant that looks like a measurement).

An LLM judge can be asked about the checked items too (``judge_checked``) to measure how often it
agrees with the evidence; the evidence verdict is still the one scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medverify.cases.records import CaseRecord, Transcript
from medverify.grading.detectors import detect
from medverify.grading.evidence import (
    ConsultationEvidence,
    DetectorCheck,
    EvidenceCheck,
    evaluate_check,
)
from medverify.grading.protocol import Grader
from medverify.grading.records import Grade, RubricItem

#: The explanation of an item the offline verifier cannot decide.
NOT_MEASURED = "not measured offline: judgement item, needs an LLM judge (--grader SPEC)"


def is_offline(grader: Grader) -> bool:
    """Whether a grader is the offline local grader (no model that can judge)."""
    return grader.spec.strip() == "local"


class ConsultationGrader:
    """Grades one consultation's rubric items (see the module docstring for the routing).

    Args:
        case: the record.
        transcript: the consultation.
        checks: evidence and detector checks by criterion text (``Rubric.checks``).
        judge: the configured grader: an LLM judge, or the offline local grader.
        judge_checked: send evidence-checked items to ``judge`` too, to measure agreement.
        offline: route as offline (detectors, abstentions); default: whether ``judge`` is the
            local grader.
    """

    def __init__(
        self,
        case: CaseRecord,
        transcript: Transcript,
        checks: Mapping[str, EvidenceCheck],
        judge: Grader,
        *,
        judge_checked: bool = False,
        offline: bool | None = None,
    ) -> None:
        self.evidence = ConsultationEvidence(case, transcript)
        self.checks = dict(checks)
        self.judge = judge
        self.judge_checked = judge_checked
        self.offline = is_offline(judge) if offline is None else offline
        #: criterion -> (evidence verdict, judge verdict) for checked items the judge also graded
        self.agreement: dict[str, tuple[bool | None, bool | None]] = {}

    @property
    def spec(self) -> str:
        """``evidence+<judge spec>``: what decided the verdicts."""
        return f"evidence+{self.judge.spec}"

    async def grade(
        self, conversation: Sequence[dict[str, str]], response: str, item: RubricItem
    ) -> Grade:
        """One item's verdict, from evidence, a detector, the judge, or not measured."""
        check = self.checks.get(item.criterion)
        if isinstance(check, DetectorCheck):
            if not self.offline:
                return await self.judge.grade(conversation, response, item)
            detected = detect(check, self.evidence)
            return detected if detected is not None else _not_measured()
        if check is None:
            if self.offline:
                return _not_measured()
            return await self.judge.grade(conversation, response, item)
        grade = evaluate_check(check, self.evidence)
        if self.judge_checked and not self.offline:
            judged = await self.judge.grade(conversation, response, item)
            self.agreement[item.criterion] = (grade.met, judged.met)
        return grade

    async def aclose(self) -> None:
        """The judge is the caller's to close."""


def _not_measured() -> Grade:
    return Grade(met=None, measured=False, explanation=NOT_MEASURED)
