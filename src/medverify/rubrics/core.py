"""The deterministic rubric core: a clinician's checklist read off a case record, no model.

Given a case record (and, optionally, one consultation's transcript), the core writes weighted,
checkable criteria in the five Baichuan-M2 dimensions:

* **consultation logic** — the history a clinician must take (the record's facts that matter
  most, grouped the way a doctor asks: "current medications", "family history", one item per
  key symptom, pertinent negatives at lower weight), the examinations and tests that produce the
  record's findings, and process faults (a diagnosis stated before the key questions, or before
  any examination or test);
* **diagnostic accuracy** — the final diagnosis named, a differential considered, the reasoning
  tied to findings; a different final diagnosis is penalised;
* **treatment rationality** — the record's management steps and red flags when it has them;
  otherwise only what follows honestly from the diagnosis's kind (:mod:`.knowledge`: emergency,
  contagious, drug-induced, pregnancy, a documented allergy) plus a plan and safety-netting;
* **communication & empathy** — plain language at the persona's health literacy, acknowledging
  the patient's feelings, checking understanding; jargon with a low-literacy patient and
  dismissiveness are penalised;
* **medical ethics** — consent before examination, honesty about uncertainty; fabricated
  findings and disclosure to third parties are penalised.

Each criterion names what a grader must look for in the record's own words ("Asks about
difficulty in climbing stairs or weakness when trying to brush her hair"). Weights follow
clinical importance: the right diagnosis is the largest single item, key history items come
next, so a careful doctor scores far above one who guesses at once. Pure and deterministic:
same case, same rubric, on any machine. Used by :func:`medverify.rubrics.generate_rubric` and
``medverify rubrics``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from medverify.cases.keywords import specific_keywords
from medverify.cases.records import HISTORY_CATEGORIES, CaseRecord, Fact, Transcript
from medverify.grading.records import RubricItem
from medverify.rubrics import knowledge as kb
from medverify.rubrics.phrasing import (
    complaint_phrase,
    finding_label,
    finding_name,
    is_negative,
    is_uninformative,
    join_or,
    key_terms,
    short_finding,
    topic_of,
)
from medverify.rubrics.records import Origin, Rubric, item
from medverify.text import lexicon as lx
from medverify.text.matching import contains_term, words


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

    def add(self, rubric_item: RubricItem, origin: Origin = "core") -> None:
        """Append one item."""
        self.items.append(rubric_item)
        self.origins.append(origin)


# --------------------------------------------------------------------------------------------
# history

_SOCIAL_GROUPS: tuple[tuple[str, re.Pattern[str], str, int], ...] = (
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


def _group_of(fact: Fact) -> str | None:
    """The question group a fact belongs to, or ``None`` for a fact asked about on its own."""
    if fact.category in ("medication", "allergy", "family"):
        return fact.category
    if _VACCINE.search(fact.text):
        return "vaccination"
    if fact.category == "symptom" and _MODIFIERS.search(fact.text):
        return "modifiers"
    if fact.category in ("social", "symptom", "history"):
        for name, pattern, _criterion, _points in _SOCIAL_GROUPS:
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


def _drug_terms(case: CaseRecord, facts: Sequence[Fact]) -> list[str]:
    """Drug names in medication facts: keywords that are not generic words."""
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


def _history_targets(case: CaseRecord) -> list[HistoryTarget]:
    cc = [case.chief_complaint]
    history = [f for f in case.facts if f.category in HISTORY_CATEGORIES]
    specific = specific_keywords(case)
    groups: dict[str, list[Fact]] = {}
    singles: list[Fact] = []
    for fact in history:
        name = _group_of(fact)
        if name is None:
            singles.append(fact)
        else:
            groups.setdefault(name, []).append(fact)
    order = {f.id: i for i, f in enumerate(case.facts)}
    targets: list[HistoryTarget] = []

    for fact in singles:
        if is_uninformative(fact.text):
            continue
        phrase = topic_of(fact.text, cc)
        if not phrase:
            continue
        negative = is_negative(fact.text)
        n_specific = len(
            [k for k in specific.get(fact.id, []) if not contains_term(case.chief_complaint, k)]
        )
        score = (2.0 if negative else 3.0) + min(n_specific, 4) * 0.5
        points = 3 if negative else (5 if n_specific >= 3 else 4)
        suffix = " (pertinent negatives)" if negative else ""
        short = topic_of(fact.text, cc, max_clauses=1)
        targets.append(
            HistoryTarget(
                short, f"Asks about {phrase}{suffix}", points, [fact.id], score, order[fact.id]
            )
        )

    for name, facts in groups.items():
        ids = [f.id for f in facts]
        first = min(order[i] for i in ids)
        informative = [
            f
            for f in facts
            if not is_uninformative(f.text)
            and not (is_negative(f.text) and f.category != "allergy")
        ]
        examples = "; ".join(
            p for p in (topic_of(f.text, cc, max_clauses=2) for f in informative[:2]) if p
        )
        if name == "medication":
            drugs = _drug_terms(case, facts)
            phrase = "current medications"
            crit = "Asks what medications the patient is taking"
            if drugs:
                crit += f", such as {join_or(drugs[:4])}"
            points = 5 if any(p.search(case.diagnosis) for p, _ in kb.DRUG_INDUCED) else 4
            targets.append(HistoryTarget(phrase, crit, points, ids, 4.5, first))
        elif name == "modifiers":
            record = "; ".join(short_finding(f.text, limit=70) for f in facts[:2])
            complaint = complaint_phrase(case.chief_complaint)
            crit = (
                f"Asks what makes the {complaint} better or worse (the record: "
                f"{record[0].lower() + record[1:]})"
            )
            targets.append(HistoryTarget("what makes it better or worse", crit, 4, ids, 4.0, first))
        elif name == "allergy":
            targets.append(
                HistoryTarget(
                    "drug allergies",
                    "Asks whether the patient has any drug allergies",
                    4,
                    ids,
                    4.5,
                    first,
                )
            )
        elif name == "family":
            crit = "Asks about family history" + (f", such as {examples}" if examples else "")
            targets.append(
                HistoryTarget("family history", crit, 2 if not examples else 3, ids, 2.5, first)
            )
        elif name == "pmh":
            crit = "Asks about past medical history" + (f", such as {examples}" if examples else "")
            targets.append(
                HistoryTarget(
                    "past medical history",
                    crit,
                    3 if examples else 2,
                    ids,
                    3.5 if examples else 2.0,
                    first,
                )
            )
        elif name == "obstetric":
            crit = "Asks about menstrual, pregnancy and obstetric history" + (
                f", such as {examples}" if examples else ""
            )
            targets.append(
                HistoryTarget("menstrual and obstetric history", crit, 4, ids, 4.0, first)
            )
        elif name == "vaccination":
            targets.append(
                HistoryTarget(
                    "immunization status",
                    "Asks about the patient's immunization status",
                    3,
                    ids,
                    3.0,
                    first,
                )
            )
        else:
            spec = next((g for g in _SOCIAL_GROUPS if g[0] == name), None)
            base, points = (
                (spec[2], spec[3]) if spec else ("Asks about the patient's social history", 2)
            )
            crit = base + (f", such as {examples}" if examples else "")
            phrase = re.sub(r"^(?:Asks about|Takes) (?:the patient's )?", "", base)
            targets.append(HistoryTarget(phrase, crit, points, ids, 1.0 + points * 0.6, first))
    return targets


def _pick_history(targets: list[HistoryTarget], limit: int) -> list[HistoryTarget]:
    """The ``limit`` most important targets, in record order (how a history is taken)."""
    ranked = sorted(targets, key=lambda t: (-t.score, t.order))[:limit]
    return sorted(ranked, key=lambda t: t.order)


# --------------------------------------------------------------------------------------------
# examination and tests

_VITALS = frozenset(
    {
        "vital signs",
        "blood pressure",
        "heart rate",
        "temperature",
        "respiratory rate",
        "oxygen saturation",
        "weight",
    }
)
_SKIP_GENERIC = frozenset({"blood tests", "neurological", "antibody tests"})
_NORMAL = re.compile(
    r"\bnormal\b|\bunremarkable\b|\bno (?:obvious |significant )?(?:abnormalit\w*|\w+ detected)"
    r"|\bwithin (?:normal )?limits\b|\bnegative\b|\bclear\b|\bintact\b|\bno \w+\b",
    re.I,
)
_ABNORMAL = re.compile(
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


def _vital_value(text: str) -> bool | None:
    """Whether a vital sign is out of the adult reference range; ``None`` if not a vital."""
    for pattern, low, high in _VITAL_RANGES:
        m = pattern.search(text)
        if m:
            value = float(m.group(1))
            return not low <= value <= high
    return None


def _abnormal(fact: Fact) -> bool:
    text = fact.text
    if re.search(r"\bnot (?:assessed|performed|done|available|examined)\b", text, re.I):
        return False
    bare = re.sub(r"\s*\([^)]*\)", "", text).strip()
    if (
        fact.category == "exam"
        and re.fullmatch(r"[A-Za-z ]{2,40}:\s*[\d.,]+\s*[a-z%/°]*\.?", bare, re.I)
        and _vital_value(text) is None
    ):
        return False  # a bare measurement (height, weight): no finding in itself
    if re.match(r"^(?:[A-Za-z ]{2,40}:\s*)?(?:no|normal|unremarkable|negative)\b", text, re.I):
        return False
    vital = _vital_value(text)
    if vital is not None:
        return vital
    return bool(_ABNORMAL.search(text)) or not _NORMAL.search(text)


_EXAM_PHRASES = {
    "strength": "Examines muscle strength",
    "sensation": "Examines sensation",
    "reflexes": "Examines the reflexes",
    "gait": "Examines gait and coordination",
    "pelvic": "Performs a pelvic examination",
    "rectal": "Performs a digital rectal examination",
    "fundoscopy": "Performs fundoscopy",
    "skin": "Examines the skin",
    "joints": "Examines the affected joints",
}


def _names_item(label: str, found: lx.Item) -> bool:
    """Whether a finding's own label names the lexicon item (or the label is a generic one)."""
    generic = re.search(
        r"examination|exam\b|inspection|auscultation|palpation|percussion", label, re.I
    )
    return bool(generic) or any(contains_term(label, a) for a in (*found.ask, found.name))


