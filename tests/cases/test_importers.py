"""Importers: AgentClinic and MediQ raw items → case records, faithfully."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from medverify.cases.diagnosis import diagnosis_initialism, names_diagnosis
from medverify.cases.importers import (
    import_agentclinic,
    import_mediq,
    is_diagnosis_item,
    read_agentclinic,
    read_cases,
    read_mediq,
)
from medverify.cases.importers.agentclinic import case_id as agentclinic_case_id
from medverify.cases.importers.agentclinic import convert_agentclinic_item
from medverify.cases.importers.common import (
    LAY_TERMS,
    RECORDED_IDS,
    SkipItem,
    chief_complaint,
    parse_age,
    parse_demographics,
    parse_occupation,
)
from medverify.cases.importers.facts import (
    categorize,
    content_tokens,
    extract_keywords,
    humanize_key,
    is_finding,
    is_uninformative,
    split_sentences,
)
from medverify.cases.importers.mediq import case_id as mediq_case_id
from medverify.cases.loading import load_bundled_cases
from medverify.cases.personas import with_seeded_persona
from medverify.cases.records import CaseRecord, Demographics
from medverify.errors import ConfigError, InputError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cases"
AGENTCLINIC = FIXTURES / "agentclinic_sample6.jsonl"
MEDIQ = FIXTURES / "mediq_sample8.jsonl"
# The public case files sit in ../shared beside the repository (see shared/data/SOURCES.md).
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cases"
# Record ids of the fixture's AgentClinic lines 1, 2, 18, 61, 89, 98: content ids, except the
# two (lines 1 and 98) that the bundled cases came from, which keep their recorded ids.
AC_IDS = [
    "agentclinic-medqa-001",
    "agentclinic-medqa-9be0c3d2",
    "agentclinic-medqa-15c129f0",
    "agentclinic-medqa-c160948b",
    "agentclinic-medqa-90dfe4fd",
    "agentclinic-medqa-098",
]

# Words the importers add around source text: labels of list items and findings.
ADDED_LABEL_WORDS = {"past", "medical", "history", "current", "medication"}


def _raw_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _source_text(item: Any) -> str:
    """Every string of a raw item, keys included (with underscores as spaces), lowercased."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                parts.append(str(key).replace("_", " "))
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        else:
            parts.append(str(node))

    walk(item)
    return " ".join(parts).lower().replace("’", "'")


def _assert_traceable(case: CaseRecord, item: Any) -> None:
    source = _source_text(item)
    for fact in case.all_facts():
        missing = [
            token
            for token in content_tokens(fact.text, numbers=True)
            if token not in ADDED_LABEL_WORDS and token not in source
        ]
        assert not missing, f"{case.id} {fact.id} has words not in the source: {missing}"
        plain = fact.text.lower().replace("’", "").replace("'", "")
        words = set(re.findall(r"[a-z0-9°%+]+(?:[.\-/][a-z0-9°%+]+)*", plain))
        assert all(set(k.replace("'", "").split()) <= words for k in fact.keywords), fact


# ---------------------------------------------------------------- text rules


