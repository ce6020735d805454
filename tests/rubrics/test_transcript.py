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


def test_concluding_on_the_turn_asked_for_is_not_premature(mg_case: CaseRecord) -> None:
    """The last turn is nudged to conclude; doing so is following the instruction."""
    turns = [("doctor", "What brings you in?", []), ("patient", "Double vision.", [])]
    turns += [("doctor", "DIAGNOSIS: Myasthenia gravis", [])]
    on_time = transcript_of(mg_case, turns, termination_reason="diagnosis", max_turns=2)
    assert _added(mg_case, on_time) == []
    early = transcript_of(mg_case, turns, termination_reason="diagnosis", max_turns=6)
    criteria = [i.criterion for i in _added(mg_case, early)]
    assert any("after only 1 question turn," in c for c in criteria)
    assert any(c.startswith("States a final diagnosis without") for c in criteria)
    unknown = transcript_of(mg_case, turns, termination_reason="diagnosis")  # older transcripts
    assert [i.criterion for i in _added(mg_case, unknown)] == criteria


def test_a_diagnosis_line_naming_nothing_is_graded_as_no_conclusion(mg_case: CaseRecord) -> None:
    turns = [("doctor", "What brings you in?", []), ("patient", "Double vision.", [])]
    turns += [("doctor", "DIAGNOSIS: I'd like to discuss your recovery plan.", [])]
    added = _added(mg_case, transcript_of(mg_case, turns, termination_reason="diagnosis"))
    assert [(i.criterion, i.points) for i in added] == [
        ("Ends the consultation without naming a diagnosis or giving a plan", -4)
    ]


@pytest.mark.parametrize(
    ("plan", "concludes"),
    [
        ("[Listing of specific actions you're ready to take]", False),  # the search's own
        ("You're not alone, I'm sorry for your family.", False),
        # the trained doctor echoing the task's nudge on held-out cases: "starting" is no plan
        (
            "I'm sorry to hear that.\n\n[This is your last turn: give your final assessment "
            "now, as a line starting with 'DIAGNOSIS:' and optionally a line starting with",
            False,
        ),
        ("Blood tests and a brain scan, then I'll refer you to a neurologist.", True),
    ],
)
def test_a_plan_line_concludes_only_when_it_plans_something(
    mg_case: CaseRecord, plan: str, concludes: bool
) -> None:
    turns = [("doctor", "What brings you in?", []), ("patient", "Double vision.", [])]
    turns += [("doctor", f"DIAGNOSIS: I'm not sure yet.\nPLAN: {plan}", [])]
    added = _added(mg_case, transcript_of(mg_case, turns, termination_reason="diagnosis"))
    none = "Ends the consultation without naming a diagnosis or giving a plan"
    assert (none in [i.criterion for i in added]) is not concludes


def test_a_question_on_the_last_turn_is_no_diagnosis(mg_case: CaseRecord) -> None:
    """A question ("Do you have any other symptoms?") concludes nothing, whatever its words."""
    turns = [("doctor", "What brings you in?", []), ("patient", "Double vision.", [])]
    turns += [("doctor", "Do you have any other symptoms?", []), ("patient", "No.", [])]
    cut = transcript_of(mg_case, turns, termination_reason="turn_limit", max_turns=2)
    assert [i.criterion for i in _added(mg_case, cut)] == [
        "Runs out of turns without giving a final diagnosis or plan"
    ]


def test_a_question_asked_a_third_time_repeats_whatever_surrounds_it(
    mg_case: CaseRecord,
) -> None:
    # invented wordings: the same question behind different sympathy, and different questions
    # behind the same sympathy
    same = [
        "Oh dear, that sounds hard. Could you describe what you have noticed?",
        "That must be tiring. Could you describe what you have noticed?",
        "I see, thank you. Could you describe what you have noticed?",
    ]
    varied = [
        "That sounds hard. When did it start?",
        "That sounds hard. Does anything make it better?",
        "That sounds hard. Do you take any medicines?",
    ]

    def charged(doctor_turns: list[str]) -> list[int]:
        turns = [t for text in doctor_turns for t in (("doctor", text, []), ("patient", "Hm.", []))]
        transcript = transcript_of(mg_case, turns, termination_reason="turn_limit")
        return [i.points for i in _added(mg_case, transcript) if "Repeats" in i.criterion]

    assert charged(same[:2]) == []  # asked twice: fair
    assert charged(same) == [-3]
    assert charged(varied) == []


def test_a_repeated_turn_is_an_item_only_when_a_turn_repeats(mg_case: CaseRecord) -> None:
    turns = [("doctor", "I'm sorry to hear that. Can you tell me more?", [])]
    turns += [("patient", "It started a month ago.", [])]
    turns += [("doctor", "I'm so sorry to hear that. Can you tell me more?", [])]
    turns += [("patient", "Nothing else.", [])]
    varied = transcript_of(mg_case, turns, termination_reason="turn_limit")
    assert not any("Repeats" in i.criterion for i in _added(mg_case, varied))
    turns += [("doctor", "i'm sorry to hear that -- can you tell me more", [])]
    repeated = transcript_of(mg_case, [*turns, ("patient", "...", [])], termination_reason=None)
    added = [i for i in _added(mg_case, repeated) if "Repeats" in i.criterion]
    assert [(i.points, i.tags[0]) for i in added] == [(-3, "dimension:consultation_logic")]
