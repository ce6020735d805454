"""AgentClinic OSCE cases → case records (``medverify cases import --format agentclinic``).

AgentClinic (Schmidgall et al. 2024, MIT License) ships 107 MedQA-derived OSCE cases
(``agentclinic_medqa.jsonl``): a patient actor (demographics, narrative history, symptoms, past
medical and social history, review of systems), nested physical-exam findings, nested test
results and the correct diagnosis. This module keeps that content and changes only its shape:
the narrative is split into sentences (one fact each), every exam or test leaf becomes one
finding ("Cranial nerves: Presence of ptosis ..."), and the primary symptom becomes the chief
complaint. AgentClinic gives no differential, red flags or management plan, so those stay empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from medverify.cases.importers.common import (
    ContentIds,
    FactBuilder,
    ImportResult,
    SkipItem,
    SkippedItem,
    chief_complaint,
    content_id,
    finish,
    iter_jsonl,
    parse_demographics,
    parse_occupation,
    remove_leaks,
    validate,
)
from medverify.cases.importers.facts import humanize_key, is_uninformative, split_sentences
from medverify.cases.records import CaseRecord, FactCategory

FORMAT = "agentclinic"
ID_PREFIX = "agentclinic-medqa"
SOURCE = (
    "AgentClinic (Schmidgall et al. 2024) agentclinic_medqa.jsonl case {n}, from MedQA; "
    "MIT License, Copyright (c) 2024 Samuel Schmidgall"
)
# Leaf keys that mean nothing without their parent ("Chest_CT" → "Findings").
_JOINED_LEAVES = {"findings", "result", "results", "level", "levels", "value", "values"}
_QUALIFIER_LEAVES = {
    "inspection",
    "palpation",
    "auscultation",
    "percussion",
    "general",
    "observation",
    "description",
    "other",
    "details",
    "interpretation",
    "impression",
    "notes",
    "inspection_and_palpation",
}
# Groups whose name adds nothing to the label of a finding inside them.
_CONTAINER = re.compile(
    r"^(?:vital_signs|general|general_examination|examination|physical_examination|"
    r"\w+_exam(?:ination)?|\w+_system|blood_tests?|blood_work|lab(?:oratory)?(?:_\w+)?|"
    r"additional_tests|other_tests|screening_tests|imaging(?:_\w+)?|test_results|"
    r"basic_laboratory_tests|remainder_of_the_examination)$",
    re.IGNORECASE,
)
# Advice rather than results ("Suggestion: MRI ... could be considered"): not part of the record.
_NOT_A_FINDING = re.compile(
    r"^(?:suggestions?|recommendations?|optional|plan|next_steps?)$", re.IGNORECASE
)
_PMH_KEYS = ("Past_Medical_History",)
_MEDICATION_KEYS = ("Current_Medications", "Medications", "Medication", "Drug_History")
_EXTRA_KEYS: dict[str, FactCategory] = {
    "Family_History": "family",
    "Allergies": "allergy",
}


def case_id(item: Any) -> str:
    """The record id of an AgentClinic item: ``agentclinic-medqa-<8 hex digits>`` of its content.

    Not its line number: the same case keeps its id in any file, and a case that is not one of
    the bundled ones never takes a bundled case's id. The items the bundled cases came from keep
    their recorded ids (``agentclinic-medqa-001`` ...; see ``common.RECORDED_IDS``).
    """
    return content_id(ID_PREFIX, item)


def import_agentclinic(
    path: str | Path, *, limit: int | None = None, only: set[str] | None = None
) -> list[CaseRecord]:
    """Convert an AgentClinic JSONL file; skipped items are only logged.

    See :func:`read_agentclinic` for the arguments and for the skipped items themselves.
    """
    return read_agentclinic(path, limit=limit, only=only).cases


def read_agentclinic(
    path: str | Path, *, limit: int | None = None, only: set[str] | None = None
) -> ImportResult:
    """Convert an AgentClinic JSONL file into validated case records.

    Args:
        path: ``agentclinic_medqa.jsonl`` (one OSCE case per line).
        limit: Stop after this many converted cases.
        only: Convert only these record ids (``agentclinic-medqa-001``,
            ``agentclinic-medqa-<hash8>``; see :func:`case_id`).

    Returns:
        The records, and every skipped line with its reason.

    Raises:
        InputError: The file cannot be read, or not one line could be converted.
    """
    result = ImportResult(source_format=FORMAT)
    ids = ContentIds(ID_PREFIX)
    for number, item in iter_jsonl(path):
        record_id = ids.of(item, number)
        if only is not None and record_id not in only:
            continue
        result.total += 1
        try:
            if isinstance(item, SkipItem):
                raise item
            ids.claim(record_id, item, number)
            record, dropped = convert_agentclinic_item(item, number)
        except SkipItem as exc:
            skipped = SkippedItem(line=number, source_id=record_id, reason=str(exc))
            result.skipped.append(skipped)
            continue
        result.cases.append(record)
        result.dropped_findings += len(dropped)
        if limit is not None and len(result.cases) >= limit:
            break
    return finish(result, path)


def convert_agentclinic_item(item: Any, number: int) -> tuple[CaseRecord, list[str]]:
    """One AgentClinic line → one record, and the ids of findings dropped for naming the diagnosis.

    ``number`` (the line) goes into the record's ``source`` citation only, never into its id.

    Raises:
        SkipItem: A required part is missing or the result is not a valid record.
    """
    osce = _require(item, "OSCE_Examination", dict)
    actor = _require(osce, "Patient_Actor", dict)
    history = _text(actor.get("History"))
    symptoms = actor.get("Symptoms") or {}
    if not isinstance(symptoms, dict):
        raise SkipItem("'Patient_Actor.Symptoms' is not an object")
    primary = _text(symptoms.get("Primary_Symptom"))
    diagnosis = " ".join(_text(osce.get("Correct_Diagnosis")).split())
    if not diagnosis:
        raise SkipItem("no 'Correct_Diagnosis'")
    if not primary and not history:
        raise SkipItem("neither 'History' nor 'Symptoms.Primary_Symptom' is given")

    social = actor.get("Social_History")
    demographics = parse_demographics(
        _text(actor.get("Demographics")),
        fallback_texts=(history,),
        occupation=parse_occupation(_text(social), _text(actor.get("Demographics"))),
    )

    builder = FactBuilder()
    builder.add_prose(history, "symptom")
    for symptom in [primary, *_as_list(symptoms.get("Secondary_Symptoms"))]:
        if symptom:
            builder.add_statement(symptom, "symptom", route=False)
    for key in _PMH_KEYS:
        _add_history(builder, actor.get(key))
    for key in _MEDICATION_KEYS:
        _add_medications(builder, actor.get(key))
    for key, category in _EXTRA_KEYS.items():
        for sentence in _as_list(actor.get(key)):
            builder.add_prose(sentence, category)
    _add_keyed(builder, social, "social", prefix_keys=False)
    _add_keyed(builder, actor.get("Review_of_Systems"), "symptom", prefix_keys=True)
    for label, value in _leaves(osce.get("Physical_Examination_Findings")):
        builder.add_finding("exam", f"{label}: {value}")
    for label, value in _leaves(osce.get("Test_Results")):
        builder.add_finding("test", f"{label}: {value}")

    complaint = chief_complaint(primary or history, demographics)
    dropped = remove_leaks(builder, complaint, diagnosis)
    record: dict[str, Any] = {
        "id": case_id(item),
        "demographics": demographics,
        "chief_complaint": complaint,
        "facts": builder.facts,
        "exam_findings": builder.exam,
        "test_results": builder.tests,
        "diagnosis": diagnosis,
        "source": SOURCE.format(n=number),
    }
    return validate(record), dropped


def _require(obj: Any, key: str, kind: type) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise SkipItem(f"missing key '{key}'")
    if not isinstance(obj[key], kind):
        raise SkipItem(f"'{key}' is not a {kind.__name__}")
    return obj[key]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return " ".join(_text(v) for v in value.values())
    return " ".join(str(value).split())


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [_text(v) for v in value if _text(v)]
    return [_text(value)] if _text(value) else []


def _add_history(builder: FactBuilder, value: Any) -> None:
    """Past medical history: a sentence keeps its words; a bare list gets a label."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        for sentence in split_sentences(_text(item)):
            if not re.search(r"histor", sentence, re.IGNORECASE):
                sentence = f"Past medical history: {sentence}"
            builder.add_statement(sentence, "history")


