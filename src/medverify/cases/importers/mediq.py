"""MediQ diagnosis items → case records (``medverify cases import --format mediq``).

MediQ (Li et al. 2024, CC BY 4.0) turns MedQA board questions into atomic patient facts
(``all_dev_good.jsonl``: question, context sentences, options, answer, numbered ``facts``).
Only some items are patient cases with a diagnosis to find: many ask for a mechanism, a drug or
the next step. :func:`is_diagnosis_item` keeps the items whose question asks for the most likely
diagnosis (or the most likely cause, when the answer and the other options are diseases); for
those, the answer is the diagnosis and the other options are the differential the item itself
offers. Facts keep MediQ's wording; findings (vital signs, exam, labs, imaging) become exam
findings and test results. Red flags and management stay empty: MediQ has none.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from medverify.cases.importers.common import (
    ContentIds,
    FactBuilder,
    ImportResult,
    SkipItem,
    SkippedItem,
    chief_complaint,
    clean_option,
    content_id,
    finish,
    iter_jsonl,
    parse_demographics,
    parse_occupation,
    remove_leaks,
    validate,
)
from medverify.cases.importers.facts import categorize, is_finding, split_sentences
from medverify.cases.records import CaseRecord

FORMAT = "mediq"
ID_PREFIX = "mediq-medqa"
SOURCE = "MediQ (Li et al. 2024) all_dev_good.jsonl id {id}, from MedQA; CC BY 4.0"

_DIAGNOSIS_QUESTION = re.compile(
    r"\b(?:which of the following|what)\s+(?:is|best describes|would be)\s+(?:the\s+)?"
    r"(?:most\s+)?(?:likely|probable)\s+(?:underlying\s+)?diagnosis\b"
    r"(?:\s+(?:in|for|of)\s+(?:this|the)\s+(?:patient|child|infant|newborn|man|woman))?\s*[?.:\"]*$"
    r"|\bwhich of the following is most likely the diagnosis\s*[?.:\"]*$"
    r"|\bwhich of the following disorders does this patient (?:potentially )?suffer from\s*[?\"]*$",
    re.IGNORECASE,
)
_CAUSE_QUESTION = re.compile(
    r"\b(?:which of the following|what)\s+(?:is|was)\s+(?:the\s+)?most\s+(?:likely|probable)\s+"
    r"(?:underlying\s+)?(?:cause|etiology|underlying etiology)\s+(?:of|for)\s+"
    r"(?:this|the|his|her)\s+(?:patient|infant|child|newborn|baby)?(?:'s|’s)?\s*"
    r"(?:current\s+|recent\s+)?(?:symptoms|presentation|condition|findings|complaints|"
    r"disorder|illness)\s*[?.:\"]*$",
    re.IGNORECASE,
)
_DISEASE_WORD = re.compile(
    r"(?:itis|osis|oma|emia|aemia|pathy|plasia|trophy|iasis|ectasis|cele)\b|"
    r"\b(?:syndrome|disease|disorder|deficiency|infection|cancer|carcinoma|tumou?r|fracture|"
    r"stenosis|hemorrhage|haemorrhage|infarction|thrombosis|embolism|embolus|failure|"
    r"insufficiency|injury|abscess|aneurysm|dissection|atresia|hernia|palsy|toxicity|overdose|"
    r"withdrawal|poisoning|reaction|trait|sclerosis|fibrosis|dysplasia|defect|malformation|"
    r"obstruction|rupture|torsion|prolapse|regurgitation|sepsis|pneumonia|jaundice|delirium|"
    r"dementia|leukemia|hydrops|hypertension|hypothyroidism|hyperthyroidism|hydrocephalus|"
    r"trisomy|cataracts?|glaucoma|migraine|seizure|epilepsy|tamponade|vertigo|neuralgia|"
    r"ischemia|anemia|psychosis|depression|abuse|pregnancy|ulcer|cyst|polyp|stroke)\b",
    re.IGNORECASE,
)
_MECHANISM = re.compile(
    r"^(?:increased?|decreased?|inhibition|activation|loss|impaired|elevated|reduced|excess|"
    r"excessive|abnormal|binding|release|production|formation|deposition|mutation|deletion|"
    r"microdeletion|dysfunction|accumulation|translocation|hydrolysis|upregulation|transfer)\b",
    re.IGNORECASE,
)
_NUMBERING = re.compile(r"^\s*\d+\s*[.)]\s*")
_DEMOGRAPHIC_ONLY = re.compile(
    r"^(?:the\s+)?patient\s+is\s+(?:an?\s+)?[\w\s,-]*?\b\d+[- ](?:year|month|week|day|hour)s?"
    r"[- ]old\b[\w\s,-]*\.?$",
    re.IGNORECASE,
)
# Where the opening sentence names the complaint, most specific first.
# "A 26-year-old man presents to the office.": demographics and setting only.
_ARRIVAL_ONLY = re.compile(
    r"^(?:an?\s+)?\d+[- ](?:year|month|week|day)s?[- ]old\b[\w\s,-]*?\s+(?:comes|came|presents|"
    r"presented|is presenting|is brought|was brought)\s+to\s+(?:the|a|an|his|her)\s+"
    r"(?:[\w-]+\s+){0,3}?(?:physician|doctor|office|clinic|department|hospital|pediatrician|"
    r"practitioner|center|room|unit|provider)\.?$",
    re.IGNORECASE,
)
_PRESENTING = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\bbecause of\s+(?P<cc>.+)$",
        r"\bcomplain(?:s|ing|ed)? of\s+(?P<cc>.+)$",
        r"\bwith (?:a |the )?(?:chief )?(?:complaints?|concerns?) of\s+(?P<cc>.+)$",
        r"\bpresents? (?:to [^.,]*? )?with\s+(?P<cc>.+)$",
        r"\b(?:comes|came|is brought|was brought|presents|presented) to [^.,]*? with\s+"
        r"(?!(?:his|her|their) (?:mother|father|parents?|wife|husband|partner|friend|son|daughter)"
        r"\b)(?P<cc>.+)$",
        r"\b(?:suddenly )?develops\s+(?P<cc>.+)$",
        r"\b(?:comes|came|presents|is brought|was brought) to [^.,]*? for\s+"
        r"(?P<cc>(?:an? |the |his |her )?(?:routine |annual |yearly |scheduled )?"
        r"(?:evaluation|assessment|examination|follow-up|well-child|health maintenance|"
        r"check-?up|prenatal|physical)\b.*)$",
    )
)


def case_id(item: Any) -> str:
    """The record id of a MediQ item: ``mediq-medqa-<8 hex digits>`` of its content.

    Not MediQ's own ``id`` (the dev, train and test files each number from 0, so equal numbers
    are different patients) and not the line number. The items the bundled cases came from keep
    their recorded ids (``mediq-medqa-0275`` ...; see ``common.RECORDED_IDS``).
    """
    return content_id(ID_PREFIX, item)


def import_mediq(
    path: str | Path, *, limit: int | None = None, only: set[str] | None = None
) -> list[CaseRecord]:
    """Convert the diagnosis items of a MediQ JSONL file; other items are left out.

    See :func:`read_mediq` for the arguments and the counts of skipped and filtered items.
    """
    return read_mediq(path, limit=limit, only=only).cases


def read_mediq(
    path: str | Path, *, limit: int | None = None, only: set[str] | None = None
) -> ImportResult:
    """Convert MediQ items that are diagnosis cases into validated case records.

    Args:
        path: ``all_dev_good.jsonl`` or any file in its format.
        limit: Stop after this many converted cases.
        only: Convert only these record ids (``mediq-medqa-0275``, ``mediq-medqa-<hash8>``;
            see :func:`case_id`).

    Returns:
        The records, the skipped items with reasons, and how many items were not diagnosis
        cases (``filtered_out``).

    Raises:
        InputError: The file cannot be read, or no item could be converted.
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
            if not isinstance(item, dict):
                raise SkipItem("line is not a JSON object")
            if not is_diagnosis_item(item):
                result.filtered_out += 1
                continue
            ids.claim(record_id, item, number)
            record, dropped = convert_mediq_item(item)
        except SkipItem as exc:
            result.skipped.append(SkippedItem(line=number, source_id=record_id, reason=str(exc)))
            continue
        result.cases.append(record)
        result.dropped_findings += len(dropped)
        if limit is not None and len(result.cases) >= limit:
            break
    return finish(result, path)