def test_split_sentences_keeps_decimals_abbreviations_and_quotes() -> None:
    text = (
        "Temperature is 36.6°C today. Dr. Smith saw her, e.g. last week. "
        "She complains of “spotting.” She states it began 5 months ago."
    )
    assert split_sentences(text) == [
        "Temperature is 36.6°C today.",
        "Dr. Smith saw her, e.g. last week.",
        "She complains of “spotting.”",
        "She states it began 5 months ago.",
    ]
    assert split_sentences("   ") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Information not provided.", True),
        ("Not applicable given age", True),
        ("N/A for the newborn.", True),
        ("No additional symptoms mentioned.", True),
        ("Optional and not typically necessary.", True),
        ("Could show lobules of bodies in the epidermis, if performed.", True),
        ("Denies fever or weight loss.", False),
        ("No significant past medical history.", False),
        ("No known allergies.", False),
    ],
)
def test_uninformative_statements(text: str, expected: bool) -> None:
    assert is_uninformative(text) is expected


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("The patient reports a 1-month history of double vision.", "symptom"),
        ("She has a history of type 2 diabetes mellitus.", "history"),
        ("He underwent appendectomy at age 12.", "history"),
        ("Non-smoker, drinks wine occasionally.", "social"),
        ("Works as a graphic designer.", "social"),
        ("She has been on natalizumab for the past year.", "medication"),
        ("Current medications include fluticasone and loratadine.", "medication"),
        ("Her mother has rheumatoid arthritis.", "family"),
        ("Family history includes pernicious anemia.", "family"),
        ("No known drug allergies.", "allergy"),
        ("The patient's mother reports her daughter has been doing poorly at school.", "symptom"),
    ],
)
def test_categorize(text: str, category: str) -> None:
    assert categorize(text) == category


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Her temperature is 39.1°C (102.3°F).", "exam"),
        ("Physical examination shows a nontender thyroid gland.", "exam"),
        ("Serum studies show increased fibrin degradation products.", "test"),
        ("Hemoglobin is 10.8 g/dL.", "test"),
        ("Anti Ro is positive.", "test"),
        ("She reports an x-ray last year was normal.", None),
        ("Five days ago she had a fever of 40.5°C.", None),
        ("She takes anti-inflammatory drugs for back pain.", None),
    ],
)
def test_is_finding(text: str, kind: str | None) -> None:
    assert is_finding(text) == kind


def test_keywords_are_lowercase_content_words_and_terms_from_the_text() -> None:
    text = "The patient reports double vision (diplopia) and weakness when brushing her hair."
    keywords = extract_keywords(text)
    assert "double vision" in keywords
    assert {"double", "vision", "diplopia", "weakness", "hair"} <= set(keywords)
    assert not {"the", "patient", "reports", "and", "her", "when"} & set(keywords)
    assert all(k == k.lower() and k in text.lower() for k in keywords)
    assert len(keywords) == len(set(keywords))
    assert "acetylcholine receptor antibodies" in extract_keywords(
        "Acetylcholine receptor antibodies: Present (elevated)"
    )


def test_humanize_key_keeps_acronyms() -> None:
    assert humanize_key("Acetylcholine_Receptor_Antibodies") == "Acetylcholine receptor antibodies"
    assert humanize_key("Chest_CT") == "Chest CT"
    assert humanize_key("pH") == "pH"


@pytest.mark.parametrize(
    ("text", "age", "sex"),
    [
        ("35-year-old female", 35, "female"),
        ("8-month-old boy", 0, "male"),
        ("Newborn, female", 0, "female"),
        ("2-day-old male infant", 0, "male"),
        ("70-year-old man accompanied by his wife", 70, "male"),
    ],
)
def test_parse_demographics(text: str, age: int, sex: str) -> None:
    demo = parse_demographics(text)
    assert (demo.age, demo.sex) == (age, sex)


def test_demographics_sex_falls_back_to_pronouns_then_unknown() -> None:
    demo = parse_demographics("23-year-old college student", fallback_texts=("He is here.",))
    assert demo.sex == "male"
    assert parse_demographics("4-day-old newborn").sex == "unknown"
    assert parse_age("study") is None
    with pytest.raises(SkipItem):
        parse_demographics("adult")


def test_parse_occupation_only_when_stated() -> None:
    assert parse_occupation("Non-smoker. Works as a graphic designer.") == "graphic designer"
    assert parse_occupation("Non-smoker, retired school teacher.") == "retired school teacher"
    assert parse_occupation("Drinks wine occasionally.") is None


def test_chief_complaint_is_first_person_and_plain() -> None:
    adult = Demographics(age=35, sex="female")
    assert chief_complaint("Double vision", adult) == "I've come in because of double vision."
    assert chief_complaint("Diplopia", adult) == "I've come in because of double vision."
    assert (
        chief_complaint("pain in his left knee", Demographics(age=40, sex="male"))
        == "I've come in because of pain in my left knee."
    )
    assert chief_complaint("Rash", Demographics(age=7, sex="male")).startswith(
        "I've brought my son in"
    )
    assert chief_complaint("Bilious vomiting", Demographics(age=0, sex="male")).startswith(
        "I've brought my baby in"
    )
    assert (
        chief_complaint("a routine health maintenance examination", adult)
        == "I've come in for a routine health maintenance examination."
    )
    assert "diplopia" in LAY_TERMS


