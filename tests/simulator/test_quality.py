"""The quality suite: its checks catch what they should, and the offline simulator meets targets."""

from pathlib import Path

from medverify.cases.loading import load_cases
from medverify.cases.records import CaseRecord, Persona, Turn
from medverify.simulator.affective import template_vocabulary
from medverify.simulator.doctor_suite import (
    adversarial_probes,
    scripted_doctors,
    termination_scenarios,
)
from medverify.simulator.quality import _Checker, evaluate, unvoiceable_facts

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sim_cases"
CASES = load_cases(FIXTURES)
MG = next(c for c in CASES if c.id == "sim-myasthenia-gravis")


def test_scripted_doctors_cover_every_fact_in_three_paraphrases():
    doctors = scripted_doctors(MG, 3)
    assert len(doctors) == 3
    texts = [{p.text for p in d.probes} for d in doctors]
    assert texts[0] != texts[1] != texts[2]
    for doctor in doctors:
        asked = {t for p in doctor.probes for t in p.targets}
        assert {f.id for f in MG.all_facts()} <= asked
        assert doctor.probes[-1].text.startswith("DIAGNOSIS:")
        kinds = {p.kind for p in doctor.probes}
        assert {"missing_exam", "missing_test", "anything_else", "adversarial"} <= kinds
    texts = {p.text for p in adversarial_probes(MG)}
    assert "Is it myasthenia gravis?" in texts
    assert {s.expected_reason for s in termination_scenarios(MG)} == {
        "diagnosis",
        "turn_limit",
        "patient_left",
    }


def test_checker_catches_leaks_hallucinations_and_persona_slips():
    checker = _Checker(MG, template_vocabulary())
    assert checker.leaked_names("Could it be myasthenia gravis?") == ["Myasthenia gravis"]
    assert checker.leaked_names("Maybe MS?") == ["MS"]
    assert checker.leaked_names("I have difficulty climbing stairs.") == []
    told = Turn(
        role="patient", text="I have difficulty climbing stairs.", revealed_fact_ids=["hpi_stairs"]
    )
    assert checker.untraceable(told, "") == []
    invented = Turn(
        role="patient",
        text="I have difficulty climbing stairs and a fever of 39.",
        revealed_fact_ids=["hpi_stairs"],
    )
    assert checker.untraceable(invented, "") == ["fever"]
    narrator = Turn(role="patient", text="[Exam] Ears: normal readings.")
    assert checker.untraceable(narrator, "Let me check your ears.") == []
    low = Persona(health_literacy="low")
    technical = Turn(role="patient", text="I've had diplopia.", revealed_fact_ids=["hpi_diplopia"])
    assert checker.persona_problems(technical, low)[1]
    terse = Persona(verbosity="terse")
    chatty = Turn(
        role="patient",
        text="I have difficulty climbing stairs. It's really been worrying me.",
        revealed_fact_ids=["hpi_stairs"],
    )
    assert checker.persona_problems(chatty, terse)[1]


def test_facts_naming_the_diagnosis_are_unvoiceable():
    case = MG.model_copy(deep=True)
    case.facts[-1].text = "Her sister has myasthenia gravis."
    assert unvoiceable_facts(case) == ["family"]
    assert unvoiceable_facts(MG) == []


async def test_offline_simulator_meets_the_targets_on_the_fixture_cases():
    report = await evaluate(CASES, personas=("case", "low-literacy", "terse"), doctors=3)
    assert report.leak_dx == 0 and report.leak_unasked == 0, report.failures[:5]
    assert report.recall >= 0.9, report.failures[:5]
    assert report.hallucinated_turns == 0, report.failures[:5]
    assert report.persona == 1.0 and report.termination == 1.0, report.failures[:5]
    assert report.meets_targets()
    assert report.cases == 4 and report.patient_turns > 500


async def test_llm_mode_with_a_leaky_patient_still_leaks_nothing():
    from medverify.backends.mock import MockBackend

    case = CaseRecord.model_validate_json((FIXTURES / "migraine.json").read_text())

    def respond(messages, params):
        if "fact_ids" in messages[0].content:
            return "not json"  # falls back to the offline selector
        return f"Honestly, doctor, I'm sure it's {case.diagnosis.lower()}."

    report = await evaluate([case], patient=MockBackend(respond), personas=("case",), doctors=1)
    assert report.mode == "llm"
    assert report.leak_dx == 0 and report.leak_unasked == 0
    assert report.guard_interventions > 0 and report.llm_fallbacks > 0