def question_sentence(question: str) -> str:
    """The question itself, without any lab table or preamble before it."""
    last = question.split("|")[-1].strip()
    sentences = split_sentences(last)
    return sentences[-1] if sentences else last


def looks_like_diagnosis(option: str) -> bool:
    """Whether an answer option names a disease or condition rather than a mechanism."""
    text = clean_option(option)
    return bool(_DISEASE_WORD.search(text)) and not _MECHANISM.match(text)


def is_diagnosis_item(item: dict[str, Any]) -> bool:
    """Whether a MediQ item is a diagnosis case.

    True when the question asks for the most likely diagnosis, or for the most likely cause of
    the patient's presentation while the answer and most other options are diseases (so the
    options form a real differential).
    """
    question = question_sentence(str(item.get("question", "")))
    answer = clean_option(item.get("answer", ""))
    if not answer:
        return False
    if _DIAGNOSIS_QUESTION.search(question):
        return True
    if not _CAUSE_QUESTION.search(question) or not looks_like_diagnosis(answer):
        return False
    others = _other_options(item, answer)
    return sum(looks_like_diagnosis(o) for o in others) >= max(2, len(others) - 1)


def _other_options(item: dict[str, Any], answer: str) -> list[str]:
    options = item.get("options") or {}
    values = options.values() if isinstance(options, dict) else options
    cleaned = [clean_option(v) for v in values if clean_option(v)]
    return [o for o in cleaned if o.lower() != answer.lower()]