def test_names_diagnosis_variants_and_initialisms() -> None:
    assert names_diagnosis("consistent with Hirschsprung’s disease", "Hirschsprung disease")
    assert names_diagnosis("lesions typical of PML", "Progressive multifocal encephalopathy (PML)")
    assert diagnosis_initialism("Chronic lymphocytic leukemia") == "CLL"
    assert names_diagnosis("phenotype consistent with CLL/SLL.", "Chronic lymphocytic leukemia")
    assert not names_diagnosis("history of Crohn disease", "Myasthenia gravis")
    assert not names_diagnosis("he rests in the afternoon", "Rest")
    assert not names_diagnosis("cardiac arrest", "Rest")


# ---------------------------------------------------------------- AgentClinic


def test_agentclinic_fixture_converts_every_case() -> None:
    result = read_agentclinic(AGENTCLINIC)
    assert result.total == 6
    assert [c.id for c in result.cases] == AC_IDS
    assert result.skipped == []


def test_agentclinic_case_fields() -> None:
    case = import_agentclinic(AGENTCLINIC, limit=1)[0]
    assert case.demographics.age == 35
    assert case.demographics.sex == "female"
    assert case.demographics.occupation == "graphic designer"
    assert case.chief_complaint == "I've come in because of double vision."
    assert case.diagnosis == "Myasthenia gravis"
    assert case.differential == [] and case.red_flags == [] and case.management == []
    assert "AgentClinic" in case.source and "MIT" in case.source and "case 1" in case.source
    texts = {f.text: f for f in case.facts}
    first = texts[
        "The patient reports a 1-month history of experiencing double vision (diplopia), "
        "difficulty in climbing stairs, and weakness when trying to brush her hair."
    ]
    assert first.category == "symptom"
    assert "double vision" in first.keywords
    assert texts["Non-smoker, drinks wine occasionally."].category == "social"
    # The primary symptom and a secondary symptom already told by the history are not repeated.
    assert "Double vision" not in texts and "Difficulty climbing stairs" not in texts
    exams = [f.text for f in case.exam_findings]
    assert (
        "Cranial nerves: Presence of ptosis (drooping of the right upper eyelid) that worsens "
        "with sustained upward gaze." in exams
    )
    assert "Temperature: 36.6°C (97.9°F)" in exams
    tests = [f.text for f in case.test_results]
    assert "Acetylcholine receptor antibodies: Present (elevated)" in tests
    assert "Chest CT findings: Normal, no thymoma or other masses detected." in tests
    assert [f.id for f in case.exam_findings][:2] == ["e1", "e2"]


def test_agentclinic_lists_dicts_and_labels() -> None:
    cases = {c.id: c for c in import_agentclinic(AGENTCLINIC)}
    ulcer = cases[AC_IDS[2]]  # line 18: list PMH, medication list
    meds = [f for f in ulcer.facts if f.text.startswith("Current medication:")]
    assert [f.text for f in meds] == [
        "Current medication: Insulin",
        "Current medication: Mesalamine",
        "Current medication: Enalapril",
        "Current medication: Aspirin",
    ]
    assert all(f.category == "medication" for f in meds)
    assert "Blood glucose level, random: Elevated" in [f.text for f in ulcer.test_results]
    ear = cases[AC_IDS[3]]  # line 61: review of systems as an object
    assert "ENT: Denies neck pain or facial tenderness." in [f.text for f in ear.facts]
    assert not any(f.text.startswith("Suggestion") for f in ear.test_results)


