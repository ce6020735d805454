"""Evidence checks: rubric items decided from what the simulator recorded, not by a model.

The patient simulator knows exactly what happened in a consultation: which record facts the Fact
Unit revealed and at which turn, which examinations and tests were asked for, and what the closing
statement says. An item such as "Asks about weakness in the upper limbs" is decided by whether the
fact that answers it was revealed; "States myasthenia gravis as the final diagnosis" by the parsed
closing statement (:mod:`medverify.cases.closing`); "States a final diagnosis without having asked
about X" by the turn order. Asking a model to re-read the transcript for these is slower and
worse: a keyword model takes a mention for a statement, and an LLM judge can be talked round.

A check sits *beside* a HealthBench-format item (``Rubric.checks``, keyed by criterion), so an LLM
judge, the report and ``medverify rubrics --out`` still see plain criteria. The
:class:`EvidenceGrader` answers checked items from the evidence (the explanation cites the turn and
fact ids) and hands every other item to the configured grader, which keeps the judgement items:
communication, ethics and the quality of the plan.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from medverify.cases.closing import ClosingStatement, closing_of, names_condition
from medverify.cases.records import CaseRecord, Transcript
from medverify.grading.records import Grade
from medverify.text.matching import split_sentences, stem, words


class RevealedCheck(BaseModel):
    """Met when the patient revealed at least one of these record facts (asked, examined, ordered).

    History facts are revealed only when a doctor turn asks about them, exam findings when that
    examination is requested, test results when that test is ordered (the Fact Unit decides).
    """

    kind: Literal["revealed"] = "revealed"
    fact_ids: list[str] = Field(min_length=1)


class DiagnosisCheck(BaseModel):
    """Decided by the parsed closing statement.

    ``final``: the single final diagnosis is the record's (hedging over several does not count);
    ``wrong_final``: a final diagnosis was given and none of the offered ones is the record's;
    ``missed_final``: as ``wrong_final``, or no condition was named at all although the
    consultation reached the turn that asked for the assessment (SCAN-bench scores a missing
    diagnosis as a wrong one; charging only a wrong one taught a weak doctor never to name one);
    ``considered``: the record's diagnosis is the final one, a hedged candidate or in the
    differential (and not ruled out); ``alternatives``: the statement names at least one
    diagnosis besides the final one (a differential, a hedge, or one ruled out).
    """

    kind: Literal["diagnosis"] = "diagnosis"
    expect: Literal["final", "wrong_final", "missed_final", "considered", "alternatives"]


class ConcludedBeforeCheck(BaseModel):
    """A fault: a final diagnosis given before enough of these groups of facts were revealed.

    Met when a closing statement exists and at least ``min_missed`` groups had none of their
    facts revealed before the closing turn. An empty group list means "every exam finding and
    test result of the record, or any examination or test asked for" as one group.
    """

    kind: Literal["concluded_before"] = "concluded_before"
    groups: list[list[str]] = Field(default_factory=list)
    min_missed: int = Field(1, ge=1)


class TerminationCheck(BaseModel):
    """Met when the consultation ended this way.

    ``turn_limit``: out of turns with no assessment; ``no_conclusion``: ended (out of turns or
    on a ``DIAGNOSIS:`` line) without naming a condition or giving a plan; ``patient_left``: the
    patient left before any assessment.
    """

    kind: Literal["termination"] = "termination"
    reason: Literal["turn_limit", "patient_left", "no_conclusion"]


class RepeatedTurnCheck(BaseModel):
    """Met when a doctor turn repeats an earlier one (:func:`repeated_turns`).

    A repeated question wastes one of the consultation's turns and tells the patient they were
    not heard; it is read off the transcript (punctuation and case aside), not judged.
    """

    kind: Literal["repeated"] = "repeated"


class RedFlagCheck(BaseModel):
    """Met when a doctor turn asks about the red flag, or a fact that matches it was revealed.

    ``addressed=False`` inverts it: the fault "ends the consultation without addressing" it.
    """

    kind: Literal["red_flag"] = "red_flag"
    flag: str
    fact_ids: list[str] = Field(default_factory=list)
    addressed: bool = True


class DetectorCheck(BaseModel):
    """A judgement item that an offline detector can decide (:mod:`medverify.grading.detectors`).

    With an LLM judge configured, the judge decides it; offline, the detector does.
    """

    kind: Literal["detector"] = "detector"
    detector: str


EvidenceCheck = Annotated[
    RevealedCheck
    | DiagnosisCheck
    | ConcludedBeforeCheck
    | TerminationCheck
    | RepeatedTurnCheck
    | RedFlagCheck
    | DetectorCheck,
    Field(discriminator="kind"),
]


class ConsultationEvidence:
    """What a consultation recorded, read once for all of its checks.

    Args:
        case: the record the consultation was played from.
        transcript: the consultation.
    """

    def __init__(self, case: CaseRecord, transcript: Transcript) -> None:
        self.case = case
        self.transcript = transcript
        self.closing: ClosingStatement = closing_of(transcript)
        self.first_revealed: dict[str, int] = {}
        for index, turn in enumerate(transcript.turns):
            for fact_id in turn.revealed_fact_ids:
                self.first_revealed.setdefault(fact_id, index)
        self.findings = {f.id for f in (*case.exam_findings, *case.test_results)}
        self.requested_at = [i for i, turn in enumerate(transcript.turns) if turn.requested]

    @property
    def asked_to_conclude(self) -> bool:
        """Whether the consultation ended where a conclusion was due.

        Out of turns (the last one nudged to conclude), or by the doctor's own closing statement;
        not when the patient left or the run stopped.
        """
        return self.transcript.termination_reason in ("turn_limit", "diagnosis")

    @property
    def closing_turn(self) -> int | None:
        """Index of the turn with the closing statement (``None`` when there is none)."""
        return self.closing.turn if self.closing.found else None

    def revealed_before(self, fact_ids: Sequence[str], end: int | None = None) -> list[str]:
        """The facts among ``fact_ids`` revealed before turn ``end`` (all turns when ``None``)."""
        limit = len(self.transcript.turns) if end is None else end
        return [f for f in fact_ids if self.first_revealed.get(f, limit) < limit]

    def doctor_sentences(self, end: int | None = None) -> list[tuple[int, str]]:
        """(turn, sentence) of every doctor sentence before turn ``end``."""
        turns = self.transcript.turns[: len(self.transcript.turns) if end is None else end]
        return [
            (i, s)
            for i, t in enumerate(turns)
            if t.role == "doctor"
            for s in split_sentences(t.text.replace(";", ".\n"))
        ]


_STOP = frozenset(
    {"a", "an", "and", "any", "are", "as", "at", "be", "been", "by", "did", "do", "does"}
    | {"for", "from", "had", "has", "have", "if", "in", "is", "it", "of", "on", "or", "the"}
    | {"to", "was", "were", "with", "your", "you"}
)


def content_stems(text: str) -> set[str]:
    """Stems of the content words of a text (function words dropped)."""
    return {stem(w) for w in words(text) if len(w) > 2 and w not in _STOP}


def _cite(evidence: ConsultationEvidence, fact_ids: Sequence[str]) -> str:
    return ", ".join(f"{f} (turn {evidence.first_revealed[f]})" for f in fact_ids)


def _revealed(check: RevealedCheck, ev: ConsultationEvidence) -> Grade:
    found = ev.revealed_before(check.fact_ids)
    if found:
        return Grade(met=True, explanation=f"evidence: revealed {_cite(ev, found)}")
    return Grade(
        met=False,
        explanation=f"evidence: none of {', '.join(check.fact_ids)} was revealed",
    )


def _diagnosis(check: DiagnosisCheck, ev: ConsultationEvidence) -> Grade:
    closing, truth = ev.closing, ev.case.diagnosis
    where = f"closing statement (turn {closing.turn})" if closing.found else "no closing statement"
    if check.expect == "final":
        met = closing.names_final(truth)
        said = closing.final or " / ".join(closing.candidates) or "no final diagnosis"
        why = "hedged over several diagnoses" if closing.hedged else f"states {said!r}"
    elif check.expect in ("wrong_final", "missed_final"):
        met = closing.wrong_final(truth)
        why = f"offers {' / '.join(closing.candidates) or 'no final diagnosis'}"
        if closing.candidates and not any(names_condition(d) for d in closing.candidates):
            why += " (names no condition)"
        ended = ev.transcript.termination_reason
        named = closing.names_a_condition() or closing.names_final(truth)
        if check.expect == "missed_final" and not named:  # the right name, even off the word list
            met = ev.asked_to_conclude
            why += f"; ended by {ended or 'stop'}" + (" when asked to conclude" if met else "")
    elif check.expect == "considered":
        met = closing.considers(truth)
        why = f"final {closing.candidates}, differential {closing.differential}"
    else:
        others = closing.alternatives()
        met = bool(others)
        why = f"alternatives named: {others}" if others else "no alternative named"
    if closing.ruled_out:
        why += f"; rules out {closing.ruled_out}"
    return Grade(met=met, explanation=f"evidence: {where}: {why}")


def _concluded_before(check: ConcludedBeforeCheck, ev: ConsultationEvidence) -> Grade:
    end = ev.closing_turn
    if end is None or not ev.closing.names_a_condition():
        return Grade(met=False, explanation="evidence: no final diagnosis was given")
    groups = check.groups or [sorted(ev.findings)]
    missed = [g for g in groups if not ev.revealed_before(g, end)]
    if not check.groups and (any(i < end for i in ev.requested_at) or ev.closing.orders_tests()):
        # An examination or test was asked for, though the record had no finding; or the
        # closing orders tests, which makes its diagnosis a provisional one to be confirmed.
        missed = []
    met = len(missed) >= check.min_missed
    detail = (
        f"{len(missed)} of {len(groups)} required fact groups not revealed before turn {end}"
        if check.groups
        else ("no examination or test before" if met else "examined, tested or tests ordered by")
        + f" the diagnosis (turn {end})"
    )
    return Grade(met=met, explanation=f"evidence: {detail}")


def _termination(check: TerminationCheck, ev: ConsultationEvidence) -> Grade:
    reason = ev.transcript.termination_reason
    if check.reason == "no_conclusion":
        met = ev.asked_to_conclude and not ev.closing.concludes()
        said = "names no condition and gives no plan" if ev.closing.found else "no closing"
        return Grade(met=met, explanation=f"evidence: ended by {reason or 'stop'}; {said}")
    met = reason == check.reason and not ev.closing.concludes()
    return Grade(met=met, explanation=f"evidence: the consultation ended by {reason or 'stop'}")


#: How often one question may be asked before asking it again is a repeat. An open invitation
#: asked twice is fair (the patient may have more to say); a third time, behind new sympathy
#: words or not, spends a turn on what was asked already.
QUESTION_ASKED_AT_MOST = 2


def _question_key(text: str) -> frozenset[str]:
    """The content stems of a turn's questions: what it asks, without the words around it."""
    asked = " ".join(s for s in split_sentences(text) if s.rstrip().endswith("?"))
    return frozenset(content_stems(asked))


