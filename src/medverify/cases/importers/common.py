"""Pieces every case importer shares: reading the source file, demographics, the chief complaint.

Importers convert public case sets (AgentClinic, MediQ) into :class:`CaseRecord`. Each source
item either becomes a validated record or is skipped with a reason that the command reports
(``medverify cases import``). Nothing here invents clinical content: demographics are parsed from
the source's own words, and the chief complaint is the source's presenting complaint with a few
technical terms put into everyday words.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from medverify.cases.diagnosis import names_diagnosis
from medverify.cases.importers.facts import (
    categorize,
    extract_keywords,
    is_covered,
    is_finding,
    is_uninformative,
    split_sentences,
)
from medverify.cases.loading import case_id_problem
from medverify.cases.records import CaseRecord, Demographics, Fact, FactCategory
from medverify.errors import InputError

logger = logging.getLogger(__name__)


class SkippedItem(BaseModel):
    """A source item that could not become a case record, and why."""

    line: int
    source_id: str
    reason: str


class ImportResult(BaseModel):
    """What one import produced: the records, and what was skipped."""

    source_format: str
    total: int = 0
    cases: list[CaseRecord] = Field(default_factory=list)
    skipped: list[SkippedItem] = Field(default_factory=list)
    filtered_out: int = Field(
        default=0, description="Valid items of a kind the importer does not convert."
    )
    dropped_findings: int = Field(
        default=0, description="Exam findings or test results dropped for naming the diagnosis."
    )


class SkipItem(Exception):
    """Raised inside a converter: this item cannot be converted (the message says why)."""


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any | SkipItem]]:
    """Yield ``(line_number, parsed_object)``; a line that is not JSON yields a :class:`SkipItem`.

    Raises:
        InputError: The file does not exist or cannot be read.
    """
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=path) from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw)
            except json.JSONDecodeError as exc:
                yield number, SkipItem(f"not valid JSON: {exc.msg} (column {exc.colno})")
            except RecursionError:
                yield number, SkipItem("not valid JSON: nested too deeply")


# Content digests (the first 16 hex digits of ``content_digest``) of the source items the
# bundled cases were converted from, and the ids those cases were published with (line numbers for
# AgentClinic, MediQ's own ``id`` for MediQ). Re-importing such an item gives it its recorded id,
# so the shipped files stay reproducible; every other item gets a content id.
RECORDED_IDS: dict[str, str] = {
    "532ee55694b3f334": "agentclinic-medqa-001",
    "3174fd1e633f4bb7": "agentclinic-medqa-005",
    "4a5dfa569f70cd5a": "agentclinic-medqa-017",
    "f439c8737684eba1": "agentclinic-medqa-021",
    "270959d20ea29c97": "agentclinic-medqa-022",
    "8bf24980814dda8e": "agentclinic-medqa-028",
    "4025a445188a8c6b": "agentclinic-medqa-032",
    "f0f2543a5f9620df": "agentclinic-medqa-040",
    "6e08a71e7fa7d071": "agentclinic-medqa-044",
    "48da0577817c6f62": "agentclinic-medqa-060",
    "269767f9192b57fe": "agentclinic-medqa-063",
    "97c7f0d045db710b": "agentclinic-medqa-066",
    "4003302fb416688e": "agentclinic-medqa-072",
    "c57768d5ade42b1e": "agentclinic-medqa-080",
    "0c4fd93d1918192a": "agentclinic-medqa-084",
    "4dc9561d30b94e78": "agentclinic-medqa-090",
    "9faafaa45be4e45d": "agentclinic-medqa-093",
    "c187310e939ae3b2": "agentclinic-medqa-094",
    "11bd5a01320c1fd0": "agentclinic-medqa-096",
    "6bcf2949f8ab9c55": "agentclinic-medqa-098",
    "8c124e5f308bd68b": "mediq-medqa-0001",
    "d139731181302c60": "mediq-medqa-0043",
    "9622c2650c6923f6": "mediq-medqa-0100",
    "a579fbec7dec64c4": "mediq-medqa-0147",
    "36c8aab185df53ce": "mediq-medqa-0150",
    "52f55d5c417d8604": "mediq-medqa-0217",
    "76b56107b5c16c0f": "mediq-medqa-0231",
    "aaa020f150169449": "mediq-medqa-0275",
    "2b3aedf2660e5e98": "mediq-medqa-0451",
    "602203eb321fb286": "mediq-medqa-0526",
    "f770b0234ec991e5": "mediq-medqa-0686",
    "e606da7a2231f2e1": "mediq-medqa-0771",
    "e409d55e94cc9a67": "mediq-medqa-0982",
    "2860a463bfefc95a": "mediq-medqa-1019",
    "954bb08500029026": "mediq-medqa-1128",
    "7c1b9f738277de6a": "mediq-medqa-1224",
}


def content_digest(item: Any) -> str:
    """SHA-256 (hex) of a parsed source item as canonical JSON: keys sorted, no spacing.

    The same item gives the same digest wherever it sits in whichever file (line order, file
    name and whitespace do not matter); any change to its content changes it.
    """
    text = json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_id(prefix: str, item: Any) -> str:
    """The record id of a source item: ``<prefix>-<first 8 hex digits of its content digest>``.

    Ids never depend on the item's line number, so an item that is not one of the bundled cases
    can never take a bundled case's id; the items the bundled cases came from keep their recorded
    ids (:data:`RECORDED_IDS`), e.g. ``agentclinic-medqa-001``.
    """
    digest = content_digest(item)
    return RECORDED_IDS.get(digest[:16], f"{prefix}-{digest[:8]}")


class ContentIds:
    """Assigns content ids within one import and catches items that would share one.

    An item identical to an earlier one in the same file is a duplicate; two different items
    whose 8-digit digests agree (about 1 in 4 billion per pair) cannot both keep the id. Either
    way the later item is skipped with a reason instead of overwriting the first.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._seen: dict[str, tuple[int, str]] = {}

    def of(self, item: Any, number: int) -> str:
        """The id of the item on line ``number`` (a line that is not JSON: ``<prefix>-line<n>``)."""
        if isinstance(item, SkipItem):
            return f"{self.prefix}-line{number}"
        return content_id(self.prefix, item)

    def claim(self, record_id: str, item: Any, number: int) -> None:
        """Reserve ``record_id`` for the item on line ``number``.

        Raises:
            SkipItem: An earlier line already holds this id.
        """
        digest = content_digest(item)
        first = self._seen.get(record_id)
        if first is not None:
            line, first_digest = first
            if first_digest == digest:
                raise SkipItem(f"duplicate of line {line} (same content, same id {record_id})")
            raise SkipItem(f"content id {record_id} is already used by line {line}")
        self._seen[record_id] = (number, digest)