def test_agentclinic_facts_are_traceable_to_the_source() -> None:
    raw = _raw_lines(AGENTCLINIC)
    for case, item in zip(import_agentclinic(AGENTCLINIC), raw, strict=True):
        _assert_traceable(case, item)
        assert len(case.facts) >= 4


def test_findings_naming_the_diagnosis_are_dropped() -> None:
    result = read_agentclinic(AGENTCLINIC)
    pml = next(c for c in result.cases if c.id == AC_IDS[1])
    assert result.dropped_findings >= 1
    assert not any(names_diagnosis(f.text, pml.diagnosis) for f in pml.all_facts())
    assert [f.id for f in pml.test_results] == [
        f"t{i}" for i in range(1, len(pml.test_results) + 1)
    ]


def test_a_history_that_states_the_diagnosis_skips_the_case() -> None:
    item = _raw_lines(AGENTCLINIC)[0]
    item["OSCE_Examination"]["Patient_Actor"]["History"] += " She was told it is myasthenia gravis."
    with pytest.raises(SkipItem, match="states the diagnosis"):
        convert_agentclinic_item(item, 1)


def test_bad_lines_are_skipped_with_reasons(tmp_path: Path) -> None:
    good = AGENTCLINIC.read_text(encoding="utf-8").splitlines()[0]
    path = tmp_path / "mixed.jsonl"
    path.write_text(f"{good}\n{{not json\n{json.dumps({'OSCE_Examination': {}})}\n")
    result = read_agentclinic(path)
    assert len(result.cases) == 1 and result.total == 3
    reasons = [s.reason for s in result.skipped]
    assert reasons[0].startswith("not valid JSON")
    assert "Patient_Actor" in reasons[1]
    assert [s.line for s in result.skipped] == [2, 3]


def test_wrong_format_is_an_input_error() -> None:
    with pytest.raises(InputError, match="right --format"):
        read_agentclinic(MEDIQ)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        read_agentclinic(tmp_path / "nope.jsonl")


def test_conversion_is_deterministic() -> None:
    assert import_agentclinic(AGENTCLINIC) == import_agentclinic(AGENTCLINIC)
    assert import_mediq(MEDIQ) == import_mediq(MEDIQ)


# ---------------------------------------------------------------- MediQ


def _item(question: str, answer: str, options: list[str]) -> dict[str, Any]:
    return {
        "question": question,
        "answer": answer,
        "options": {k: v for k, v in zip("ABCD", options, strict=False)},
    }


def test_diagnosis_filter() -> None:
    diseases = ["Asthma", "Pneumonia", "Pulmonary embolism", "Heart failure"]
    assert is_diagnosis_item(
        _item("Which of the following is the most likely diagnosis?", "Asthma", diseases)
    )
    assert is_diagnosis_item(
        _item(
            "WBC 2,500/mm3 | Platelets 95,000/mm3 | What is the most likely diagnosis?",
            "Asthma",
            diseases,
        )
    )
    assert is_diagnosis_item(
        _item(
            "Which of the following is the most likely cause of this patient's symptoms?",
            "Pneumonia",
            diseases,
        )
    )
    mechanisms = ["Increased mineralocorticoid production", "Vomiting", "Decreased renal flow", "X"]
    assert not is_diagnosis_item(
        _item(
            "Which of the following is the most likely cause of this patient's presentation?",
            mechanisms[0],
            mechanisms,
        )
    )
    assert not is_diagnosis_item(
        _item(
            "Which of the following is a treatment option for the patient’s most likely diagnosis?",
            "Asthma",
            diseases,
        )
    )
    assert not is_diagnosis_item(
        _item(
            "Which of the following is the most appropriate next step in management?",
            "CT scan",
            diseases,
        )
    )


def test_mediq_fixture_counts() -> None:
    result = read_mediq(MEDIQ)
    assert result.total == 8
    assert result.filtered_out == 2  # ids 0 and 272 do not ask for a diagnosis
    assert [s.source_id for s in result.skipped] == ["mediq-medqa-3f1fec82"]  # id 23
    assert "presenting complaint" in result.skipped[0].reason
    assert [c.id for c in result.cases] == [
        "mediq-medqa-5f5faf50",  # id 49
        "mediq-medqa-0275",  # bundled: the recorded id
        "mediq-medqa-dff35d5a",  # id 796
        "mediq-medqa-1128",
        "mediq-medqa-1224",
    ]


