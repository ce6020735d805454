"""Transcript-aware rubric items: what *this* doctor did in *this* consultation.

The core's items hold for any consultation of a case. A transcript adds items that only make
sense for the one that happened, each checkable from the transcript's text:

* a final diagnosis stated without asking about a key history topic (one item per key topic
  the patient never revealed, most important first, at most three);
* premature closure: the final diagnosis after only a few questions, with most of the key
  history never elicited;
* a consultation that ended without any final assessment (turn limit, or a ``DIAGNOSIS:`` line
  that names no condition and plans nothing) or with the patient leaving;
* a doctor turn that repeats an earlier one word for word, or asks one question a third time.

Premature closure is closing *before* the turn the consultation asked for the assessment; the
doctor's last turn is nudged to conclude, and concluding then is following the instruction
(:func:`concluded_when_asked`).

"Revealed" comes from the simulator's own record of which facts each patient turn disclosed
(``Turn.revealed_fact_ids``), not from guessing at the doctor's wording.
"""

from __future__ import annotations

from collections.abc import Sequence

from medverify.cases.closing import closing_of
from medverify.cases.diagnosis import extract_diagnosis
from medverify.cases.records import CaseRecord, Transcript
from medverify.errors import InputError
from medverify.grading.evidence import (
    ConcludedBeforeCheck,
    EvidenceCheck,
    RepeatedTurnCheck,
    TerminationCheck,
    repeated_turns,
)
from medverify.grading.records import RubricItem
from medverify.rubrics.dimensions.shared import HistoryTarget
from medverify.rubrics.records import item

#: Most "diagnosis without asking about X" items per transcript.
MAX_MISSED = 3


def diagnosis_turn(transcript: Transcript) -> int | None:
    """Index (in ``turns``) of the doctor turn with the final assessment, else ``None``."""
    for index, turn in enumerate(transcript.turns):
        if turn.role == "doctor" and extract_diagnosis(turn.text) is not None:
            return index
    return None


def questions_before(transcript: Transcript, end: int) -> int:
    """Doctor turns before turn ``end`` (each is one round of questions or requests).

    Args:
        transcript: the consultation.
        end: index in ``turns`` to count up to (exclusive).

    Returns:
        The number of doctor turns before ``end``.
    """
    return sum(1 for t in transcript.turns[:end] if t.role == "doctor")


def concluded_when_asked(transcript: Transcript, asked: int) -> bool:
    """Whether the assessment came on the turn the consultation asked for it (its last one).

    The doctor's last turn is nudged to conclude. A doctor who does so has not closed early by
    choice: what it never asked already costs it the history items' points, and charging
    premature closure on top made ignoring the instruction (-4 for running out of turns) score
    above following it (up to -15), which taught a trained doctor never to conclude.
    """
    return transcript.max_turns is not None and asked + 1 >= transcript.max_turns


def transcript_items(
    case: CaseRecord, transcript: Transcript, targets: Sequence[HistoryTarget]
) -> list[tuple[RubricItem, EvidenceCheck]]:
    """Items about this consultation (see the module docstring).

    Args:
        case: the case record.
        transcript: a consultation of this case.
        targets: the core's history targets (which facts answer each key history item).

    Returns:
        The transcript items, in the order the module docstring lists them, each with the
        evidence check that decides it (the same evidence that made the item).

    Raises:
        InputError: the transcript is of another case.
    """
    if transcript.case_id != case.id:
        raise InputError(
            f"the transcript is of case {transcript.case_id!r}, not {case.id!r}", field="case_id"
        )
    out: list[tuple[RubricItem, EvidenceCheck]] = []
    revealed = transcript.revealed()
    dx_at = diagnosis_turn(transcript)
    closing = closing_of(transcript)
    concluded = closing.concludes()
    ranked = sorted(targets, key=lambda t: (-t.score, t.order))
    missed = [t for t in ranked if not revealed.intersection(t.fact_ids)]
    asked = questions_before(transcript, dx_at if dx_at is not None else len(transcript.turns))
    if concluded and not concluded_when_asked(transcript, asked):
        for target in missed[:MAX_MISSED]:
            points = -4 if target is ranked[0] else -3
            out.append(
                (
                    item(
                        f"States a final diagnosis without having asked {target.phrase}",
                        points,
                        "consultation_logic",
                        "completeness",
                    ),
                    ConcludedBeforeCheck(groups=[target.fact_ids]),
                )
            )
        if ranked and len(missed) > len(ranked) / 2:
            plural = "s" if asked != 1 else ""
            out.append(
                (
                    item(
                        f"Gives the final diagnosis after only {asked} question turn{plural}, "
                        "before taking a full history",
                        -5,
                        "consultation_logic",
                        "completeness",
                    ),
                    ConcludedBeforeCheck(
                        groups=[t.fact_ids for t in ranked], min_missed=len(ranked) // 2 + 1
                    ),
                )
            )
    ended = transcript.termination_reason
    if not concluded and ended in ("turn_limit", "diagnosis"):
        out.append(
            (
                item(
                    "Runs out of turns without giving a final diagnosis or plan"
                    if ended == "turn_limit"
                    else "Ends the consultation without naming a diagnosis or giving a plan",
                    -4,
                    "consultation_logic",
                    "instruction_following",
                ),
                TerminationCheck(reason="no_conclusion"),
            )
        )
    repeats = repeated_turns(transcript)
    if repeats:
        out.append(
            (
                item(
                    "Repeats a question or statement already made earlier in the consultation",
                    -3,
                    "consultation_logic",
                    "communication_quality",
                ),
                RepeatedTurnCheck(),
            )
        )
    if transcript.termination_reason == "patient_left":
        out.append(
            (
                item(
                    "Loses the patient's trust: the patient leaves before a diagnosis or plan "
                    "is given",
                    -5,
                    "communication_empathy",
                    "communication_quality",
                ),
                TerminationCheck(reason="patient_left"),
            )
        )
    return out