def _item_for(fact: Fact, items: Sequence[lx.Item]) -> lx.Item | None:
    haystack = f"{fact.text} {' '.join(fact.keywords)}"
    for candidate in items:
        if candidate.name in _SKIP_GENERIC:
            continue
        if any(contains_term(haystack, m) for m in candidate.match):
            return candidate
    return None


def _finding_items(case: CaseRecord, options: CoreOptions) -> list[tuple[int, RubricItem]]:
    """(record order, item) for the examinations and tests that produce the record's findings."""
    out: list[tuple[int, RubricItem]] = []
    order = {f.id: i for i, f in enumerate(case.all_facts())}
    # examinations: vital signs as one item, other exams by body system
    vitals = [
        f
        for f in case.exam_findings
        if (it := _item_for(f, lx.EXAM_ITEMS)) is not None and it.name in _VITALS
    ]
    systems: dict[str, list[Fact]] = {}
    for fact in case.exam_findings:
        if fact in vitals:
            continue
        found = _item_for(fact, lx.EXAM_ITEMS)
        own = finding_label(fact.text)
        if found is not None and (own is None or _names_item(own, found)):
            label = found.name
        elif own is not None:
            named = next((it for it in lx.EXAM_ITEMS if it.name == own.lower()), None)
            label = named.name if named else f"label:{own.lower()}"
        else:
            continue
        systems.setdefault(label, []).append(fact)
    exam: list[tuple[float, int, RubricItem]] = []
    for name, facts in systems.items():
        abnormal = [f for f in facts if _abnormal(f)]
        example = short_finding(abnormal[0].text, limit=70) if abnormal else ""
        if name.startswith("label:"):
            own = name.removeprefix("label:")
            crit = f"Checks for {own}" if abnormal else f"Checks {own}"
            example = ""
        else:
            crit = _EXAM_PHRASES.get(name, f"Examines the {name}")
        if example:
            crit += f" (the record's finding: {example})"
        points = 4 if abnormal else 2
        exam.append(
            (points, order[facts[0].id], item(crit, points, "consultation_logic", "completeness"))
        )
    exam.sort(key=lambda e: (-e[0], e[1]))
    if vitals:
        points = 3 if any(_abnormal(f) for f in vitals) else 2
        measured = {
            candidate.name
            for f in vitals
            for candidate in lx.EXAM_ITEMS
            if candidate.name in _VITALS - {"vital signs", "weight"}
            and any(contains_term(f.text, m) for m in candidate.match)
        }
        names = join_or(sorted(measured), "and")
        crit = "Checks the vital signs" + (f" ({names})" if names else "")
        exam.insert(
            0,
            (points, order[vitals[0].id], item(crit, points, "consultation_logic", "completeness")),
        )
    out += [(o, i) for _p, o, i in exam[: options.max_exam_items]]

    tests: dict[str, list[Fact]] = {}
    for fact in case.test_results:
        label = finding_label(fact.text)
        found = _item_for(fact, lx.TEST_ITEMS)
        key = found.name if found else (label or short_finding(fact.text, limit=40)).lower()
        tests.setdefault(key, []).append(fact)
    ranked: list[tuple[int, int, RubricItem]] = []
    for name, facts in tests.items():
        abnormal = [f for f in facts if _abnormal(f)]
        labels = [lab for f in facts if (lab := finding_label(f.text))]
        if labels and (
            len(labels) == 1
            or name
            in ("complete blood count", "kidney function and electrolytes", "liver function tests")
        ):
            what = join_or(
                list(
                    dict.fromkeys(
                        lab[0].lower() + lab[1:] if not lab[:2].isupper() else lab for lab in labels
                    )
                )[:3],
                "and",
            )
            crit = f"Orders {what}" if len(labels) == 1 else f"Orders {name} ({what})"
        else:
            crit = f"Orders {name}"
        points = 4 if abnormal else 2
        ranked.append(
            (points, order[facts[0].id], item(crit, points, "consultation_logic", "completeness"))
        )
    ranked.sort(key=lambda r: (-r[0], r[1]))
    out += [(o, i) for _p, o, i in ranked[: options.max_test_items]]
    return out