def test_mediq_case_fields_and_differential() -> None:
    cases = {c.id: c for c in import_mediq(MEDIQ)}
    case = cases["mediq-medqa-0275"]
    assert case.diagnosis == "Presbycusis"
    assert case.differential == [
        "Cerumen impaction",
        "Ototoxicity",
        "Vestibulocochlear nerve damage",
    ]
    assert case.demographics.age == 78 and case.demographics.sex == "male"
    assert case.chief_complaint == (
        "I've come in because of progressive hearing loss in both ears over the past year."
    )
    assert "MediQ" in case.source and "CC BY 4.0" in case.source and "id 275" in case.source
    facts = {f.text: f.category for f in case.facts}
    assert facts["Patient is taking enalapril, metformin, and atorvastatin."] == "medication"
    assert not any(re.match(r"^\d+\.", text) for text in facts)  # numbering stripped
    exams = [f.text for f in case.exam_findings]
    assert "Vital signs are within normal limits." in exams
    assert any(t.startswith("Otoscopic examination shows") for t in exams)
    # "most likely cause" with disease options: the options are the differential.
    assert cases["mediq-medqa-5f5faf50"].diagnosis == "Glycoprotein Ib deficiency"
    assert len(cases["mediq-medqa-5f5faf50"].differential) == 3
    # A lab table before the question becomes test results.
    assert "WBC 2,500/mm3" in [f.text for f in cases["mediq-medqa-dff35d5a"].test_results]


def test_mediq_exam_part_of_the_vignette_is_routed_to_findings() -> None:
    case = {c.id: c for c in import_mediq(MEDIQ)}["mediq-medqa-1128"]
    tests = [f.text for f in case.test_results]
    assert "Anti Ro is positive." in tests and "Rheumatoid factor is positive." in tests
    assert all(f.category in {"symptom", "social", "family", "history"} for f in case.facts)


def test_mediq_facts_are_traceable_to_the_source() -> None:
    raw = {mediq_case_id(item): item for item in _raw_lines(MEDIQ)}
    for case in import_mediq(MEDIQ):
        _assert_traceable(case, raw[case.id])
        assert case.diagnosis not in case.differential


def test_read_cases_dispatch_and_filters() -> None:
    result = read_cases("mediq", MEDIQ, only={"mediq-medqa-1224"})
    assert [c.id for c in result.cases] == ["mediq-medqa-1224"] and result.total == 1
    assert len(read_cases("agentclinic", AGENTCLINIC, limit=2).cases) == 2
    with pytest.raises(ConfigError, match="unknown case format"):
        read_cases("medqa", MEDIQ)


# ---------------------------------------------------------------- record ids


CONTENT_ID = re.compile(r"^(?:agentclinic-medqa|mediq-medqa)-[0-9a-f]{8}$")


def test_ids_come_from_the_content_not_the_line(tmp_path: Path) -> None:
    lines = AGENTCLINIC.read_text(encoding="utf-8").splitlines()
    # Other order, blank lines, other spacing: the same cases keep the same ids.
    shuffled = tmp_path / "shuffled.jsonl"
    respaced = [json.dumps(json.loads(line), indent=None) for line in reversed(lines)]
    shuffled.write_text("\n\n" + "\n".join(respaced) + "\n", encoding="utf-8")
    original = {c.id: c for c in import_agentclinic(AGENTCLINIC)}
    moved = {c.id: c for c in import_agentclinic(shuffled)}
    assert set(moved) == set(original) == set(AC_IDS)
    for case_id, case in moved.items():
        # Only the line cited in the source changes.
        assert case.model_copy(update={"source": ""}) == original[case_id].model_copy(
            update={"source": ""}
        )
    for case_id in AC_IDS[1:5]:
        assert CONTENT_ID.match(case_id)