def finish(result: ImportResult, path: str | Path) -> ImportResult:
    """Log the counts and refuse a file of which nothing could be converted."""
    for item in result.skipped:
        logger.info("skipped %s line %d (%s): %s", path, item.line, item.source_id, item.reason)
    logger.info(
        "%s: converted %d of %d %s items, skipped %d, filtered out %d, "
        "dropped %d findings that name the diagnosis",
        path,
        len(result.cases),
        result.total,
        result.source_format,
        len(result.skipped),
        result.filtered_out,
        result.dropped_findings,
    )
    if result.skipped and not result.cases:
        first = result.skipped[0]
        raise InputError(
            f"no {result.source_format} case could be converted; first problem: {first.reason} "
            f"(is this the right --format?)",
            path=path,
            line=first.line,
        )
    return result


def validate(data: dict[str, Any]) -> CaseRecord:
    """The record, or :class:`SkipItem` naming the first invalid field."""
    problem = case_id_problem(data.get("id"))
    if problem is not None:
        raise SkipItem(f"invalid record field 'id': {problem}")
    try:
        return CaseRecord.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise SkipItem(f"invalid record field '{where}': {error['msg']}") from exc


_AGE = re.compile(
    r"(?P<n>\d+(?:\.\d+)?)[- ]?(?P<unit>year|yr|month|mo|week|wk|day|hour|hr)s?(?:[- ]old)?\b",
    re.IGNORECASE,
)
_NEWBORN = re.compile(r"\b(?:newborn|neonate|infant|baby)\b", re.IGNORECASE)
_FEMALE = re.compile(r"\b(?:female|woman|girl|lady|daughter|she|her|gravida|nulliparous)\b", re.I)
_MALE = re.compile(r"\b(?:male|man|boy|gentleman|son|he|his|him)\b", re.IGNORECASE)


def parse_age(text: str) -> int | None:
    """Age in whole years from "35-year-old", "8-month-old", "Newborn" (0); else ``None``."""
    match = _AGE.search(text)
    if match:
        unit = match.group("unit").lower()
        number = float(match.group("n"))
        return int(number) if unit in ("year", "yr") else 0
    if _NEWBORN.search(text):
        return 0
    bare = re.fullmatch(r"\s*(\d{1,3})\s*", text)
    return int(bare.group(1)) if bare else None


def parse_sex(*texts: str) -> str | None:
    """``"female"`` or ``"male"`` from the first text that says so (words, then pronouns)."""
    for text in texts:
        female, male = _FEMALE.search(text), _MALE.search(text)
        if female and (not male or female.start() < male.start()):
            return "female"
        if male:
            return "male"
    return None


