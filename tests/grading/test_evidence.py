"""Evidence checks: rubric items decided from what the consultation recorded.

The doctors here ask in plain words, written without reading the record's keywords, so an item is
met only when the Fact Unit understood an ordinary question and revealed the fact behind it.
"""

from __future__ import annotations

import pytest

from medverify.cases.loading import load_bundled_cases
from medverify.consult.task import ConsultationTask
from medverify.grading import Grade, make_grader
from medverify.grading.evidence import (
    ConcludedBeforeCheck,
    ConsultationEvidence,
    DetectorCheck,
    DiagnosisCheck,
    RevealedCheck,
    evaluate_check,
)

CASES = {c.id: c for c in load_bundled_cases()}


class Abstain:
    """A judge that must not be asked about checked items."""

    spec = "abstain"

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def grade(self, conversation, response, item):
        self.asked.append(item.criterion)
        return Grade(met=False, explanation="not judged")

    async def aclose(self) -> None:
        pass


async def consult(case_id: str, turns: list[str], *, max_turns: int | None = None):
    task = ConsultationTask(case=CASES[case_id], max_turns=max_turns or len(turns) + 1)
    env = task.environment()
    env.opening()
    for text in turns:
        if env.is_finished():
            break
        await env.respond(text)
    return task, env.transcript


PLAIN = [
    "What brought you in today?",
    "Is there anything that makes it better or worse?",
    "Have you noticed any weakness in your arms?",
    "Do you smoke or drink alcohol?",
    "I'd like to look at your eyes and eyelids now.",
    "Let me test how strong your arms and legs are.",
]


async def test_plain_questions_are_credited_from_the_facts_they_revealed():
    task, transcript = await consult(
        "agentclinic-medqa-001", [*PLAIN, "DIAGNOSIS: Myasthenia gravis\nPLAN: neurology referral"]
    )
    judge = Abstain()
    rubric = await task.rubric(transcript)
    scored = await task.score(transcript, judge, rubric=rubric)
    by_text = {v.criterion: v for v in scored.verdicts}
    final = next(c for c in by_text if c.startswith("States Myasthenia gravis"))
    assert by_text[final].met and "turn" in by_text[final].explanation
    wrong = next(c for c in by_text if c.startswith("Ends without Myasthenia gravis"))
    assert by_text[wrong].met is False
    # the exam items it asked for are met, each citing a revealed finding id
    exams = [v for c, v in by_text.items() if c.startswith("Examines") and c in rubric.checks]
    assert exams and any(v.met and "revealed" in v.explanation for v in exams)
    # evidence-checked items never reached the judge (detector items go to a configured judge)
    evidence = {c for c, k in rubric.checks.items() if not isinstance(k, DetectorCheck)}
    assert not set(judge.asked) & evidence
    assert scored.evidence_checked == len(evidence) > 5
    assert scored.scan.diagnosis_final and scored.scan.inquiry and scored.scan.inquiry > 0


async def test_naming_and_rejecting_the_right_diagnosis_is_a_wrong_diagnosis():
    task, transcript = await consult(
        "agentclinic-medqa-001",
        [*PLAIN[:3], "DIAGNOSIS: Multiple sclerosis. It is definitely not myasthenia gravis."],
    )
    scored = await task.score(transcript, Abstain())
    by_text = {v.criterion: v for v in scored.verdicts}
    assert not next(v for c, v in by_text.items() if c.startswith("States Myasthenia")).met
    assert next(v for c, v in by_text.items() if c.startswith("Ends without Myasthenia")).met
    assert not scored.scan.diagnosis_final and not scored.scan.diagnosis_in_differential


async def test_concluding_without_examining_is_a_fault_and_examining_clears_it():
    _, guess = await consult("agentclinic-medqa-001", ["DIAGNOSIS: Myasthenia gravis"])
    check = ConcludedBeforeCheck()
    case = CASES["agentclinic-medqa-001"]
    assert evaluate_check(check, ConsultationEvidence(case, guess)).met
    _, careful = await consult("agentclinic-medqa-001", [PLAIN[4], "DIAGNOSIS: Myasthenia gravis"])
    assert not evaluate_check(check, ConsultationEvidence(case, careful)).met


async def test_an_examination_the_record_lacks_still_counts_as_examining():
    case = CASES["agentclinic-medqa-001"]
    _, t = await consult("agentclinic-medqa-001", ["Let me check your ears.", "DIAGNOSIS: MG"])
    ev = ConsultationEvidence(case, t)
    if not any(turn.requested for turn in t.turns):
        pytest.skip("the record has an ear finding")
    assert not evaluate_check(ConcludedBeforeCheck(), ev).met


async def test_unasked_facts_are_not_credited():
    case = CASES["agentclinic-medqa-001"]
    _, t = await consult("agentclinic-medqa-001", ["How are you?", "DIAGNOSIS: flu"])
    ev = ConsultationEvidence(case, t)
    unasked = [f.id for f in case.facts if f.id not in t.revealed()]
    assert len(unasked) >= 3
    assert evaluate_check(RevealedCheck(fact_ids=unasked), ev).met is False
    verdict = evaluate_check(DiagnosisCheck(expect="alternatives"), ev)
    assert verdict.met is False and "no alternative" in verdict.explanation