# --------------------------------------------------------------------------------------------
# the other dimensions


def _diagnosis_items(case: CaseRecord, build: CoreBuild) -> None:
    dx = case.diagnosis.strip()
    build.add(
        item(
            f"States {dx} as the final diagnosis (or an equivalent name for it)",
            10,
            "diagnostic_accuracy",
            "accuracy",
        )
    )
    ddx = [d for d in case.differential if d.strip().lower() != dx.lower()]
    if ddx:
        build.add(
            item(
                f"Considers alternative diagnoses before settling on the final one, "
                f"such as {join_or(ddx[:3])}",
                3,
                "diagnostic_accuracy",
                "completeness",
            )
        )
    else:
        build.add(
            item(
                "Mentions at least one alternative diagnosis considered before settling on "
                "the final one",
                2,
                "diagnostic_accuracy",
                "completeness",
            )
        )
    abnormal = [  # findings that say plainly what is abnormal, vital signs aside
        f
        for f in case.exam_findings + case.test_results
        if _abnormal(f)
        and _vital_value(f.text) is None
        and _ABNORMAL.search(f.text)
        and not re.search(r"\bnormal\b|\bno (?:\w+ )?abnormal|\bremainder\b", f.text, re.I)
    ]
    support = [finding_name(f.text) for f in abnormal[:2]]
    crit = "Explains which history and examination findings support the diagnosis"
    if support:
        crit += f", such as {join_or(support)}"
    build.add(item(crit, 3, "diagnostic_accuracy", "accuracy"))
    wrong = f" (for example {join_or(ddx[:2])})" if ddx else ""
    build.add(
        item(
            f"Gives a final diagnosis other than {dx}{wrong}", -6, "diagnostic_accuracy", "accuracy"
        )
    )


