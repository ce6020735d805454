"""What the five dimension modules share: the build record and how record facts are classified.

The core writes its items into one :class:`CoreBuild` so that the rubric keeps a fixed order
(diagnosis, consultation, treatment, communication, ethics, then the transcript's items) and so
that the transcript items can reuse the history targets the consultation dimension chose. Some
readings of the record are needed by more than one dimension and must agree between them: which
question group a history fact belongs to (the history items, the drug-history fallback, the
ethics item on a sexual history), which drug names a medication fact holds (the medication
question, the drug-induced treatment item), and whether a finding is abnormal (the examination
and test items, the diagnostic "findings that support the diagnosis" item). They live here,
once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from medverify.cases.keywords import specific_keywords
from medverify.cases.records import CaseRecord, Fact
from medverify.grading.evidence import DetectorCheck, EvidenceCheck
from medverify.grading.records import RubricItem
from medverify.rubrics.phrasing import is_negative, key_terms
from medverify.rubrics.records import Origin
from medverify.text import lexicon as lx
from medverify.text.matching import words


class CoreOptions(BaseModel):
    """How many items of each kind the core writes (more is not better: graders tire too).

    Attributes:
        max_history_items: history items (symptoms and grouped topics), most important first.
        max_exam_items: examination items.
        max_test_items: test items.
    """

    max_history_items: int = Field(8, ge=1, le=30)
    max_exam_items: int = Field(4, ge=0, le=20)
    max_test_items: int = Field(4, ge=0, le=20)


@dataclass
class HistoryTarget:
    """A history item and the record facts that answer it (the transcript items use them)."""

    phrase: str  # what to ask about, for "States a final diagnosis without having asked about"
    criterion: str
    points: int
    fact_ids: list[str]
    score: float
    order: int


@dataclass
class CoreBuild:
    """Everything the core derived from a record: items in order, and the history targets."""

    items: list[RubricItem] = field(default_factory=list)
    origins: list[Origin] = field(default_factory=list)
    targets: list[HistoryTarget] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checks: dict[str, EvidenceCheck] = field(default_factory=dict)

    def add(
        self,
        rubric_item: RubricItem,
        origin: Origin = "core",
        check: EvidenceCheck | None = None,
    ) -> None:
        """Append one item.

        Args:
            rubric_item: the item.
            origin: where it came from (the case record or the transcript).
            check: how the consultation's evidence decides it, when it can.
        """
        self.items.append(rubric_item)
        self.origins.append(origin)
        if check is not None:
            self.checks[rubric_item.criterion] = check


# --------------------------------------------------------------------------------------------
# history question groups

#: (group, pattern, criterion, points) for the social-history question groups.
SOCIAL_GROUPS: tuple[tuple[str, re.Pattern[str], str, int], ...] = (
    (
        "substances",
        re.compile(
            r"smok|cigar|tobacco|\bvap|nicotine|alcohol|drink|beer|wine|liquor|drug use"
            r"|illicit|cannabis|marijuana|cocaine|heroin|inject",
            re.I,
        ),
        "Asks about smoking, alcohol and recreational drug use",
        3,
    ),
    (
        "sexual",
        re.compile(r"\bsexual|\bsex\b|partner|condom|contracept", re.I),
        "Takes a sexual history",
        3,
    ),
    (
        "travel",
        re.compile(
            r"travel|\btrip|abroad|overseas|immigrat|emigrat|moved (?:here )?from"
            r"|returned from",
            re.I,
        ),
        "Asks about recent travel or where the patient has lived",
        3,
    ),
    (
        "occupation",
        re.compile(
            r"\bworks?\b|\bworked\b|\bjob\b|occupation|employ|retired|student|school"
            r"|college|construction|farm",
            re.I,
        ),
        "Asks about the patient's occupation and exposures at work or school",
        2,
    ),
    (
        "living",
        re.compile(r"\blives?\b|\bliving\b|married|wife|husband|household|alone", re.I),
        "Asks about the patient's home and social circumstances",
        2,
    ),
    ("diet", re.compile(r"\bdiet|exercis|\beat", re.I), "Asks about diet and exercise", 2),
)
_VACCINE = re.compile(r"vaccin|immuni[sz]", re.I)
_MODIFIERS = re.compile(
    r"\bworse\w*|\bworsen\w*|\bbetter\b|\bimprov\w*|\brelie\w*|\btrigger\w*"
    r"|\baggravat\w*|\bmakes? it\b",
    re.I,
)
_OBSTETRIC = re.compile(
    r"pregnan|gestation|menarche|menses|menstrua|period|pap smear|deliver"
    r"|tubal|obstetric",
    re.I,
)


def group_of(fact: Fact) -> str | None:
    """The question group a history fact belongs to.

    A doctor asks "what medications do you take?" once, not once per drug, so such facts are
    grouped into one history item; a key symptom is asked about on its own.

    Args:
        fact: a fact of the case record.

    Returns:
        The group's name (``medication``, ``allergy``, ``family``, ``vaccination``,
        ``modifiers``, a :data:`SOCIAL_GROUPS` name, ``social``, ``obstetric``, ``pmh``), or
        ``None`` for a fact asked about on its own.
    """
    if fact.category in ("medication", "allergy", "family"):
        return fact.category
    if _VACCINE.search(fact.text):
        return "vaccination"
    if fact.category == "symptom" and _MODIFIERS.search(fact.text):
        return "modifiers"
    if fact.category in ("social", "symptom", "history"):
        for name, pattern, _criterion, _points in SOCIAL_GROUPS:
            if pattern.search(fact.text) and (
                fact.category == "social" or name in ("travel", "occupation")
            ):
                return name
        if fact.category == "social":
            return "social"
    if fact.category == "history":
        if _OBSTETRIC.search(fact.text):
            return "obstetric"
        if not lx.DURATION.search(fact.text) or is_negative(fact.text):
            return "pmh"
    return None


_DRUG_SUFFIX = re.compile(
    r"(?:ine|ol|il|in|ide|one|ate|pril|sartan|statin|mab|zole|cycline|cillin|mycin|pam|lam|xacin"
    r"|vir|pine|done|sone)$"
)


def drug_terms(case: CaseRecord, facts: Sequence[Fact]) -> list[str]:
    """Drug names in medication facts: keywords that are not generic words.

    Args:
        case: the case record (its specific keywords rank a fact's terms).
        facts: the medication facts to read.

    Returns:
        Single-word drug names, in fact order, without repeats (case-insensitive).
    """
    specific = specific_keywords(case)
    names: list[str] = []
    for fact in facts:
        label_free = re.sub(r"^[A-Za-z ]+:\s*", "", fact.text)
        for kw in key_terms(label_free, specific.get(fact.id, []) or fact.keywords, limit=3):
            if (
                len(words(kw)) == 1
                and kw.lower() not in (n.lower() for n in names)
                and _DRUG_SUFFIX.search(kw.lower())
            ):
                names.append(kw)
    return names


# --------------------------------------------------------------------------------------------
# abnormal findings

_NORMAL = re.compile(
    r"\bnormal\b|\bunremarkable\b|\bno (?:obvious |significant )?(?:abnormalit\w*|\w+ detected)"
    r"|\bwithin (?:normal )?limits\b|\bnegative\b|\bclear\b|\bintact\b|\bno \w+\b",
    re.I,
)
#: Words that say a finding is abnormal.
ABNORMAL = re.compile(
    r"\b(?:elevated|decreased|increased|reduced|diminished|positive|present|enlarged|tender\w*"
    r"|abnormal\w*|high|low|absent|weak\w*|swollen|murmur|rash|lesions?|mass|crackles|wheez\w*"
    r"|effusion|ptosis|atroph\w*|tremor|rigidity|bradykinesia|nystagmus|lymphadenopathy)\b",
    re.I,
)


_VITAL_RANGES: tuple[tuple[re.Pattern[str], float, float], ...] = (
    (re.compile(r"temperature\D{0,20}?(\d{2}(?:\.\d)?)\s*°?\s*c", re.I), 35.0, 37.9),
    (re.compile(r"(?:heart rate|pulse)\D{0,20}?(\d{2,3})", re.I), 50.0, 100.0),
    (re.compile(r"blood pressure\D{0,20}?(\d{2,3})\s*/", re.I), 90.0, 139.0),
    (re.compile(r"temperature\D{0,20}?(\d{2,3}(?:\.\d)?)\s*°?\s*f", re.I), 95.0, 100.3),
    (re.compile(r"respirat\w*(?: rate)?\D{0,20}?(\d{1,2})", re.I), 10.0, 20.0),
    (re.compile(r"(?:oxygen saturation|spo2)\D{0,20}?(\d{2,3})", re.I), 94.0, 100.0),
)


def vital_value(text: str) -> bool | None:
    """Whether a vital sign is out of the adult reference range.

    Args:
        text: a finding's text.

    Returns:
        ``True`` out of range, ``False`` within it, ``None`` if the text holds no vital sign.
    """
    for pattern, low, high in _VITAL_RANGES:
        m = pattern.search(text)
        if m:
            value = float(m.group(1))
            return not low <= value <= high
    return None


def is_abnormal(fact: Fact) -> bool:
    """Whether an examination finding or test result reports something abnormal.

    Args:
        fact: an examination or test fact.

    Returns:
        ``False`` for a test not done, a bare measurement, a finding stated as normal or negative
        and a vital sign in range; otherwise whether the text names an abnormality or fails to
        read as normal.
    """
    text = fact.text
    if re.search(r"\bnot (?:assessed|performed|done|available|examined)\b", text, re.I):
        return False
    bare = re.sub(r"\s*\([^)]*\)", "", text).strip()
    if (
        fact.category == "exam"
        and re.fullmatch(r"[A-Za-z ]{2,40}:\s*[\d.,]+\s*[a-z%/°]*\.?", bare, re.I)
        and vital_value(text) is None
    ):
        return False  # a bare measurement (height, weight): no finding in itself
    if re.match(r"^(?:[A-Za-z ]{2,40}:\s*)?(?:no|normal|unremarkable|negative)\b", text, re.I):
        return False
    vital = vital_value(text)
    if vital is not None:
        return vital
    return bool(ABNORMAL.search(text)) or not _NORMAL.search(text)


#: The core's own judgement items that an offline detector can decide, by the start of their
#: criterion (:mod:`medverify.grading.detectors`). With an LLM judge the judge decides them.
DETECTOR_ITEMS: dict[str, str] = {
    "Opens with an open question": "open_question",
    "Asks when the ": "onset",
    "Asks about current medications and drug allergies": "drug_history_first",
    "Proposes a management plan suited to": "plan",
    "Tells the patient which warning signs": "safety_net",
    "Checks the patient's drug allergies and current medications before": "drug_history_first",
    "Recognises ": "urgent_care",
    "Sends the patient home with reassurance": "routine_instead_of_urgent",
    "Dismisses the complaint as nothing serious": "dismissive_plan",
    "Explains the diagnosis and plan": "explains",
    "Acknowledges the patient's feelings": "empathy",
    "Checks the patient's understanding": "checks_understanding",
    "Uses medical terms such as": "jargon",
    "Dismisses, belittles or ignores": "belittles",
    "Asks for the patient's permission before examining": "consent",
    "Is honest about uncertainty": "uncertainty",
    "States examination findings or test results that were not obtained": "fabricated",
    "Shares the patient's health information with a third party": "third_party",
}


def attach_detectors(build: CoreBuild) -> None:
    """Give the core's detector-decidable judgement items their detector check."""
    for rubric_item in build.items:
        if rubric_item.criterion in build.checks:
            continue
        for prefix, detector in DETECTOR_ITEMS.items():
            if rubric_item.criterion.startswith(prefix):
                build.checks[rubric_item.criterion] = DetectorCheck(detector=detector)
                break


_UNCONSCIOUS = re.compile(
    r"\b(?:unconscious|unresponsive|intubated|comatose|obtunded|in a coma|"
    r"(?:gcs|glasgow coma scale)(?: score)?(?: of| is)? [3-8]\b)",
    re.IGNORECASE,
)


def cannot_converse(case: CaseRecord) -> bool:
    """Whether the record describes a patient who cannot talk (unconscious, intubated...).

    Items addressed to the patient's feelings, understanding or consent do not apply to them.
    """
    texts = [case.chief_complaint, *(f.text for f in case.all_facts())]
    return any(_UNCONSCIOUS.search(t) for t in texts)
