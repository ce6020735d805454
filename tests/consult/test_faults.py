"""The careful doctor and its single-fault variants: not circular, one fault each, the direction.

The careful doctor must not be built from the record (else a grader rewarding keyword overlap
looks perfect on it), each variant must change one part of the consultation only, and with the
offline grader the careful doctor must score above every variant.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from medverify.cases.loading import load_bundled_cases
from medverify.cases.records import CaseRecord, Fact
from medverify.consult.faults import (
    CAREFUL,
    CAREFUL_DOCTORS,
    FAULT_DIMENSION,
    FAULTS,
    careful_doctor,
    careful_script,
    fault_script,
    wrong_diagnosis,
)
from medverify.consult.pipeline import scripted_factory
from medverify.consult.scripted import good_turns
from medverify.consult.task import ConsultationTask
from medverify.errors import ConfigError
from medverify.grading import make_grader

CASES = load_bundled_cases()
BY_ID = {c.id: c for c in CASES}
#: An adult case without a differential, one with one, and a child brought in by a parent.
DIRECTION_CASES = ("agentclinic-medqa-001", "mediq-medqa-0982", "mediq-medqa-0043")

#: General clinical words a history may use whatever the record says (single words > 6 letters).
CLINICAL_WORDS = frozenset(
    {
        *("alcohol", "allergic", "allergies", "appetite", "changes", "conditions", "daycare"),
        *("elsewhere", "hospital", "medicines", "operations", "problems", "recreational"),
        *("supplements", "sweating"),
    }
)
#: Names of the standard examinations and tests themselves (a request names them).
STANDARD_REQUESTS = frozenset(
    {
        *("blood pressure", "pressure", "temperature", "vital signs", "abdomen", "examination"),
        *("pelvic examination", "neurological", "function", "thyroid", "troponin", "painful"),
    }
)


def _has(text: str, term: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(term)}(?![\w-])", text) is not None


def _leaks(case: CaseRecord, text: str, *, allowed: frozenset[str]) -> list[str]:
    """Fact keywords in ``text``: any of 2+ words, single words > 6 letters; minus allowed ones."""
    complaint = case.chief_complaint.lower()
    found = []
    for term in {k.lower() for f in case.all_facts() for k in f.keywords}:
        if _has(complaint, term) or term in allowed or not _has(text.lower(), term):
            continue
        if len(term.split()) >= 2 or len(term) > 6:
            found.append(term)
    return sorted(found)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_careful_questions_never_use_the_records_keywords(case):
    steps = careful_script(case)
    questions = " ".join(s.text for s in steps if s.part in ("opening", "history", "consent"))
    assert _leaks(case, questions, allowed=CLINICAL_WORDS) == []
    requests = " ".join(s.text for s in steps if s.part in ("exam", "tests"))
    assert _leaks(case, requests, allowed=CLINICAL_WORDS | STANDARD_REQUESTS) == []


def _scrambled(case: CaseRecord) -> CaseRecord:
    """The same patient at the door (complaint, demographics, persona); a different record."""
    junk = Fact(id="x1", category="symptom", text="Zebra quartz lantern.", keywords=["zebra"])
    return case.model_copy(
        update={
            "facts": [junk],
            "exam_findings": [Fact(id="x2", category="exam", text="Heart: loud murmur")],
            "test_results": [Fact(id="x3", category="test", text="CT head: large mass")],
            "diagnosis": "Zebra fever",
            "differential": ["Quartz syndrome"],
            "management": ["lanterns"],
        }
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_careful_doctor_reads_only_what_a_clinician_meeting_the_patient_sees(case):
    before = [s.text for s in careful_script(case)[:-1]]
    assert before == [s.text for s in careful_script(_scrambled(case))[:-1]]
    closing = careful_script(case)[-1].text
    assert f"DIAGNOSIS: {case.diagnosis}" in closing
    assert all("DIAGNOSIS" not in t for t in before)


def _lines(text: str) -> dict[str, str]:
    """The closing's lines by field (the lead and the invitation by position)."""
    lines = text.splitlines()
    out = {"lead": lines[0], "invitation": lines[-1]}
    for line in lines[1:-1]:
        out[line.split(":", 1)[0]] = line
    return out


