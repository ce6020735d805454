"""One consultation: a doctor model interviews the simulated patient until the Gate ends it.

The doctor is any :class:`~medverify.backends.base.Backend` (a real model, ``script:<file>`` for a
scripted doctor, a person at the terminal in ``medverify simulate --interactive``). It sees its
system prompt and the dialogue so far -- patient turns as ``user`` messages, its own as
``assistant`` -- and is reminded on its last turn to give its final assessment. The patient is
:class:`~medverify.simulator.environment.ConsultationEnv`: offline (embeddings and templates)
when ``patient`` is ``None``, else both of its units run on that backend. Used by
``medverify simulate``, and by the consultation benchmark for every case.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from medverify.backends.base import Backend, Message
from medverify.cases.records import CaseRecord, Persona, Transcript, Turn
from medverify.simulator.environment import ConsultationEnv
from medverify.simulator.fact_unit import OfflineFactUnit
from medverify.simulator.gate import DEFAULT_MAX_TURNS

log = logging.getLogger(__name__)

DEFAULT_DOCTOR_SYSTEM_PROMPT = (
    "You are a physician seeing a patient in clinic. Take a focused history: ask one short "
    "question per turn. To examine the patient or order a test, say so explicitly, naming it "
    "(for example 'I'd like to examine your abdomen' or 'Let's order a complete blood count'); "
    "the findings will be reported to you. Do not make up findings. When you are ready, give "
    "your final assessment: a line starting with 'DIAGNOSIS:' with the most likely diagnosis, "
    "optionally followed by a line starting with 'PLAN:'."
)
LAST_TURN_NUDGE = (
    "[This is your last turn: give your final assessment now, as a line starting with "
    "'DIAGNOSIS:' and optionally a line starting with 'PLAN:'.]"
)

DoctorTurn = Callable[[list[Message]], Awaitable[str]]


class ConsultationAborted(Exception):
    """Raised by a doctor turn function to stop the consultation early (``/quit``)."""


def doctor_messages(
    transcript: Transcript, system_prompt: str, *, last_turn: bool = False
) -> list[Message]:
    """What the doctor sees: its instructions, then the dialogue from its side."""
    messages = [Message(role="system", content=system_prompt)]
    for turn in transcript.turns:
        role = "user" if turn.role == "patient" else "assistant"
        messages.append(Message(role=role, content=turn.text))
    if last_turn and messages[-1].role == "user":
        last = messages[-1]
        messages[-1] = Message(role="user", content=f"{last.content}\n\n{LAST_TURN_NUDGE}")
    return messages


def backend_doctor(doctor: Backend, *, seed: int = 0, max_tokens: int = 256) -> DoctorTurn:
    """A doctor turn function on a backend (greedy, so a run is reproducible)."""

    async def turn(messages: list[Message]) -> str:
        completion = await doctor.complete(messages, max_tokens=max_tokens, seed=seed)
        return completion.text.strip()

    return turn


async def run_consultation(
    case: CaseRecord,
    doctor: Backend | DoctorTurn,
    *,
    patient: Backend | None = None,
    persona: Persona | None = None,
    seed: int = 0,
    max_turns: int = DEFAULT_MAX_TURNS,
    doctor_system_prompt: str = DEFAULT_DOCTOR_SYSTEM_PROMPT,
    on_turn: Callable[[Turn], None] | None = None,
    fact_unit: OfflineFactUnit | None = None,
) -> Transcript:
    """Play one consultation and return its transcript.

    Args:
        case: the patient's record.
        doctor: the doctor model, or an async function from messages to the doctor's reply
            (``--interactive`` uses one that reads the terminal).
        patient: ``None`` for the offline patient (embeddings + templates); a backend runs both
            patient units on it.
        persona: how the patient talks (default: the case's own persona, else a neutral one).
        seed: fixes the template wording and the doctor's sampling seed.
        max_turns: most doctor turns.
        doctor_system_prompt: the doctor's instructions.
        on_turn: called with every turn as it happens (the CLI prints them).
        fact_unit: a shared offline Fact Unit (reuses its fact embeddings across consultations).

    Returns:
        The transcript, with the termination reason and the final diagnosis (if one was given);
        a consultation the doctor stops (:class:`ConsultationAborted`) has no reason.
    """
    env = ConsultationEnv.create(
        case,
        patient=patient,
        persona=persona,
        seed=seed,
        max_turns=max_turns,
        offline_fact_unit=fact_unit,
    )
    ask = backend_doctor(doctor, seed=seed) if isinstance(doctor, Backend) else doctor
    env.transcript.doctor = doctor.spec if isinstance(doctor, Backend) else "interactive"
    env.transcript.patient = patient.spec if patient is not None else "offline"
    opening = env.opening()
    if on_turn is not None:
        on_turn(opening)
    while not env.is_finished():
        messages = doctor_messages(
            env.transcript, doctor_system_prompt, last_turn=env.gate.last_turn()
        )
        try:
            said = await ask(messages)
        except ConsultationAborted:
            log.info("consultation %s stopped by the doctor", case.id)
            break
        doctor_turn_count = len(env.transcript.turns)
        reply = await env.respond(said)
        if on_turn is not None:
            on_turn(env.transcript.turns[doctor_turn_count])
            on_turn(reply)
    transcript = env.transcript
    log.info(
        "consultation %s ended (%s) after %d doctor turns",
        case.id,
        transcript.termination_reason,
        env.gate.doctor_turns,
    )
    return transcript
