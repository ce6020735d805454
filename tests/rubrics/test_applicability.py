"""Rubric items read as a clinician would write them, and only items that can apply are written."""

from __future__ import annotations

import json
import re

from medverify.cases.loading import load_bundled_cases
from medverify.cases.records import CaseRecord
from medverify.rubrics import core_rubric
from medverify.rubrics.dimensions.shared import DETECTOR_ITEMS, cannot_converse
from medverify.rubrics.records import dimension_of

from .conftest import FIXTURES


def _case(**changes) -> CaseRecord:
    data = json.loads((FIXTURES / "penicillin_allergy.json").read_text())
    data.update(changes)
    return CaseRecord.model_validate(data)


def test_a_finding_is_not_turned_into_a_question():
    case = _case(
        facts=[
            {
                "id": "f1",
                "category": "symptom",
                "text": "Patient's thought processes are hard to follow.",
                "keywords": ["thought processes", "hard to follow"],
            },
            {
                "id": "f2",
                "category": "history",
                "text": "Involved in a head-on collision two hours ago.",
                "keywords": ["head-on collision"],
            },
            {
                "id": "f3",
                "category": "history",
                "text": "A 34-year-old man is brought to the emergency department by his wife.",
                "keywords": ["emergency department", "wife"],
            },
        ]
    )
    criteria = [i.criterion for i in core_rubric(case).items]
    history = [c for c in criteria if c.startswith("Asks ")]
    assert not any(re.match(r"Asks about (?:patient's thought|involved)", c) for c in history)
    assert any(c.startswith("Asks whether patient's thought processes are hard") for c in history)
    assert any(c.startswith("Asks whether the patient was involved in a head-on") for c in history)
    # the visit's setting is not something to ask about
    assert not any("brought to the emergency department" in c for c in criteria)


def test_no_bundled_rubric_asks_about_a_clause():
    finite = re.compile(r"^Asks about (?:\S+ ){0,3}(?:is|are|was|were|has|had|gets|resolves)\b")
    for case in load_bundled_cases():
        bad = [i.criterion for i in core_rubric(case).items if finite.match(i.criterion)]
        assert not bad, (case.id, bad)


def test_an_unconscious_patient_gets_no_items_addressed_to_their_feelings_or_consent():
    case = _case(
        chief_complaint="My brother was found unconscious at home.",
        facts=[
            {
                "id": "f1",
                "category": "history",
                "text": "He was found unresponsive by his brother this morning.",
                "keywords": ["unresponsive"],
            }
        ],
    )
    assert cannot_converse(case)
    criteria = [i.criterion for i in core_rubric(case).items]
    assert not any(c.startswith("Acknowledges the patient's feelings") for c in criteria)
    assert not any(c.startswith("Asks for the patient's permission") for c in criteria)
    assert not any(c.startswith("Checks the patient's understanding") for c in criteria)
    assert not cannot_converse(_case())


def test_every_detector_item_is_written_by_the_core():
    written = [i.criterion for case in load_bundled_cases() for i in core_rubric(case).items]
    for prefix in DETECTOR_ITEMS:
        assert any(c.startswith(prefix) for c in written), prefix


def test_a_wrong_final_diagnosis_costs_more_than_any_item_but_a_safety_harm():
    for case in load_bundled_cases()[:8]:
        items = core_rubric(case).items
        right = next(i for i in items if i.criterion.startswith(f"States {case.diagnosis}"))
        wrong = next(i for i in items if i.criterion.startswith(f"Ends without {case.diagnosis}"))
        cost = right.points - wrong.points  # the credit lost plus the penalty
        others = [
            abs(i.points)
            for i in items
            if i not in (right, wrong) and i.points > -8 and dimension_of(i) is not None
        ]
        assert cost > max(others)