#: The closing fields each closing-only fault may change.
CLOSING_PARTS = {
    "wrong_dx": {"lead", "DIAGNOSIS", "DIFFERENTIAL"},
    "hedged": {"lead", "DIAGNOSIS"},
    "unsafe_plan": {"PLAN"},
    "fabricated": {"lead"},
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("fault", sorted(CLOSING_PARTS))
def test_closing_faults_change_their_own_part_of_the_closing_only(case, fault):
    careful, faulty = careful_script(case), fault_script(case, fault)
    assert faulty[:-1] == careful[:-1]
    before, after = _lines(careful[-1].text), _lines(faulty[-1].text)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed and changed <= CLOSING_PARTS[fault]
    diagnosis = after["DIAGNOSIS"].removeprefix("DIAGNOSIS: ")
    if fault == "wrong_dx":
        assert diagnosis == f"{wrong_diagnosis(case)}. It is not {case.diagnosis}."
        assert case.diagnosis.lower() not in wrong_diagnosis(case).lower()
    elif fault == "hedged":
        assert diagnosis.startswith(f"{case.diagnosis} or ") and diagnosis.count(" or ") == 2
    elif fault == "fabricated":
        assert after["lead"].startswith(before["lead"])
        assert re.search(r"\d+ mg/L", after["lead"]) and "MRI" in after["lead"]
        assert "MRI" not in " ".join(s.text for s in careful[:-1])
    else:
        assert "follow" not in after["PLAN"] and "come back straight away" not in after["PLAN"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_turn_faults_change_their_own_turns_only(case):
    careful = careful_script(case)
    assert fault_script(case, "no_history") == [careful[0], careful[-1]]
    no_consent = fault_script(case, "no_consent")
    differs = [i for i, (a, b) in enumerate(zip(careful, no_consent, strict=True)) if a != b]
    assert [careful[i].part for i in differs] == ["consent"]
    assert "?" not in no_consent[differs[0]].text and "?" in careful[differs[0]].text
    rude = fault_script(case, "rude")
    assert [s.part for s in rude] == [s.part for s in careful]
    assert all(a.text != b.text for a, b in zip(careful, rude, strict=True))
    for field in ("DIAGNOSIS", "DIFFERENTIAL"):
        assert _lines(rude[-1].text).get(field) == _lines(careful[-1].text).get(field)


def test_every_careful_doctor_is_registered_and_the_old_ones_still_are():
    case = CASES[0]
    for kind in (*CAREFUL_DOCTORS, "good", "wrong", "guess", "unsafe"):
        assert callable(scripted_factory(f"scripted:{kind}")(case))
    with pytest.raises(ConfigError):
        scripted_factory("scripted:careful-sloppy")


async def _play_and_score() -> dict[str, dict[str, tuple]]:
    grader = make_grader("local")
    out: dict[str, dict[str, tuple]] = {}
    try:
        for case_id in DIRECTION_CASES:
            case = BY_ID[case_id]
            task = ConsultationTask(case=case, max_turns=30)
            persona = task.patient_persona().model_copy(update={"patience": None})
            task = task.model_copy(update={"persona": persona})
            out[case_id] = {}
            for kind in CAREFUL_DOCTORS:
                transcript = await task.play(careful_doctor(case, kind))
                score = await task.score(transcript, grader)
                out[case_id][kind] = (score.score, score.dimensions, transcript)
    finally:
        await grader.aclose()
    return out


@pytest.fixture(scope="module")
def scored():
    return asyncio.run(_play_and_score())


_NOT_YET: dict[str, str] = {}  # faults the offline verifier does not catch yet: none


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(f, marks=pytest.mark.xfail(strict=False, reason=_NOT_YET[f]))
        if f in _NOT_YET
        else f
        for f in FAULTS
    ],
)
def test_careful_beats_each_fault_overall_and_on_its_dimension_offline(scored, fault):
    dim = FAULT_DIMENSION[fault]
    for case_id, rows in scored.items():
        careful, faulty = rows[CAREFUL], rows[f"{CAREFUL}-{fault}"]
        assert careful[2].termination_reason == faulty[2].termination_reason == "diagnosis"
        assert careful[0] is not None and faulty[0] is not None
        assert careful[0] > faulty[0], case_id
        mine, theirs = careful[1].get(dim), faulty[1].get(dim)
        if mine is not None and theirs is not None:
            assert mine > theirs, (case_id, dim)


@pytest.mark.slow
def test_variants_that_keep_the_history_elicit_the_same_facts(scored):
    for rows in scored.values():
        facts = rows[CAREFUL][2].revealed()
        for fault in FAULTS:
            if fault != "no_history":
                assert rows[f"{CAREFUL}-{fault}"][2].revealed() == facts, fault


def test_the_keyword_check_catches_the_circular_good_doctor():
    allowed = CLINICAL_WORDS | STANDARD_REQUESTS
    assert all(_leaks(c, " ".join(good_turns(c)[:-1]), allowed=allowed) for c in CASES)
