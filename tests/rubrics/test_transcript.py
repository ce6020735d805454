"""Transcript-aware items: what this doctor asked, when they concluded, how it ended."""

from __future__ import annotations

import pytest

from medverify.cases.records import CaseRecord
from medverify.errors import InputError
from medverify.rubrics import core_rubric
from medverify.rubrics.core import build_core

from .conftest import transcript_of


def _added(case: CaseRecord, transcript) -> list:
    rubric = core_rubric(case, transcript)
    assert rubric.transcript_aware and rubric.generator == "core+transcript"
    return [i for i, o in zip(rubric.items, rubric.origins, strict=True) if o == "transcript"]


def test_guess_gets_missed_question_and_premature_closure_items(mg_case: CaseRecord) -> None:
    guess = transcript_of(
        mg_case,
        [("doctor", "DIAGNOSIS: tension headache", [])],
        termination_reason="diagnosis",
        final_diagnosis="tension headache",
    )
    added = _added(mg_case, guess)
    missed = [i for i in added if i.criterion.startswith("States a final diagnosis without")]
    assert len(missed) == 3 and all(i.points < 0 for i in missed)
    assert "climbing stairs" in missed[0].criterion and missed[0].points == -4
    closure = [i for i in added if "after only 0 question turns" in i.criterion]
    assert len(closure) == 1 and closure[0].points == -5
    # the generic core item is replaced by the specific ones
    generic = core_rubric(mg_case)
    assert any("without having asked about" in i.criterion for i in generic.items)


def test_thorough_doctor_gets_no_process_penalty(mg_case: CaseRecord) -> None:
    history = [f.id for f in mg_case.facts]
    turns = [("doctor", "What brings you in?", []), ("patient", "Double vision.", [])]
    turns += [("doctor", "Tell me more about it.", []), ("patient", "...", history)]
    turns += [("doctor", "DIAGNOSIS: Myasthenia gravis\nPLAN: pyridostigmine", [])]
    done = transcript_of(mg_case, turns, termination_reason="diagnosis")
    assert _added(mg_case, done) == []


def test_partial_history_names_only_what_was_never_asked(mg_case: CaseRecord) -> None:
    build = build_core(mg_case)
    first, *rest = sorted(build.targets, key=lambda t: (-t.score, t.order))
    revealed = [fid for t in rest for fid in t.fact_ids]
    turns = [("doctor", "Questions", []), ("patient", "answers", revealed)]
    turns.append(("doctor", "DIAGNOSIS: Myasthenia gravis", []))
    added = _added(mg_case, transcript_of(mg_case, turns, termination_reason="diagnosis"))
    assert [i.criterion for i in added] == [
        f"States a final diagnosis without having asked {first.phrase}"
    ]


def test_turn_limit_and_patient_left(mg_case: CaseRecord) -> None:
    turns = [("doctor", "Hmm.", []), ("patient", "...", [])]
    cut = _added(mg_case, transcript_of(mg_case, turns, termination_reason="turn_limit"))
    assert [i.criterion for i in cut] == [
        "Runs out of turns without giving a final diagnosis or plan"
    ]
    assert cut[0].tags == ["dimension:consultation_logic", "axis:instruction_following"]
    left = _added(mg_case, transcript_of(mg_case, turns, termination_reason="patient_left"))
    assert len(left) == 1 and "the patient leaves" in left[0].criterion
    assert left[0].tags[0] == "dimension:communication_empathy"


def test_transcript_of_another_case_is_refused(
    mg_case: CaseRecord, allergy_case: CaseRecord
) -> None:
    other = transcript_of(allergy_case, [("doctor", "DIAGNOSIS: x", [])])
    with pytest.raises(InputError) as err:
        core_rubric(mg_case, other)
    assert err.value.field == "case_id"
