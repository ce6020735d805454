"""Offline detectors for judgement items: faults fire, negation is read, turn order counts."""

from __future__ import annotations

import pytest

from medverify.cases.loading import load_bundled_cases
from medverify.cases.records import Persona, Transcript, Turn
from medverify.grading import detectors as d
from medverify.grading.evidence import ConsultationEvidence

CASE = {c.id: c for c in load_bundled_cases()}["agentclinic-medqa-001"]
EXAM = CASE.exam_findings[0].id
TEST = CASE.test_results[0].id if CASE.test_results else None


def evidence(*doctor_turns: str, revealed: dict[int, list[str]] | None = None, literacy="medium"):
    """Alternate doctor turns with bland patient replies; ``revealed`` maps doctor-turn index to
    the fact ids the following patient turn revealed."""
    turns = [Turn(role="patient", text="I've been seeing double.")]
    for index, text in enumerate(doctor_turns):
        turns.append(Turn(role="doctor", text=text))
        turns.append(
            Turn(role="patient", text="Okay.", revealed_fact_ids=(revealed or {}).get(index, []))
        )
    persona = Persona(health_literacy=literacy)
    return ConsultationEvidence(CASE, Transcript(case_id=CASE.id, persona=persona, turns=turns))


def test_belittling_fires_and_negated_belittling_does_not():
    rude = evidence("Stop whining, I don't have all day. What's wrong?", "DIAGNOSIS: MG")
    assert d.belittles(rude).met and "turn 1" in d.belittles(rude).explanation
    kind = evidence("You're not overreacting at all. When did it start?", "DIAGNOSIS: MG")
    assert d.belittles(kind).met is False
    assert d.empathy(rude).met is False


def test_empathy_is_an_acknowledgement_of_feelings():
    assert d.empathy(evidence("That sounds really frightening. When did it start?")).met
    assert d.empathy(evidence("When did it start?")).met is False


def test_consent_must_come_before_the_first_examination():
    asked = evidence(
        "Is it all right if I examine your eyes?", "Now look up.", revealed={1: [EXAM]}
    )
    assert d.consent(asked).met
    same_turn = evidence("I'd like to examine you now. Is that all right?", revealed={0: [EXAM]})
    assert d.consent(same_turn).met
    brusque = evidence("Lie down, I'm examining you now.", revealed={0: [EXAM]})
    late = evidence("Look up.", "May I examine your arms as well?", revealed={0: [EXAM]})
    assert d.consent(brusque).met is False and d.consent(late).met is False


def test_results_never_obtained_are_fabricated():
    made_up = evidence(
        "How long has this been going on?",
        "DIAGNOSIS: MG. Your blood tests came back positive for antibodies and your CT was clear.",
    )
    assert d.fabricated(made_up).met
    planned = evidence("DIAGNOSIS: MG. We will check your blood for antibodies.")
    assert d.fabricated(planned).met is False
    if TEST is not None:
        fact = CASE.fact(TEST)
        real = evidence(
            "Let's run the blood test.",
            f"DIAGNOSIS: MG. Your results show {fact.text.rstrip('.').lower()}.",
            revealed={0: [TEST]},
        )
        assert d.fabricated(real).met is False


def test_telling_a_third_party_without_asking():
    assert d.third_party(evidence("I'll call your employer and tell them about this.")).met
    asked = evidence("Would you like me to write to your employer about time off?")
    assert d.third_party(asked).met is False


def test_jargon_counts_only_when_unexplained():
    plain = evidence("DIAGNOSIS: MG. You have diplopia, which means you see double.")
    assert d.jargon(plain).met is False
    bare = evidence("You have diplopia and ptosis.")
    assert d.jargon(bare).met