def parse_demographics(
    description: str, *, fallback_texts: tuple[str, ...] = (), occupation: str | None = None
) -> Demographics:
    """Age and sex from a source phrase like "35-year-old female".

    Sex falls back to the first of ``fallback_texts`` (the history) that names it; ``"unknown"``
    when nothing does.

    Raises:
        SkipItem: No age can be read.
    """
    age = parse_age(description)
    if age is None:
        raise SkipItem(f"cannot read an age from demographics {description!r}")
    sex = parse_sex(description, *fallback_texts) or "unknown"
    return Demographics(age=age, sex=sex, occupation=occupation)


_OCCUPATION = re.compile(
    r"\b(?:works|worked|working) as (?:an? )?(?P<job>[a-z][a-z \-]{2,40}?)"
    r"(?=[.,;]| at | in | for |$)"
    r"|\b(?P<retired>retired [a-z][a-z \-]{2,30}?)(?=[.,;]|$)",
    re.IGNORECASE,
)


def parse_occupation(*texts: str) -> str | None:
    """The occupation the source states ("Works as a graphic designer."), else ``None``."""
    for text in texts:
        match = _OCCUPATION.search(text)
        if match:
            return (match.group("job") or match.group("retired")).strip().lower()
    return None


# Technical words of presenting complaints and the everyday words a patient would use instead.
LAY_TERMS: dict[str, str] = {
    "diplopia": "double vision",
    "pruritus": "itching",
    "pruritic": "itchy",
    "dyspnea": "shortness of breath",
    "dyspnoea": "shortness of breath",
    "syncope": "fainting",
    "syncopal episode": "fainting spell",
    "hematuria": "blood in the urine",
    "hematochezia": "blood in the stool",
    "melena": "black stools",
    "hemoptysis": "coughing up blood",
    "hematemesis": "vomiting blood",
    "epistaxis": "nosebleeds",
    "paresthesias": "tingling",
    "paresthesia": "tingling",
    "dysuria": "pain when urinating",
    "polyuria": "urinating a lot",
    "polydipsia": "being very thirsty",
    "emesis": "vomiting",
    "pyrexia": "fever",
    "arthralgia": "joint pain",
    "arthralgias": "joint pains",
    "myalgia": "muscle aches",
    "myalgias": "muscle aches",
    "cephalgia": "headache",
    "rhinorrhea": "runny nose",
    "odynophagia": "pain when swallowing",
    "dysphagia": "trouble swallowing",
    "dysmenorrhea": "painful periods",
    "menorrhagia": "heavy periods",
    "amenorrhea": "missed periods",
    "dyspareunia": "pain during sex",
    "lethargy": "tiredness",
    "malaise": "feeling unwell",
    "pyuria": "pus in the urine",
    "edema": "swelling",
    "erythema": "redness",
    "erythematous": "red",
    "photophobia": "sensitivity to light",
    "tinnitus": "ringing in the ears",
    "pallor": "paleness",
    "icterus": "yellowing",
    "jaundice": "yellow skin",
    "dyspepsia": "indigestion",
    "tachypnea": "fast breathing",
    "palpitations": "a racing heartbeat",
}
_LAY = re.compile(r"\b(" + "|".join(sorted(LAY_TERMS, key=len, reverse=True)) + r")\b", re.I)
_PARENTHETICAL = re.compile(r"\s*\([^)]*\)")
# "Mother reports ...": a complete statement, kept as it is.
_STATEMENT = re.compile(
    r"^(?:[\w'’-]+\s+){1,2}(?:reports?|is|are|was|were|has|have|had|says|complains?|presents?|"
    r"notes|states)\b",
    re.IGNORECASE,
)
_LEAD_IN = re.compile(
    r"^(?:the |a )?(?:presence of|evaluation of|assessment of|complaints? of|"
    r"chief (?:complaint|concern) of)\s+",
    re.IGNORECASE,
)
_VISIT = re.compile(
    r"^(?:an? |the |his |her )?[\w\s-]*\b(?:examination|exam|check-?up|visit|follow-up|"
    r"evaluation|assessment)$",
    re.IGNORECASE,
)


def lay_words(text: str) -> str:
    """Replace technical terms by everyday ones and drop parenthetical asides."""
    text = _PARENTHETICAL.sub("", text)
    return _LAY.sub(lambda m: LAY_TERMS[m.group(1).lower()], text)