def _allergies(case: CaseRecord) -> list[tuple[str, kb.DrugClass, str]]:
    """(allergen text, drug class, kind) for each documented allergy or drug reaction."""
    out = []
    for fact in case.facts:
        if fact.category == "allergy" and not kb.NO_ALLERGY.search(fact.text):
            for dc in kb.drug_classes_in(fact.text):
                m = dc.members.search(fact.text)
                out.append((m.group(0) if m else dc.name, dc, "allergy"))
            if not kb.drug_classes_in(fact.text):
                allergen = topic_of(fact.text) or fact.text
                out.append(
                    (allergen, kb.DrugClass(allergen, re.compile(re.escape(allergen))), "allergy")
                )
        elif fact.category == "medication" and kb.REACTION.search(fact.text):
            for dc in kb.drug_classes_in(fact.text):
                m = dc.members.search(fact.text)
                out.append((m.group(0) if m else dc.name, dc, "reaction"))
    seen: set[str] = set()
    unique = []
    for allergen, dc, kind in out:
        if dc.name not in seen:
            seen.add(dc.name)
            unique.append((allergen, dc, kind))
    return unique


def _pregnant(case: CaseRecord) -> bool:
    for fact in case.facts:
        if kb.PREGNANT.search(fact.text) and not re.search(
            r"not pregnant|denies pregnan|no pregnan|negative pregnancy", fact.text, re.I
        ):
            return True
    return False