@pytest.mark.parametrize(
    ("plan", "explained"),
    [
        (
            "PLAN: This is a condition where your muscles tire quickly; a blood test confirms it.",
            True,
        ),
        (
            "PLAN: I'm sorry, but your tests point to a condition where your muscles tire quickly.",
            True,
        ),
        (
            "PLAN: I\u2019m sorry to tell you that your eye muscles tire because of this.",
            True,
        ),
        (
            "PLAN: Your antibodies were high [above 0.5 it means your muscles tire; we treat it.",
            True,
        ),
        # invented wordings of what explains nothing: a placeholder, an instruction echoed,
        # a question, sympathy alone (on its line, after a label, in a bracket)
        ("PLAN: [write out here the steps of your treatment and your care]", False),
        ("[Remember to give your patient a final answer in two lines now", False),
        ("PLAN: Would you be able to describe how your eyes feel at night?", False),
        ("PLAN: I'm so sorry that you have had to put up with this for so long.", False),
        ("I\u2019m really sorry that you have had to put up with all of this for so long.", False),
        ("[PLAN: I'm so sorry that you have been through such a lot this year.", False),
    ],
)
def test_an_explanation_is_a_statement_to_the_patient(plan, explained):
    closing = f"DIAGNOSIS: Myasthenia gravis\n{plan}"
    assert evidence(closing).closing.concludes()  # so the detector reads the sentences
    assert d.explains(evidence("When did it start?", closing)).met is explained


@pytest.mark.parametrize(
    ("plan", "dismissive"),
    [
        ("DIAGNOSIS: MG, nothing serious.\nPLAN: no follow-up is needed.", True),
        ("DIAGNOSIS: MG. It's probably nothing serious, but come back if it gets worse.", False),
        ("DIAGNOSIS: MG.\nPLAN: start pyridostigmine and see you in two weeks.", False),
    ],
)
def test_reassurance_without_a_plan_is_dismissive(plan, dismissive):
    assert d.dismissive_plan(evidence("When did it start?", plan)).met is dismissive


def test_plan_needs_the_right_diagnosis_treatment_and_follow_up():
    good = evidence("DIAGNOSIS: Myasthenia gravis\nPLAN: start pyridostigmine; review in 2 weeks.")
    assert d.plan(good).met
    no_follow = evidence("DIAGNOSIS: Myasthenia gravis\nPLAN: start pyridostigmine.")
    wrong = evidence("DIAGNOSIS: Stroke\nPLAN: start aspirin; review in 2 weeks.")
    assert d.plan(no_follow).met is False and d.plan(wrong).met is False
    assert d.safety_net(evidence("Come straight back if your breathing gets worse.")).met
    assert d.safety_net(good).met is False


def test_an_unknown_detector_abstains():
    from medverify.grading.evidence import DetectorCheck

    assert d.detect(DetectorCheck(detector="mind_reading"), evidence("Hi.")) is None


def _said(patient: str, doctor: str) -> ConsultationEvidence:
    turns = [Turn(role="patient", text=patient), Turn(role="doctor", text=doctor)]
    return ConsultationEvidence(CASE, Transcript(case_id=CASE.id, persona=Persona(), turns=turns))


@pytest.mark.parametrize(
    ("patient", "doctor", "met"),
    [
        # sympathy for what the patient spoke of
        ("My husband died last month and now I can't sleep.", "I'm so sorry for your loss.", True),
        ("The cramping pain keeps me up.", "I'm sorry about the pain. When did it start?", True),
        ("I feel dizzy.", "I'm sorry to hear that. When did it start?", True),
        ("I feel dizzy.", "I'm sorry about all the trouble. When did it start?", True),
        # a formula that answers nothing the patient said (the trained doctor's, session 12)
        ("I feel dizzy when I stand up.", "I'm sorry for your loss. When did it start?", False),
        ("I've been seeing double.", "I'm sorry for your pain. Can you tell me more?", False),
        # an offer of help acknowledges no feeling
        ("I keep worrying about it.", "I'm here to help. Can you tell me more?", False),
    ],
)
def test_sympathy_counts_only_when_it_fits_what_the_patient_said(patient, doctor, met):
    grade = d.empathy(_said(patient, doctor))
    assert grade.met is met, grade.explanation
