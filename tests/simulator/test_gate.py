"""The Termination Gate: diagnosis, turn limit, the patient leaving."""

import pytest

from medverify.cases.diagnosis import extract_diagnosis
from medverify.simulator.gate import TerminationGate


@pytest.mark.parametrize(
    ("text", "diagnosis"),
    [
        ("DIAGNOSIS: Myasthenia gravis", "Myasthenia gravis"),
        ("Thanks.\nDIAGNOSIS: Myasthenia gravis\nPLAN: pyridostigmine", "Myasthenia gravis"),
        ("diagnosis:   **Acute appendicitis**  PLAN: surgery", "Acute appendicitis"),
        ("DIAGNOSIS:", ""),
        ("What do you think the diagnosis is?", None),
        ("Let me think about the diagnosis", None),
    ],
)
def test_extract_diagnosis(text, diagnosis):
    assert extract_diagnosis(text) == diagnosis


def test_diagnosis_ends_at_once():
    gate = TerminationGate()
    assert gate.on_doctor_turn("Any allergies?") is None
    assert gate.on_patient_turn(elicited_new=True) is None
    assert gate.on_doctor_turn("DIAGNOSIS: Migraine\nPLAN: diary") == "diagnosis"
    assert gate.finished and gate.final_diagnosis == "Migraine" and gate.doctor_turns == 2


def test_turn_limit_after_the_patient_answers_the_last_turn():
    gate = TerminationGate(max_turns=3)
    for i in range(2):
        gate.on_doctor_turn(f"Question {i}?")
        assert gate.on_patient_turn(elicited_new=True) is None
    assert gate.last_turn()
    gate.on_doctor_turn("Question 3?")
    assert gate.on_patient_turn(elicited_new=True) == "turn_limit"


def test_patient_leaves_after_patience_unproductive_turns_in_a_row():
    gate = TerminationGate(patience=2)
    gate.on_doctor_turn("Hmm.")
    assert gate.on_patient_turn(elicited_new=False) is None
    gate.on_doctor_turn("Any allergies?")
    assert gate.on_patient_turn(elicited_new=True) is None  # streak reset
    gate.on_doctor_turn("Hmm.")
    gate.on_patient_turn(elicited_new=False)
    gate.on_doctor_turn("I see.")
    assert gate.on_patient_turn(elicited_new=False) == "patient_left"


def test_no_patience_never_leaves():
    gate = TerminationGate(patience=None, max_turns=50)
    for _ in range(30):
        gate.on_doctor_turn("Hmm.")
        assert gate.on_patient_turn(elicited_new=False) is None