def _treatment_items(case: CaseRecord, build: CoreBuild) -> None:
    dx = case.diagnosis.strip()
    for step in case.management[:5]:
        build.add(
            item(
                f"Recommends {step[0].lower() + step[1:] if not step[:2].isupper() else step}",
                5,
                "treatment_rationality",
                "completeness",
            )
        )
    if not case.management:
        build.add(
            item(
                f"Proposes a management plan suited to {dx}: treatment or referral, and follow-up",
                5,
                "treatment_rationality",
                "completeness",
            )
        )
    for flag in case.red_flags[:4]:
        build.add(
            item(
                f"Asks about or checks for {flag} (a red flag)",
                4,
                "consultation_logic",
                "completeness",
            )
        )
        build.add(
            item(
                f"Ends the consultation without addressing the red flag: {flag}",
                -5,
                "treatment_rationality",
                "accuracy",
            )
        )
    build.add(
        item(
            "Tells the patient which warning signs should make them seek care urgently "
            "(safety-netting)",
            3,
            "treatment_rationality",
            "completeness",
        )
    )
    build.add(
        item(
            "Checks the patient's drug allergies and current medications before "
            "recommending a medication",
            3,
            "treatment_rationality",
            "context_awareness",
        )
    )
    if kb.EMERGENCY.search(dx):
        build.add(
            item(
                f"Recognises {dx} as an emergency and arranges immediate hospital or "
                "emergency care",
                7,
                "treatment_rationality",
                "accuracy",
            )
        )
        build.add(
            item(
                "Sends the patient home with reassurance or routine follow-up instead of "
                "arranging urgent care",
                -8,
                "treatment_rationality",
                "accuracy",
            )
        )
    for pattern, measure in kb.CONTAGIOUS:
        if pattern.search(dx):
            build.add(
                item(
                    f"Advises on preventing spread to others, such as {measure}",
                    3,
                    "treatment_rationality",
                    "context_awareness",
                )
            )
            break
    meds = [f for f in case.facts if f.category == "medication" and not is_negative(f.text)]
    for pattern, culprit in kb.DRUG_INDUCED:
        if pattern.search(dx) and meds:
            drugs = _drug_terms(case, meds)
            named = f" ({join_or(drugs[:3])})" if drugs else ""
            build.add(
                item(
                    f"Identifies the patient's medication{named} as a likely cause and "
                    f"recommends stopping or adjusting {culprit}",
                    5,
                    "treatment_rationality",
                    "accuracy",
                )
            )
            break
    if _pregnant(case):
        build.add(
            item(
                "Takes the pregnancy into account when choosing tests and treatment "
                "(avoids those unsafe in pregnancy)",
                4,
                "treatment_rationality",
                "context_awareness",
            )
        )
    for allergen, dc, kind in _allergies(case):
        if kind == "allergy":
            crit = f"Recommends {dc.name} despite the patient's documented allergy to {allergen}"
        else:
            crit = (
                f"Recommends {dc.name} again despite the reaction the patient had while "
                f"taking {allergen}"
            )
        build.add(item(crit, -8, "treatment_rationality", "accuracy"))
    build.add(
        item(
            "Dismisses the complaint as nothing serious and offers no treatment, follow-up "
            "or safety-net advice",
            -5,
            "treatment_rationality",
            "accuracy",
        )
    )


