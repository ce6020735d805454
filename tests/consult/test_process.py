"""Process measures read off transcripts, and the scripted reference doctors."""

from __future__ import annotations

import pytest

from medverify.cases.loading import load_bundled_cases
from medverify.cases.records import Persona, Transcript, Turn
from medverify.consult.process import (
    ProcessMetrics,
    diagnosis_named,
    process_metrics,
    summarize_process,
)
from medverify.consult.render import grader_input, render_transcript
from medverify.consult.scripted import scripted_doctor, scripted_turns, wrong_diagnosis
from medverify.errors import ConfigError
from medverify.simulator.consult import run_consultation

CASES = {c.id: c for c in load_bundled_cases()}
CASE = CASES["agentclinic-medqa-001"]


def test_diagnosis_named_is_strict_but_accepts_variants() -> None:
    assert diagnosis_named("DIAGNOSIS: myasthenia gravis", "Myasthenia gravis")
    assert diagnosis_named("likely CLL", "Chronic lymphocytic leukemia")
    assert not diagnosis_named("pneumonia", "Community acquired pneumonia")
    assert not diagnosis_named(None, "Myasthenia gravis")


def test_wrong_diagnosis_differs_from_the_record_on_every_case() -> None:
    for case in CASES.values():
        assert wrong_diagnosis(case).lower() != case.diagnosis.lower()
        assert not diagnosis_named(wrong_diagnosis(case), case.diagnosis)


def test_scripted_turns_end_in_an_assessment() -> None:
    good = scripted_turns(CASE, "good")
    assert len(good) > 5 and good[-1].startswith(f"DIAGNOSIS: {CASE.diagnosis}")
    assert scripted_turns(CASE, "guess") == [f"DIAGNOSIS: {wrong_diagnosis(CASE)}"]
    with pytest.raises(ConfigError, match="unknown scripted doctor"):
        scripted_turns(CASE, "sloppy")


async def test_good_doctor_elicits_facts_and_names_the_diagnosis() -> None:
    transcript = await run_consultation(CASE, scripted_doctor(CASE, "good"), max_turns=40)
    metrics = process_metrics(CASE, transcript)
    assert metrics.termination_reason == "diagnosis"
    assert metrics.diagnosis_correct and metrics.diagnosis_given
    assert metrics.facts_elicited >= metrics.facts_total - 1
    assert metrics.findings_elicited > 0
    assert metrics.questions_asked >= len(CASE.facts) // 2


async def test_guessing_doctor_elicits_nothing() -> None:
    transcript = await run_consultation(CASE, scripted_doctor(CASE, "guess"), max_turns=40)
    metrics = process_metrics(CASE, transcript)
    assert metrics.doctor_turns == 1 and metrics.facts_elicited == 0
    assert metrics.diagnosis_given and not metrics.diagnosis_correct


async def test_scripted_doctor_gives_its_assessment_on_the_last_turn() -> None:
    transcript = await run_consultation(CASE, scripted_doctor(CASE, "good"), max_turns=3)
    assert transcript.termination_reason == "diagnosis"
    assert diagnosis_named(transcript.final_diagnosis, CASE.diagnosis)


async def test_grader_input_shows_the_whole_transcript_but_not_the_record() -> None:
    transcript = await run_consultation(CASE, scripted_doctor(CASE, "wrong"), max_turns=5)
    conversation, response = grader_input(CASE, transcript)
    assert response == render_transcript(transcript)
    assert response.splitlines()[0].startswith("Patient: ")
    assert sum(line.startswith("Doctor: ") for line in response.splitlines()) == 3
    assert CASE.chief_complaint in conversation[0]["content"]
    assert CASE.diagnosis.lower() not in conversation[0]["content"].lower()


#: One consultation's process measures as a score stored before ``repeated_turns`` existed.
STORED_METRICS: dict[str, object] = dict(
    doctor_turns=4, questions_asked=3, facts_elicited=2, facts_total=4,
    findings_elicited=0, findings_total=0, diagnosis_given=True,
    diagnosis_correct=False, red_flags_total=0, red_flags_addressed=0,
    termination_reason="diagnosis",
)  # fmt: skip


def test_summary_rates_skip_cases_without_the_thing() -> None:
    def metrics(**kw: object) -> ProcessMetrics:
        return ProcessMetrics.model_validate({**STORED_METRICS, **kw})

    summary = summarize_process(
        [metrics(), metrics(diagnosis_correct=True, findings_total=2, findings_elicited=1)]
    )
    assert summary.n == 2
    assert summary.diagnosis_correct_rate == 0.5
    assert summary.mean_fact_recall == 0.5
    assert summary.mean_finding_recall == 0.5  # only the case that has findings counts
    assert summary.red_flags_addressed_rate is None
    assert summary.terminations == {"diagnosis": 2}


def test_every_repeated_turn_is_counted_not_just_the_first() -> None:
    """The rubric charges a repeat once; the process measure counts each, so a fixed
    questionnaire shows (the shipped doctor repeated 66 of its 120 held-out question turns)."""
    asked = "Sorry about that. Could you say a bit more about how you feel?"

    def transcript(doctor: list[str]) -> Transcript:
        turns = [
            t
            for d in doctor
            for t in (Turn(role="doctor", text=d), Turn(role="patient", text="Hm."))
        ]
        return Transcript(case_id=CASE.id, persona=Persona(), turns=turns)

    looping = process_metrics(CASE, transcript([asked, asked, "When did it start?", asked, asked]))
    varied = process_metrics(CASE, transcript([asked, "When did it start?", "Any fever?"]))
    assert looping.repeated_turns == 3
    assert varied.repeated_turns == 0
    summary = summarize_process([looping, varied])
    assert summary.mean_repeated_turns == 1.5


def test_scores_stored_before_repeats_were_counted_are_not_read_as_zero() -> None:
    old = ProcessMetrics.model_validate(STORED_METRICS)
    assert old.repeated_turns is None
    assert summarize_process([old]).mean_repeated_turns is None
    counted = ProcessMetrics.model_validate({**STORED_METRICS, "repeated_turns": 2})
    assert summarize_process([old, counted]).mean_repeated_turns == 2.0
