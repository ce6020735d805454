"""``medverify demo`` — the main job: simulated consultations on bundled cases, offline.

A doctor model (the embedded one by default) interviews the patient simulator on bundled cases:
the Fact Unit answers only what the doctor asks, from the record; the Affective Unit speaks in the
persona's voice; the Termination Gate ends on ``DIAGNOSIS:``, at the turn limit or when the
patient loses patience. Each finished consultation is written to the run store, so an
interrupted demo resumes with the cases it had not finished. Until the consultation benchmark
(rubrics, grading, per-dimension scores) lands, the demo reports transcripts and process
measures: turns, facts elicited, and whether the stated diagnosis names the record's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel

from medverify.backends.base import Backend
from medverify.runs.store import RunStore
from medverify.simulator.consult import backend_doctor, run_consultation
from medverify.simulator.personas import persona_for
from medverify.simulator.records import CaseRecord, Transcript, Turn

DEFAULT_CASES = ("agentclinic-medqa-001",)


class CaseOutcome(BaseModel):
    """One consultation and its process measures."""

    case_id: str
    diagnosis: str
    transcript: Transcript
    doctor_turns: int
    facts_elicited: int
    facts_total: int
    diagnosis_named: bool


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def names_diagnosis(stated: str | None, truth: str) -> bool:
    """Whether the stated diagnosis contains every content word of the record's diagnosis.

    A crude process measure for the demo only; graded rubrics (issue 5) judge correctness.
    """
    if not stated:
        return False
    return _words(truth) <= _words(stated)


def outcome(case: CaseRecord, transcript: Transcript) -> CaseOutcome:
    """Process measures of one consultation."""
    revealed = transcript.revealed()
    return CaseOutcome(
        case_id=case.id,
        diagnosis=case.diagnosis,
        transcript=transcript,
        doctor_turns=sum(1 for t in transcript.turns if t.role == "doctor"),
        facts_elicited=len(revealed & {f.id for f in case.all_facts()}),
        facts_total=len(case.all_facts()),
        diagnosis_named=names_diagnosis(transcript.final_diagnosis, case.diagnosis),
    )


async def run_demo(
    cases: Sequence[CaseRecord],
    doctor: Backend,
    store: RunStore,
    *,
    patient: Backend | None = None,
    max_turns: int = 4,
    doctor_max_tokens: int = 96,
    seed: int = 0,
    on_turn: Callable[[str, Turn], None] | None = None,
) -> list[CaseOutcome]:
    """One consultation per case, each persisted when it ends; finished cases are not redone."""
    results = []
    for case in cases:
        stored = store.get("consultation", case.id)
        if stored is not None:
            transcript = Transcript.model_validate(stored)
            if on_turn is not None:
                for turn in transcript.turns:
                    on_turn(case.id, turn)
        else:
            transcript = await run_consultation(
                case,
                backend_doctor(doctor, seed=seed, max_tokens=doctor_max_tokens),
                patient=patient,
                persona=persona_for(case),
                seed=seed,
                max_turns=max_turns,
                on_turn=(lambda t, cid=case.id: on_turn(cid, t)) if on_turn else None,
            )
            # The doctor ran through a turn function (to cap its tokens): record its real spec.
            transcript = transcript.model_copy(update={"doctor": doctor.spec})
            store.put("consultation", case.id, transcript)
        results.append(outcome(case, transcript))
    return results


def write_summary(run_dir: Path, outcomes: Sequence[CaseOutcome]) -> Path:
    """``transcripts.json``: every consultation with its measures."""
    path = run_dir / "transcripts.json"
    path.write_text(
        "[\n" + ",\n".join(o.model_dump_json(indent=2) for o in outcomes) + "\n]\n",
        encoding="utf-8",
    )
    return path