@pytest.mark.parametrize(
    "closing",
    [
        "DIAGNOSIS: I'd like to discuss your recovery plan with you.",
        "DIAGNOSIS: Can you please tell me more about your situation?",
        "DIAGNOSIS: Patient with drooping eyelids that get worse in the evening.",
    ],
)
async def test_a_sentence_after_diagnosis_is_no_wrong_diagnosis(closing):
    """The trained doctor's closings before this fix: the field, then no condition.

    Counting them as "a final diagnosis other than X" (-6) made a doctor that writes the field
    score below one that never concludes; they are no wrong diagnosis, and no conclusion either
    (graded as running out of turns is).
    """
    case = CASES["agentclinic-medqa-001"]
    _, t = await consult("agentclinic-medqa-001", [PLAIN[0], closing])
    ev = ConsultationEvidence(case, t)
    wrong = evaluate_check(DiagnosisCheck(expect="wrong_final"), ev)
    assert wrong.met is False and "names no condition" in wrong.explanation
    assert evaluate_check(DiagnosisCheck(expect="final"), ev).met is False
    assert evaluate_check(DiagnosisCheck(expect="alternatives"), ev).met is False


async def test_a_named_wrong_condition_is_still_a_wrong_diagnosis():
    case = CASES["agentclinic-medqa-001"]
    _, t = await consult("agentclinic-medqa-001", [PLAIN[0], "DIAGNOSIS: Bell's palsy"])
    ev = ConsultationEvidence(case, t)
    assert evaluate_check(DiagnosisCheck(expect="wrong_final"), ev).met is True
    assert evaluate_check(DiagnosisCheck(expect="final"), ev).met is False


async def test_following_the_nudge_to_conclude_never_scores_below_ignoring_it():
    """Same history, four last turns: the instruction to conclude is not a trap.

    Before, concluding on the nudged last turn after a short history drew premature-closure
    items (up to -15) that running out of turns (-4) did not, so never concluding paid; a
    question on the last turn ("Do you have ...?") was read as a wrong diagnosis besides.
    """
    history = PLAIN[:4]
    endings = {
        "right": "DIAGNOSIS: Myasthenia gravis\nPLAN: neurology referral",
        "wrong": "DIAGNOSIS: Bell's palsy",
        "names nothing": "DIAGNOSIS: I'd like to discuss your recovery plan.",
        "out of turns": "Do you have any plans for the weekend?",
    }
    scores = {}
    for name, last in endings.items():
        task, t = await consult("agentclinic-medqa-001", [*history, last], max_turns=5)
        assert t.termination_reason == ("turn_limit" if name == "out of turns" else "diagnosis")
        scored = await task.score(t, make_grader("local"))
        scores[name] = scored.score
        missed = next(v for v in scored.verdicts if v.criterion.startswith("Ends without"))
        assert missed.met is (name != "right"), name  # silence is no escape from it
        assert not any("question turns, before" in v.criterion for v in scored.verdicts), name
    assert scores["right"] > scores["out of turns"] > scores["wrong"]
    assert scores["names nothing"] == pytest.approx(scores["out of turns"])


async def test_silence_is_charged_as_a_missed_diagnosis_and_a_provisional_one_beats_it():
    """The trained doctor's own closings (session 10): it learned never to name a condition.

    With only a *wrong* diagnosis charged, echoing the nudge (-4 for no conclusion) scored seven
    points above naming a wrong condition without examining (-6, -5), so a doctor too weak to be
    right was taught silence. A missing diagnosis now costs what a wrong one does (as in
    SCAN-bench), and a wrong but provisional one -- tests ordered to confirm it -- is no longer
    "definitive without any test" and scores above saying nothing.
    """
    history = PLAIN[:4]
    endings = {
        "echo": "DIAGNOSIS: Can you tell me more about that?\n\n"
        "PLAN: Can you tell me more about that?",
        "echo nudge": "DIAGNOSIS: [Your final assessment now]\n\n[This is your last turn: give "
        "your final assessment now, as a line starting with 'DIAGNOSIS:' and optionally a line "
        "starting with 'PLAN:'.]",
        "provisional": "DIAGNOSIS: Bell's palsy\nTESTS: blood tests and a head CT scan",
        "bare wrong": "DIAGNOSIS: Bell's palsy",
    }
    scores = {}
    for name, last in endings.items():
        task, t = await consult("agentclinic-medqa-001", [*history, last], max_turns=5)
        scored = await task.score(t, make_grader("local"))
        scores[name] = scored.score
        by_text = {v.criterion: v for v in scored.verdicts}
        assert next(v for c, v in by_text.items() if c.startswith("Ends without")).met, name
        untested = next(v for c, v in by_text.items() if c.startswith("States a definitive"))
        assert untested.met is (name == "bare wrong"), name
    assert scores["provisional"] > scores["echo"] == pytest.approx(scores["echo nudge"])
    assert scores["echo"] > scores["bare wrong"]


async def test_a_consultation_cut_short_is_no_missed_diagnosis():
    """Scored mid-way (the search scores each question turn as if it stopped there), a
    consultation that was never asked to conclude has missed nothing yet."""
    case = CASES["agentclinic-medqa-001"]
    _, t = await consult("agentclinic-medqa-001", PLAIN[:2], max_turns=6)
    assert t.termination_reason is None
    ev = ConsultationEvidence(case, t)
    assert evaluate_check(DiagnosisCheck(expect="missed_final"), ev).met is False


async def test_the_right_diagnosis_is_never_a_missed_one_even_off_the_condition_word_list():
    rare = "Medullary sponge kidney"  # not on the condition word list
    case = CASES["agentclinic-medqa-001"].model_copy(update={"diagnosis": rare})
    _, t = await consult("agentclinic-medqa-001", [PLAIN[0], "DIAGNOSIS: Medullary sponge kidney"])
    ev = ConsultationEvidence(case, t)
    assert evaluate_check(DiagnosisCheck(expect="final"), ev).met is True
    assert evaluate_check(DiagnosisCheck(expect="missed_final"), ev).met is False