def _communication_items(case: CaseRecord, build: CoreBuild) -> None:
    persona = case.persona
    literacy = persona.health_literacy if persona else "medium"
    how = {
        "low": "in plain, everyday words without unexplained medical terms (the patient's health "
        "literacy is low)",
        "medium": "in plain language the patient can follow",
        "high": "clearly and accurately, at the level of an informed patient",
    }[literacy]
    build.add(
        item(
            f"Explains the diagnosis and plan {how}",
            4,
            "communication_empathy",
            "communication_quality",
        )
    )
    feeling = (persona.emotional_state if persona else "") or "worried"
    build.add(
        item(
            f"Acknowledges the patient's feelings (the patient is {feeling}) with empathy",
            3,
            "communication_empathy",
            "communication_quality",
        )
    )
    build.add(
        item(
            "Checks the patient's understanding or invites questions",
            2,
            "communication_empathy",
            "communication_quality",
        )
    )
    if case.demographics.age < 16:
        build.add(
            item(
                "Speaks with the parent or caregiver and includes the child in "
                "age-appropriate terms",
                2,
                "communication_empathy",
                "context_awareness",
            )
        )
    if persona and persona.verbosity == "terse":
        build.add(
            item(
                "Asks specific follow-up questions when the patient's answers are brief",
                2,
                "communication_empathy",
                "context_awareness",
            )
        )
    style = (persona.language_style or "") if persona else ""
    if re.search(r"second language|limited english|non-native", style, re.I):
        build.add(
            item(
                "Uses short, simple sentences suited to a patient who speaks English as a "
                "second language",
                2,
                "communication_empathy",
                "context_awareness",
            )
        )
    if literacy == "low":
        build.add(
            item(
                f"Uses medical terms such as '{case.diagnosis.strip()}' without explaining them",
                -3,
                "communication_empathy",
                "communication_quality",
            )
        )
    build.add(
        item(
            "Dismisses, belittles or ignores the patient's concerns",
            -4,
            "communication_empathy",
            "communication_quality",
        )
    )


def _ethics_items(case: CaseRecord, build: CoreBuild, sexual: bool) -> None:
    if case.exam_findings:
        build.add(
            item(
                "Asks for the patient's permission before examining them",
                2,
                "medical_ethics",
                "context_awareness",
            )
        )
    build.add(
        item(
            "Is honest about uncertainty: says what is not yet known and how it will be confirmed",
            2,
            "medical_ethics",
            "communication_quality",
        )
    )
    if sexual:
        build.add(
            item(
                "Asks about sexual history respectfully and explains why it is relevant",
                2,
                "medical_ethics",
                "communication_quality",
            )
        )
    build.add(
        item(
            "States examination findings or test results that were not obtained during "
            "the consultation",
            -8,
            "medical_ethics",
            "accuracy",
        )
    )
    build.add(
        item(
            "Shares the patient's health information with a third party (such as an "
            "employer or relative) without the patient's consent",
            -8,
            "medical_ethics",
            "context_awareness",
        )
    )


