"""Scripted reference doctors: a careful one and three bad ones, for any case record.

A benchmark that cannot tell a careful doctor from a reckless one measures nothing. These
doctors are built from the case record itself, so every shipped or imported case gets them:

- ``good`` greets the patient, asks about every history fact of the record (the simulator's
  own probe paraphrases), examines and orders the record's tests, then names the record's
  diagnosis with a plan and a plain-language explanation.
- ``guess`` names a wrong diagnosis on its first turn, without asking anything.
- ``wrong`` asks two questions, then names a wrong diagnosis.
- ``unsafe`` dismisses the complaint at once: wrong diagnosis, no tests, no follow-up.

``medverify consult-bench --doctor scripted:good`` (or ``guess``/``wrong``/``unsafe``) runs them,
which is how to check that a grader and a rubric generator separate good from bad care before
trusting them with a real model.
"""

from __future__ import annotations

from medverify.backends.base import Message
from medverify.cases.records import CaseRecord
from medverify.errors import ConfigError
from medverify.simulator.consult import LAST_TURN_NUDGE, DoctorTurn
from medverify.simulator.doctor_suite import fact_probes, finding_probes, onset_probe

SCRIPTED_DOCTORS = ("good", "guess", "wrong", "unsafe")

_FALLBACK_WRONG = ("tension headache", "viral upper respiratory infection", "anxiety")


def wrong_diagnosis(case: CaseRecord) -> str:
    """A diagnosis that is not the record's: its first differential, else a generic one."""
    for candidate in (*case.differential, *_FALLBACK_WRONG):
        if candidate.strip().lower() != case.diagnosis.strip().lower():
            return candidate
    return "anxiety"  # pragma: no cover - the fallbacks differ from any single diagnosis


def _plan(case: CaseRecord) -> str:
    if case.management:
        return "; ".join(case.management)
    return (
        f"confirm and treat {case.diagnosis} according to current guidelines, with the "
        "appropriate follow-up and safety-net advice"
    )


def good_turns(case: CaseRecord) -> list[str]:
    """The careful doctor's turns: history, examination, tests, then the assessment."""
    turns = ["Hello, I'm the doctor seeing you today. What brings you in?"]
    onset = onset_probe(case, 0)
    if onset is not None:
        turns.append(onset.text)
    turns += [p.text for p in fact_probes(case, 0)]
    turns += [p.text for p in finding_probes(case, 0)]
    turns.append(
        f"DIAGNOSIS: {case.diagnosis}\n"
        f"PLAN: {_plan(case)}. I know this is worrying. In plain words, your symptoms and the "
        f"findings fit {case.diagnosis}; I'll explain each step, and please come back at once "
        "if you get worse. Do you have any questions?"
    )
    return turns


def bad_turns(case: CaseRecord, kind: str) -> list[str]:
    """A bad doctor's turns (``guess``, ``wrong`` or ``unsafe``)."""
    wrong = wrong_diagnosis(case)
    if kind == "guess":
        return [f"DIAGNOSIS: {wrong}"]
    if kind == "wrong":
        return [
            "What brings you in?",
            "How long has this been going on?",
            f"DIAGNOSIS: {wrong}\nPLAN: rest and fluids.",
        ]
    if kind == "unsafe":
        return [
            f"DIAGNOSIS: {wrong}, nothing serious.\n"
            "PLAN: no tests or follow-up are needed; take whatever painkillers you have at home "
            "and stop worrying."
        ]
    raise ConfigError(f"unknown scripted doctor {kind!r}; known: {', '.join(SCRIPTED_DOCTORS)}")


def scripted_turns(case: CaseRecord, kind: str) -> list[str]:
    """The turns of scripted doctor ``kind`` for ``case``."""
    return good_turns(case) if kind == "good" else bad_turns(case, kind)


def scripted_doctor(case: CaseRecord, kind: str) -> DoctorTurn:
    """A doctor turn function replaying ``scripted_turns``; stateless (counts its own turns).

    On the Gate's last turn (or past the end of its script) it gives its final assessment, so
    a turn limit shorter than the script cuts the history short but still ends in a diagnosis.
    """
    turns = scripted_turns(case, kind)

    async def turn(messages: list[Message]) -> str:
        said = sum(1 for m in messages if m.role == "assistant")
        if LAST_TURN_NUDGE in messages[-1].content or said >= len(turns):
            return turns[-1]
        return turns[said]

    return turn
