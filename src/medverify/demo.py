"""``medverify demo`` — a short real consultation on the embedded model, offline.

Until the patient simulator and the consultation benchmark land, the demo plays one bundled case
(AgentClinic case 1, MIT) as a dialogue between two backends: a doctor model that asks questions
and ends with ``DIAGNOSIS:``, and a patient model whose instructions hold only the patient's own
story (demographics, history, symptoms, past and social history). The record's diagnosis, exam
findings and test results never enter the patient's prompt, so it cannot reveal them. Each turn
is written to the run store as it finishes: an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from medverify.backends.base import Backend, Message
from medverify.runs.store import RunStore

DIAGNOSIS_MARK = re.compile(r"DIAGNOSIS\s*:\s*(.+)", re.IGNORECASE | re.DOTALL)

DOCTOR_SYSTEM = (
    "You are a physician seeing a patient in clinic. Ask one short, focused question per turn "
    "about their symptoms, history, medications, allergies or family history. When you are "
    "ready, give your final assessment as a line starting with 'DIAGNOSIS:'."
)
LAST_TURN_NUDGE = "Please give your final assessment now, in one line starting with 'DIAGNOSIS:'."


class DemoTurn(BaseModel):
    """One utterance of the consultation."""

    role: Literal["doctor", "patient"]
    text: str
    latency_s: float = 0.0
    completion_tokens: int = 0


class DemoTranscript(BaseModel):
    """The consultation as played, written to ``transcript.json``."""

    case_id: str
    doctor: str
    patient: str
    turns: list[DemoTurn] = Field(default_factory=list)
    ended_by: Literal["diagnosis", "turn_limit"] = "turn_limit"
    final_diagnosis: str | None = None
    correct_diagnosis: str
    source: str


def load_demo_case() -> dict[str, Any]:
    """The bundled demo case."""
    text = resources.files("medverify.data").joinpath("demo_case.json").read_text("utf-8")
    return json.loads(text)


def patient_system_prompt(case: dict[str, Any]) -> str:
    """The patient's instructions: their own story only, never the diagnosis or test results."""
    actor = case["patient_actor"]
    story = "\n".join(
        f"- {key.replace('_', ' ')}: {value if isinstance(value, str) else json.dumps(value)}"
        for key, value in actor.items()
    )
    return (
        "You are a patient talking to a doctor. Stay in character. Answer only what the doctor "
        "asks, in one or two short sentences of plain everyday language. You do not know what "
        "illness you have; never guess or name a diagnosis.\nAbout you:\n" + story
    )


def opening_line(case: dict[str, Any]) -> str:
    """What the patient says first: their main complaint, in their words."""
    primary = case["patient_actor"]["Symptoms"]["Primary_Symptom"]
    return f"Hello doctor. I've been having {primary.lower()} and it's worrying me."


def final_diagnosis(text: str) -> str | None:
    """The diagnosis a doctor turn states after ``DIAGNOSIS:``, if it states one."""
    match = DIAGNOSIS_MARK.search(text)
    return match.group(1).strip().splitlines()[0].strip() if match else None


async def run_demo_consultation(
    doctor: Backend,
    patient: Backend,
    store: RunStore,
    *,
    max_doctor_turns: int = 4,
    on_turn: Callable[[DemoTurn], None] | None = None,
) -> DemoTranscript:
    """Play the bundled case between ``doctor`` and ``patient``, one persisted turn at a time."""
    case = load_demo_case()
    transcript = DemoTranscript(
        case_id=case["id"],
        doctor=doctor.spec,
        patient=patient.spec,
        correct_diagnosis=case["correct_diagnosis"],
        source=case["_source"],
    )
    patient_system = patient_system_prompt(case)
    turns = transcript.turns

    async def take_turn(index: int, role: Literal["doctor", "patient"]) -> DemoTurn:
        stored = store.get("turn", f"{index:03d}")
        if stored is not None:
            turn = DemoTurn.model_validate(stored)
        else:
            if role == "doctor":
                msgs = [Message(role="system", content=DOCTOR_SYSTEM)]
                msgs += [
                    Message(role="user" if t.role == "patient" else "assistant", content=t.text)
                    for t in turns
                ]
                if index // 2 + 1 >= max_doctor_turns:
                    msgs.append(Message(role="user", content=LAST_TURN_NUDGE))
                completion = await doctor.complete(msgs, max_tokens=96)
            else:
                msgs = [Message(role="system", content=patient_system)]
                msgs += [
                    Message(role="user" if t.role == "doctor" else "assistant", content=t.text)
                    for t in turns
                ]
                completion = await patient.complete(msgs, max_tokens=64)
            turn = DemoTurn(
                role=role,
                text=completion.text.strip(),
                latency_s=completion.latency_s,
                completion_tokens=completion.usage.completion_tokens,
            )
            store.put("turn", f"{index:03d}", turn)
        if on_turn is not None:
            on_turn(turn)
        return turn

    opening = store.get("turn", "000")
    first = (
        DemoTurn.model_validate(opening)
        if opening
        else DemoTurn(role="patient", text=opening_line(case))
    )
    if opening is None:
        store.put("turn", "000", first)
    if on_turn is not None:
        on_turn(first)
    turns.append(first)
    index = 1
    for doctor_turn in range(max_doctor_turns):
        said = await take_turn(index, "doctor")
        turns.append(said)
        index += 1
        diagnosis = final_diagnosis(said.text)
        if diagnosis:
            transcript.ended_by = "diagnosis"
            transcript.final_diagnosis = diagnosis
            break
        if doctor_turn + 1 < max_doctor_turns:
            turns.append(await take_turn(index, "patient"))
            index += 1
    transcript_path(store.run_dir).write_text(
        transcript.model_dump_json(indent=2), encoding="utf-8"
    )
    return transcript


def transcript_path(run_dir: Path) -> Path:
    """Where the demo writes its transcript."""
    return run_dir / "transcript.json"