def test_an_unseen_case_never_takes_a_bundled_id() -> None:
    bundled = {c.id: c for c in load_bundled_cases()}
    items = _raw_lines(AGENTCLINIC)
    # Line 89 of the full file, fifth in the fixture: it used to be "agentclinic-medqa-005", the
    # id of a different bundled case (acute interstitial nephritis).
    case = import_agentclinic(AGENTCLINIC)[4]
    assert case.diagnosis == "Normal behavior" and case.id not in bundled
    # A bundled case's own item keeps the recorded id; changed by one word, it gets a new id.
    assert agentclinic_case_id(items[0]) == "agentclinic-medqa-001"
    edited = json.loads(json.dumps(items[0]))
    edited["OSCE_Examination"]["Patient_Actor"]["History"] += " She is left-handed."
    assert CONTENT_ID.match(agentclinic_case_id(edited))
    assert agentclinic_case_id(edited) not in bundled
    raw = _raw_lines(MEDIQ)
    assert mediq_case_id(raw[4]) == "mediq-medqa-0275"  # the bundled item
    assert mediq_case_id({**raw[4], "id": 9999}) != "mediq-medqa-0275"


def test_recorded_ids_are_exactly_the_bundled_ids() -> None:
    assert sorted(RECORDED_IDS.values()) == sorted(c.id for c in load_bundled_cases())
    assert all(re.fullmatch(r"[0-9a-f]{16}", key) for key in RECORDED_IDS)


def test_a_repeated_item_is_skipped_not_overwritten(tmp_path: Path) -> None:
    lines = AGENTCLINIC.read_text(encoding="utf-8").splitlines()
    path = tmp_path / "twice.jsonl"
    path.write_text("\n".join([lines[1], lines[2], lines[1]]) + "\n", encoding="utf-8")
    result = read_agentclinic(path)
    assert [c.id for c in result.cases] == AC_IDS[1:3]
    assert [(s.line, s.source_id) for s in result.skipped] == [(3, AC_IDS[1])]
    assert "duplicate of line 1" in result.skipped[0].reason


def test_only_selects_by_content_id() -> None:
    result = read_agentclinic(AGENTCLINIC, only={AC_IDS[3], "agentclinic-medqa-005"})
    assert [c.id for c in result.cases] == [AC_IDS[3]] and result.total == 1


def test_an_unsafe_id_is_skipped_by_the_importer() -> None:
    from medverify.cases.importers.common import validate

    with pytest.raises(SkipItem, match="field 'id': a case id must not contain path separators"):
        validate({"id": "../../x"})


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/data/cases beside the repository")
def test_full_files_give_unique_ids_and_reproduce_the_bundled_cases() -> None:
    agentclinic = read_agentclinic(SHARED / "agentclinic_medqa107.jsonl")
    mediq = read_mediq(SHARED / "mediq_medqa_dev1272.jsonl")
    cases = [*agentclinic.cases, *mediq.cases]
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids))
    bundled = {c.id: c for c in load_bundled_cases()}
    recorded = [i for i in ids if i in bundled]
    assert sorted(recorded) == sorted(bundled)
    assert all(CONTENT_ID.match(i) for i in ids if i not in bundled)
    for case in cases:
        if case.id in bundled:
            assert with_seeded_persona(case) == bundled[case.id], case.id


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/data/cases beside the repository")
def test_full_public_files_convert() -> None:
    agentclinic = read_agentclinic(SHARED / "agentclinic_medqa107.jsonl")
    assert agentclinic.total == 107 and len(agentclinic.cases) == 107  # "107 of 107"
    mediq = read_mediq(SHARED / "mediq_medqa_dev1272.jsonl")
    assert mediq.total == 1272
    assert 100 <= mediq.total - mediq.filtered_out <= 200
    assert len(mediq.cases) >= 80
    for case in [*agentclinic.cases, *mediq.cases]:
        assert not any(names_diagnosis(f.text, case.diagnosis) for f in case.all_facts())