def convert_mediq_item(item: dict[str, Any]) -> tuple[CaseRecord, list[str]]:
    """One MediQ diagnosis item → one record, and the ids of findings dropped as leaks.

    Raises:
        SkipItem: Facts, demographics or the presenting complaint are missing, or the record
            is not valid.
    """
    facts = [_NUMBERING.sub("", str(f)).strip() for f in item.get("facts") or []]
    facts = [f for f in facts if f]
    context = [str(c) for c in item.get("context") or [] if str(c).strip()]
    if not facts:
        raise SkipItem("no 'facts'")
    opening = context[0] if context else facts[0]
    patient = item.get("patient") if isinstance(item.get("patient"), dict) else {}
    demographics = parse_demographics(
        f"{opening} {patient.get('age', '')}",
        fallback_texts=(str(patient.get("gender", "")), " ".join(facts)),
        occupation=parse_occupation(*facts),
    )

    builder = FactBuilder()
    _add_facts(builder, facts)
    _add_question_findings(builder, str(item.get("question", "")))

    answer = " ".join(clean_option(item.get("answer", "")).split())
    complaint = chief_complaint(_presenting_complaint(opening, facts), demographics)
    dropped = remove_leaks(builder, complaint, answer)
    record: dict[str, Any] = {
        "id": case_id(item),
        "demographics": demographics,
        "chief_complaint": complaint,
        "facts": builder.facts,
        "exam_findings": builder.exam,
        "test_results": builder.tests,
        "diagnosis": answer,
        "differential": _other_options(item, answer),
        "source": SOURCE.format(id=item.get("id")),
    }
    return validate(record), dropped


def _add_facts(builder: FactBuilder, facts: list[str]) -> None:
    """Add MediQ's facts, routing the examination part of the vignette to findings.

    MedQA vignettes run history → vital signs and examination → laboratory and imaging, and
    MediQ keeps that order while splitting sentences ("Physical examination shows a nodule." →
    "There is a nodule ...", "The nodule is mobile ..."). So after the first explicit finding,
    a fact with no history, medication, social, family or allergy marker is a finding too: an
    exam finding, or a test result once the first test result has been seen.
    """
    section: str | None = None
    for fact in facts:
        if _DEMOGRAPHIC_ONLY.match(fact) or _ARRIVAL_ONLY.match(fact):
            continue
        finding = is_finding(fact, explicit_only=section is not None)
        if finding is None and section is not None and categorize(fact) == "symptom":
            finding = section
        if finding is None:
            builder.add_statement(fact, "symptom", route=False)
            continue
        section = "test" if finding == "test" else (section or "exam")
        builder.add_finding(finding, fact)


def _add_question_findings(builder: FactBuilder, question: str) -> None:
    """Lab rows and findings stated in the question before the question sentence."""
    asked = question_sentence(question)
    preamble = question[: question.rfind(asked)] if asked in question else ""
    for row in preamble.split("|"):
        for sentence in split_sentences(row):
            sentence = sentence.strip()
            if not sentence or sentence.endswith("?"):
                continue
            finding = is_finding(sentence)
            if finding is None and re.search(r"\d", sentence):
                finding = "test"
            if finding is not None:
                builder.add_finding(finding, sentence)


def _presenting_complaint(opening: str, facts: list[str]) -> str:
    """The complaint of the opening sentence ("... comes to the physician because of X")."""
    for text in (*split_sentences(opening)[:1], *facts[:3]):
        for pattern in _PRESENTING:
            match = pattern.search(text.strip().rstrip("."))
            if match:
                return match.group("cc").strip(' ."“”')
    raise SkipItem("no presenting complaint in the opening sentence")