def chief_complaint(complaint: str, demographics: Demographics) -> str:
    """The first thing the patient (or a parent, for young children) says, in first person.

    The complaint itself is the source's words with technical terms made plain and third-person
    possessives made first person ("pain in his knee" → "pain in my knee"); no symptom is added.
    A noun phrase ("Double vision") becomes "I've come in because of double vision."; a visit
    reason ("a routine health maintenance examination") becomes "I've come in for ...";
    a complete statement ("Mother reports ...") is kept as it is.
    """
    text = re.sub(r"[\"“”]", "", " ".join(lay_words(complaint).split())).strip(" .;,")
    text = _LEAD_IN.sub("", text)
    text = re.sub(r"^(?:his|her|their) (?:son|daughter|child|baby|infant)['’]s\s+", "", text)
    if not text:
        raise SkipItem("empty presenting complaint")
    if _STATEMENT.match(text):
        return text[0].upper() + text[1:] + "."
    first = text.split(" ", 1)[0]
    if not (first.isupper() and len(first) > 1):
        text = text[0].lower() + text[1:]
    child = demographics.age < 12
    if not child:
        text = re.sub(r"\b(?:his|her)\b", "my", text)
        text = re.sub(r"\b(?:he|she) (was|had)\b", r"I \1", text)
    why = "for" if _VISIT.match(text) else "because of"
    if demographics.age < 1:
        return f"I've brought my baby in {why} {text}."
    if child:
        relation = {"female": "daughter", "male": "son"}.get(demographics.sex, "child")
        return f"I've brought my {relation} in {why} {text}."
    return f"I've come in {why} {text}."


class FactBuilder:
    """Collects facts for one case: ids, categories, keywords, routing and de-duplication.

    History-type statements go to ``facts``; statements that are a clinician's findings go to
    ``exam_findings`` or ``test_results``. A statement whose content words are all already in
    an earlier fact of the same list is dropped as a duplicate (AgentClinic repeats the history
    in its symptom lists).
    """

    def __init__(self) -> None:
        self.facts: list[Fact] = []
        self.exam: list[Fact] = []
        self.tests: list[Fact] = []

    def add_statement(self, text: str, default: FactCategory, *, route: bool = True) -> None:
        """Add one statement, categorized by rules (``default`` when none applies)."""
        text = " ".join(text.split())
        if is_uninformative(text):
            return
        finding = is_finding(text) if route else None
        if finding is not None:
            self.add_finding(finding, text)
            return
        self._add(self.facts, "f", categorize(text, default), text)

    def add_prose(self, text: str, default: FactCategory, *, route: bool = True) -> None:
        """Add each sentence of a paragraph as its own statement."""
        for sentence in split_sentences(text):
            self.add_statement(sentence, default, route=route)

    def add_finding(self, category: FactCategory, text: str) -> None:
        """Add an exam finding (``"exam"``) or a test result (``"test"``)."""
        target = self.exam if category == "exam" else self.tests
        self._add(target, "e" if category == "exam" else "t", category, text)

    def _add(self, target: list[Fact], prefix: str, category: FactCategory, text: str) -> None:
        text = " ".join(text.split())
        if not text:
            return
        if target is self.facts and is_covered(text, (f.text for f in target)):
            return
        fact_id = f"{prefix}{len(target) + 1}"
        target.append(
            Fact(id=fact_id, category=category, text=text, keywords=extract_keywords(text))
        )


def remove_leaks(builder: FactBuilder, complaint: str, diagnosis: str) -> list[str]:
    """Enforce that the record never states its own diagnosis.

    A patient fact or chief complaint that names the diagnosis makes the case unusable (the
    patient would say it): the item is skipped. An exam finding or test result that names it
    ("biopsy ... consistent with pyoderma gangrenosum") is dropped, and the rest of the case is
    kept; the ids of the dropped findings are returned for the import report.

    Raises:
        SkipItem: A patient fact or the chief complaint names the diagnosis.
    """
    for fact in builder.facts:
        if names_diagnosis(fact.text, diagnosis):
            raise SkipItem(f"fact {fact.id} states the diagnosis {diagnosis!r}: {fact.text!r}")
    if names_diagnosis(complaint, diagnosis):
        raise SkipItem(f"the chief complaint states the diagnosis {diagnosis!r}")
    dropped = [f.id for f in [*builder.exam, *builder.tests] if names_diagnosis(f.text, diagnosis)]
    builder.exam = _renumber([f for f in builder.exam if f.id not in dropped], "e")
    builder.tests = _renumber([f for f in builder.tests if f.id not in dropped], "t")
    return dropped


def _renumber(facts: list[Fact], prefix: str) -> list[Fact]:
    return [f.model_copy(update={"id": f"{prefix}{i}"}) for i, f in enumerate(facts, start=1)]


def clean_option(text: str) -> str:
    """An answer option without stray quotes, newlines and trailing punctuation."""
    return " ".join(str(text).replace('"', " ").split()).strip(" .")
