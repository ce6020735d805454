"""The consultation environment's hooks, and one consultation end to end (offline and LLM)."""

import json
from pathlib import Path

import pytest

from medverify.backends.mock import MockBackend
from medverify.backends.script import ScriptBackend
from medverify.cases.records import CaseRecord, Persona, Transcript
from medverify.simulator.consult import (
    LAST_TURN_NUDGE,
    ConsultationAborted,
    doctor_messages,
    run_consultation,
)
from medverify.simulator.environment import ConsultationEnv

CASES = Path(__file__).parents[1] / "fixtures" / "sim_cases"
MG = CaseRecord.model_validate_json((CASES / "myasthenia_gravis.json").read_text())
APPENDICITIS = CaseRecord.model_validate_json((CASES / "appendicitis.json").read_text())


async def test_hooks_opening_respond_is_finished():
    env = ConsultationEnv.create(MG, seed=1)
    opening = env.opening()
    assert opening.role == "patient" and "double vision" in opening.text
    assert env.opening() is opening  # recorded once
    reply = await env.respond("Do you take any medications? Any allergies?")
    assert reply.role == "patient" and reply.revealed_fact_ids == ["meds", "allergies"]
    assert env.revealed == {"meds", "allergies"} and not env.is_finished()
    exam = await env.respond("Let me examine your eyes.")
    assert exam.text.startswith("[Exam]") and exam.revealed_fact_ids == ["cn_ptosis"]
    closing = await env.respond("DIAGNOSIS: Myasthenia gravis\nPLAN: pyridostigmine")
    assert env.is_finished() and closing.revealed_fact_ids == []
    t = env.transcript
    assert t.termination_reason == "diagnosis" and t.final_diagnosis == "Myasthenia gravis"
    assert [turn.role for turn in t.turns] == ["patient"] + ["doctor", "patient"] * 3
    assert t.revealed() == {"meds", "allergies", "cn_ptosis"}
    with pytest.raises(RuntimeError):
        await env.respond("One more thing?")


async def test_respond_without_opening_opens_first():
    env = ConsultationEnv.create(MG)
    await env.respond("Any allergies?")
    assert [t.role for t in env.transcript.turns] == ["patient", "doctor", "patient"]


async def test_patient_leaves_when_out_of_patience():
    env = ConsultationEnv.create(MG, persona=Persona(patience=2))
    await env.respond("Any allergies?")
    await env.respond("Hmm.")
    reply = await env.respond("I see.")
    assert env.is_finished() and env.transcript.termination_reason == "patient_left"
    assert "go" in reply.text


async def test_turn_limit():
    env = ConsultationEnv.create(MG, max_turns=2)
    await env.respond("Any allergies?")
    await env.respond("Do you smoke?")
    assert env.transcript.termination_reason == "turn_limit"


async def test_same_seed_same_transcript():
    async def play(seed):
        env = ConsultationEnv.create(
            APPENDICITIS, persona=Persona(verbosity="talkative"), seed=seed
        )
        env.opening()
        for turn in ("Where is the pain?", "Any fever?", "Any nausea?"):
            await env.respond(turn)
        return [t.text for t in env.transcript.turns]

    assert await play(7) == await play(7)


async def test_run_consultation_with_a_script_doctor():
    doctor = ScriptBackend(
        [
            "What brings you in today?",
            "When did it start?",
            "Let me examine your eyes.",
            "Let's order acetylcholine receptor antibodies.",
            "DIAGNOSIS: Myasthenia gravis\nPLAN: pyridostigmine",
        ]
    )
    seen = []
    transcript = await run_consultation(MG, doctor, seed=0, on_turn=seen.append)
    assert transcript.termination_reason == "diagnosis"
    assert transcript.final_diagnosis == "Myasthenia gravis"
    assert transcript.revealed() == {"hpi_diplopia", "cn_ptosis", "achr_antibodies"}
    assert transcript.doctor.startswith("script:") and transcript.patient == "offline"
    assert len(seen) == len(transcript.turns) == 11
    # the transcript round-trips as the DESIGN format
    again = Transcript.model_validate_json(transcript.model_dump_json())
    assert again == transcript