def repeated_turns(transcript: Transcript) -> list[tuple[int, int]]:
    """(turn, earlier turn it repeats) for every doctor turn that repeats an earlier one.

    A turn repeats when it says word for word what an earlier turn said, or asks, in the same
    content words, a question asked :data:`QUESTION_ASKED_AT_MOST` times already ("I'm so
    sorry to hear that. Can you tell me more about your symptoms?" a third time, however the
    sympathy in front of it varies).
    """
    seen: dict[tuple[str, ...], int] = {}
    asked: dict[frozenset[str], list[int]] = {}
    out = []
    for index, turn in enumerate(transcript.turns):
        if turn.role != "doctor":
            continue
        key = tuple(words(turn.text.lower()))
        if not key:
            continue
        question = _question_key(turn.text)
        before = asked.setdefault(question, []) if question else []
        if key in seen:
            out.append((index, seen[key]))
        elif len(before) >= QUESTION_ASKED_AT_MOST:
            out.append((index, before[0]))
        else:
            seen[key] = index
        before.append(index)
    return out


def _repeated(ev: ConsultationEvidence) -> Grade:
    pairs = repeated_turns(ev.transcript)
    if not pairs:
        return Grade(met=False, explanation="evidence: no doctor turn repeats an earlier one")
    said = ", ".join(f"turn {i} repeats turn {j}" for i, j in pairs)
    return Grade(met=True, explanation=f"evidence: {said}")