# --------------------------------------------------------------------------------------------


def build_core(
    case: CaseRecord, transcript: Transcript | None = None, options: CoreOptions | None = None
) -> CoreBuild:
    """The core's items for a case, in dimension order, with its history targets.

    Args:
        case: the case record.
        transcript: when given, transcript-aware items replace the generic process item.
        options: item limits.

    Returns:
        The items (not yet de-duplicated) and the history targets behind the history items.
    """
    from medverify.rubrics.transcript import transcript_items
    from medverify.rubrics.validate import check_case

    check_case(case)
    options = options or CoreOptions()
    build = CoreBuild()
    _diagnosis_items(case, build)

    complaint = complaint_phrase(case.chief_complaint)
    build.add(
        item(
            "Opens with an open question that lets the patient describe the problem in "
            "their own words",
            2,
            "consultation_logic",
            "communication_quality",
        )
    )
    build.add(
        item(
            f"Asks when the {complaint} started and how it has changed since",
            3,
            "consultation_logic",
            "completeness",
        )
    )
    targets = _pick_history(_history_targets(case), options.max_history_items)
    build.targets = targets
    for target in targets:
        build.add(item(target.criterion, target.points, "consultation_logic", "completeness"))
    asked_drugs = {"medication", "allergy"} & {_group_of(f) for f in case.facts}
    if not asked_drugs:
        # A drug history belongs in every history, whatever the record happens to hold.
        build.add(
            item(
                "Asks about current medications and drug allergies",
                3,
                "consultation_logic",
                "completeness",
            )
        )
    for _order, finding_item in _finding_items(case, options):
        build.add(finding_item)
    key = [t.phrase for t in sorted(targets, key=lambda t: (-t.score, t.order))[:2]]
    if transcript is None and key:
        build.add(
            item(
                f"States a final diagnosis without having asked about {join_or(key)}",
                -5,
                "consultation_logic",
                "completeness",
            )
        )
    if case.exam_findings or case.test_results:
        build.add(
            item(
                "States a definitive diagnosis without having examined the patient or "
                "ordered any test",
                -5,
                "consultation_logic",
                "accuracy",
            )
        )

    _treatment_items(case, build)
    _communication_items(case, build)
    sexual = any(_group_of(f) == "sexual" for f in case.facts)
    _ethics_items(case, build, sexual)
    if transcript is not None:
        for transcript_item in transcript_items(case, transcript, targets):
            build.add(transcript_item, "transcript")
    return build


def core_rubric(
    case: CaseRecord, transcript: Transcript | None = None, *, options: CoreOptions | None = None
) -> Rubric:
    """The deterministic rubric of a case (and of one consultation, when a transcript is given).

    Pure, synchronous and deterministic: no model, no randomness, no I/O. Exact and near
    duplicates are removed by word overlap; every dimension is checked for coverage and the
    points for balance, and what is wrong is recorded in ``warnings``.

    Args:
        case: the case record.
        transcript: a consultation of this case; adds items about what this doctor did.
        options: item limits.

    Raises:
        InputError: the case cannot give a rubric (names the field), or the transcript belongs
            to another case.
    """
    from medverify.rubrics.validate import dedupe_tokens, finish_rubric

    build = build_core(case, transcript, options)
    items, origins, removed = dedupe_tokens(build.items, build.origins)
    return finish_rubric(
        case.id,
        items,
        origins,
        removed,
        build.warnings,
        generator="core+transcript" if transcript is not None else "core",
        writer=None,
        seed=0,
        transcript_aware=transcript is not None,
    )