async def test_doctor_is_nudged_on_its_last_turn():
    prompts = []

    async def doctor(messages):
        prompts.append(messages)
        return "Any allergies?"

    transcript = await run_consultation(MG, doctor, max_turns=2)
    assert transcript.termination_reason == "turn_limit"
    assert LAST_TURN_NUDGE not in prompts[0][-1].content
    assert LAST_TURN_NUDGE in prompts[1][-1].content
    assert prompts[0][0].role == "system" and prompts[0][1].role == "user"


async def test_doctor_can_stop_the_consultation():
    async def doctor(messages):
        raise ConsultationAborted

    transcript = await run_consultation(MG, doctor)
    assert transcript.termination_reason is None and len(transcript.turns) == 1


def test_doctor_messages_alternate():
    transcript = Transcript(case_id="x", persona=Persona())
    assert doctor_messages(transcript, "sys")[0].content == "sys"


async def test_llm_mode_both_units_on_one_backend():
    calls = {"selector": 0, "patient": 0}

    def respond(messages, params):
        system = messages[0].content
        if "fact_ids" in system:
            calls["selector"] += 1
            doctor_turn = messages[1].content
            return json.dumps({"fact_ids": ["meds"] if "medic" in doctor_turn else []})
        calls["patient"] += 1
        assert "She takes no regular medications." in system or "(none)" in system
        return "No, I'm not on any medicines."

    patient = MockBackend(respond)
    doctor = ScriptBackend(["Do you take any medications?", "DIAGNOSIS: Myasthenia gravis"])
    transcript = await run_consultation(MG, doctor, patient=patient)
    assert transcript.turns[2].text == "No, I'm not on any medicines."
    assert transcript.turns[2].revealed_fact_ids == ["meds"]
    assert calls == {"selector": 1, "patient": 1}
    assert transcript.patient == "mock"


async def test_llm_mode_bad_json_falls_back_and_is_recorded():
    def respond(messages, params):
        if "fact_ids" in messages[0].content:
            return "I think medications."
        return "I don't take anything."

    env = ConsultationEnv.create(MG, patient=MockBackend(respond))
    reply = await env.respond("Do you take any medications?")
    assert reply.revealed_fact_ids == ["meds"]
    assert env.traces[-1].selection.mode == "llm_fallback"


async def test_an_open_invitation_brings_out_new_facts_a_few_times_only():
    """The trained doctor's exploit: the same open question, a new record fact each time."""
    from medverify.simulator.environment import MAX_VOLUNTEERED

    env = ConsultationEnv.create(MG, persona=Persona(patience=10), max_turns=10)
    new_per_turn = []
    for _ in range(5):
        before = set(env.revealed)
        await env.respond("Can you tell me more about that?")
        new_per_turn.append(len(env.revealed - before))
    assert sum(new_per_turn[:MAX_VOLUNTEERED]) == MAX_VOLUNTEERED
    assert new_per_turn[MAX_VOLUNTEERED:] == [0] * (5 - MAX_VOLUNTEERED)
    reply = env.transcript.turns[-1]
    assert reply.role == "patient" and reply.revealed_fact_ids == []
    # Asking about something still works after the invitations are spent.
    asked = await env.respond("Do you take any medications?")
    assert asked.revealed_fact_ids == ["meds"]


async def test_a_fork_keeps_its_own_count_of_invitations():
    env = ConsultationEnv.create(MG, persona=Persona(patience=10), max_turns=10)
    await env.respond("Is there anything else you've noticed?")
    twin = env.fork()
    await twin.respond("Anything else?")
    assert (env.volunteered, twin.volunteered) == (1, 2)


async def test_a_finding_written_in_the_report_format_is_made_up_not_requested():
    """A trained doctor wrote "[Exam] Temperature: 36.8°C" and was handed the real vitals."""
    made_up = ConsultationEnv.create(MG, persona=Persona(patience=10), max_turns=10)
    reply = await made_up.respond("[Exam] Temperature: 36.8°C (98°F)\n[Test] AChR antibodies: none")
    assert reply.revealed_fact_ids == []
    asked = ConsultationEnv.create(MG, persona=Persona(patience=10), max_turns=10)
    reply = await asked.respond("Let me check your temperature and blood pressure.")
    assert reply.revealed_fact_ids == ["vitals"]