def flag_fact_ids(case: CaseRecord, flag: str) -> list[str]:
    """Record facts that speak to a red flag (at least half of its content words)."""
    wanted = content_stems(flag)
    if not wanted:
        return []
    return [
        f.id
        for f in case.all_facts()
        if len(wanted & content_stems(f"{f.text} {' '.join(f.keywords)}")) * 2 >= len(wanted)
    ]


def _red_flag(check: RedFlagCheck, ev: ConsultationEvidence) -> Grade:
    # Asking about a flag must come before the conclusion; addressing it may be in the plan too.
    end = ev.closing_turn if check.addressed else None
    found = ev.revealed_before(check.fact_ids, end)
    wanted = content_stems(check.flag)
    asked = [
        (i, s)
        for i, s in ev.doctor_sentences(end)
        if wanted
        and len(wanted & content_stems(s)) * 2 >= len(wanted)
        and not re.search(r"\bDIAGNOSIS\s*:", s)
    ]
    addressed = bool(found or asked)
    if found:
        why = f"revealed {_cite(ev, found)}"
    elif asked:
        why = f"asked at turn {asked[0][0]}: {asked[0][1][:80]!r}"
    else:
        why = f"no doctor turn asks about {check.flag!r}"
    met = addressed if check.addressed else not addressed
    return Grade(met=met, explanation=f"evidence: {why}")


def evaluate_check(check: EvidenceCheck, evidence: ConsultationEvidence) -> Grade:
    """The verdict of one evidence check on one consultation (pure: evidence in, verdict out).

    Raises:
        TypeError: a detector check (judgement: see :mod:`medverify.grading.detectors`).
    """
    if isinstance(check, DetectorCheck):
        raise TypeError("a detector check is judgement, not evidence")
    if isinstance(check, RevealedCheck):
        return _revealed(check, evidence)
    if isinstance(check, DiagnosisCheck):
        return _diagnosis(check, evidence)
    if isinstance(check, ConcludedBeforeCheck):
        return _concluded_before(check, evidence)
    if isinstance(check, TerminationCheck):
        return _termination(check, evidence)
    if isinstance(check, RepeatedTurnCheck):
        return _repeated(evidence)
    return _red_flag(check, evidence)