def _add_medications(builder: FactBuilder, value: Any) -> None:
    if isinstance(value, list):
        for drug in _as_list(value):
            builder.add_statement(f"Current medication: {drug}", "medication", route=False)
    elif value:
        builder.add_prose(_text(value), "medication", route=False)


def _add_keyed(
    builder: FactBuilder, value: Any, default: FactCategory, *, prefix_keys: bool
) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            for sentence in split_sentences(_text(sub)):
                text = f"{humanize_key(key)}: {sentence}" if prefix_keys else sentence
                builder.add_statement(text, default)
    else:
        builder.add_prose(_text(value), default)


def _leaves(tree: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """``(label, value)`` for every informative leaf of a nested findings object."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not _NOT_A_FINDING.match(str(key)):
                yield from _leaves(value, (*path, str(key)))
        return
    if not path:
        return
    if isinstance(tree, list) and tree and all(isinstance(v, dict) for v in tree):
        for index, value in enumerate(tree, start=1):
            yield from _leaves(value, (*path[:-1], f"{path[-1]} {index}"))
        return
    if isinstance(tree, bool):
        label = _label(path)
        yield (label, "yes" if tree else "no")
        return
    value = "; ".join(_as_list(tree)) if isinstance(tree, list) else _text(tree)
    if value and not is_uninformative(value):
        yield _label(path), value


def _label(path: tuple[str, ...]) -> str:
    """A readable label from a findings path, without container names that add nothing.

    ``("Neurological_Examination", "Cranial_Nerves")`` → ``"Cranial nerves"``;
    ``("Urinalysis", "Na")`` → ``"Urinalysis, Na"``; ``("Chest_CT", "Findings")`` →
    ``"Chest CT findings"``; ``("Skin_Examination", "Inspection")`` →
    ``"Skin examination, inspection"``.
    """
    *groups, leaf = path
    leaf_key = leaf.lower()
    needs_parent = leaf_key in _JOINED_LEAVES or leaf_key in _QUALIFIER_LEAVES
    kept = [g for g in groups if not _CONTAINER.match(g)]
    if needs_parent and groups and (not kept or kept[-1] != groups[-1]):
        kept.append(groups[-1])
    parts = [humanize_key(g) for g in kept[-2:]]
    if leaf_key in _JOINED_LEAVES and parts and parts[-1].lower().endswith(leaf_key):
        pass
    elif leaf_key in _JOINED_LEAVES and parts:
        parts[-1] = f"{parts[-1]} {_lower_first(humanize_key(leaf))}"
    else:
        parts.append(humanize_key(leaf))
    return ", ".join([parts[0], *(_lower_first(p) for p in parts[1:])])


def _lower_first(text: str) -> str:
    """Lowercase the first word unless it is an acronym ("Random" → "random", "WBC" stays)."""
    first = text.split(" ", 1)[0]
    acronym = len(first) > 1 and (first.isupper() or any(c.isupper() for c in first[1:]))
    if acronym or len(first) <= 3:  # "WBC", "pH", and chemical symbols ("Na", "K", "Glu")
        return text
    return text[:1].lower() + text[1:]
