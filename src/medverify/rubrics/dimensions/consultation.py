"""Consultation logic: the history, examinations and tests a clinician would not skip.

This is the largest dimension and the one that tells a careful doctor from a guesser. From the
record it writes the history a clinician must take (the record's facts that matter most, grouped
the way a doctor asks: "current medications", "family history", one item per key symptom,
pertinent negatives at lower weight), the examinations and tests that produce the record's
findings (vital signs as one item, other examinations by body system, tests by panel, abnormal
findings first), and the process faults: a diagnosis stated before the key questions, or before
any examination or test. The history targets it chooses are kept on the build, because the
transcript items ask which of them a consultation never reached.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from medverify.cases.keywords import specific_keywords
from medverify.cases.records import HISTORY_CATEGORIES, CaseRecord, Fact, Transcript
from medverify.grading.evidence import ConcludedBeforeCheck, RevealedCheck
from medverify.grading.records import RubricItem
from medverify.rubrics import knowledge as kb
from medverify.rubrics.dimensions.shared import (
    SOCIAL_GROUPS,
    CoreBuild,
    CoreOptions,
    HistoryTarget,
    drug_terms,
    group_of,
    is_abnormal,
)
from medverify.rubrics.phrasing import (
    complaint_phrase,
    finding_label,
    is_negative,
    is_uninformative,
    join_or,
    short_finding,
    topic_of,
)
from medverify.rubrics.records import item
from medverify.text import lexicon as lx
from medverify.text.matching import contains_term

# --------------------------------------------------------------------------------------------
# history


#: Facts that are the visit's setting or an observation, not something a doctor asks about.
_NOT_ASKED = re.compile(
    r"\b(?:presents? (?:to|with)|presenting (?:to|with)|is brought|was brought|brought (?:him|her|"
    r"them|the child|in|to)|comes to (?:the|his|her)|came to (?:the|his|her)|here for|"
    r"(?:appears?|appeared|looks?|seemed) (?:\w+ )?(?:anxious|weak|lethargic|toxic|unwell|ill|"
    r"distressed|unable|pale|tired|uncomfortable|in (?:acute )?distress)|is present|are present|"
    r"observed|on examination)\b|^\s*(?:an? )?\d+[- ](?:year|month|week|day)[- ]old\b",
    re.IGNORECASE,
)
_PARTICIPLE = re.compile(
    r"^(?:involved|treated|diagnosed|admitted|released|hospitali[sz]ed|seen|prescribed|"
    r"started on|exposed|bitten|injured|vaccinated|born|medicated)\b",
    re.IGNORECASE,
)
_VERB_FIRST = re.compile(
    r"^(?:used to|has|had|have|gets|got|lost|gained|feels|felt|experienced|experiences|reports|"
    r"notes|denies|smokes|drinks|takes|took|works|lives|lived|attends|scratches|worries|"
    r"developed|became|started|began|noticed|faced|finds|wakes|needs|to)\b",
    re.IGNORECASE,
)
_FINITE = re.compile(
    r"\b(?:is|are|was|were|has|have|had|gets|got|used to|resolves|resolved|lasts|occurs?|"
    r"started|starts|began|begins|developed|became|becomes|presents|reports|notes|states|feels|"
    r"felt|worries|scratches|attends|appears|seemed|noticed|struggled|includes|needs|finds|"
    r"continued|changed|happens?|comes|went|lives|lived|works|smokes|drinks|takes|took|lost)\b",
    re.IGNORECASE,
)


def asked_about(phrase: str) -> str:
    """``about <noun phrase>``, or ``whether <clause>`` when the record's words are a clause.

    "Asks about pain resolves on its own" reads as a finding turned into a question; "Asks
    whether the pain resolves on its own" is what a doctor asks.
    """
    if not phrase:
        return phrase
    if _PARTICIPLE.match(phrase):
        return f"whether the patient was {phrase}"
    if _VERB_FIRST.match(phrase):
        clause = re.sub(r"^to\s+", "", phrase, flags=re.IGNORECASE)
        return f"whether the patient {'has to ' if clause != phrase else ''}{clause}"
    if _FINITE.search(phrase):
        return f"whether {phrase}"
    return f"about {phrase}"


def _history_targets(case: CaseRecord) -> list[HistoryTarget]:
    """Every history item the record supports: one per key single fact, one per question group."""
    cc = [case.chief_complaint]
    history = [f for f in case.facts if f.category in HISTORY_CATEGORIES]
    specific = specific_keywords(case)
    groups: dict[str, list[Fact]] = {}
    singles: list[Fact] = []
    for fact in history:
        name = group_of(fact)
        if name is None:
            singles.append(fact)
        else:
            groups.setdefault(name, []).append(fact)
    order = {f.id: i for i, f in enumerate(case.facts)}
    targets: list[HistoryTarget] = []

    for fact in singles:
        if is_uninformative(fact.text) or _NOT_ASKED.search(fact.text):
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
        short = asked_about(topic_of(fact.text, cc, max_clauses=1))
        targets.append(
            HistoryTarget(
                short,
                f"Asks {asked_about(phrase)}{suffix}",
                points,
                [fact.id],
                score,
                order[fact.id],
            )
        )

    for name, facts in groups.items():
        ids = [f.id for f in facts]
        first = min(order[i] for i in ids)
        informative = [
            f
            for f in facts
            if not is_uninformative(f.text)
            and not _NOT_ASKED.search(f.text)
            and not (is_negative(f.text) and f.category != "allergy")
        ]
        examples = "; ".join(
            p for p in (topic_of(f.text, cc, max_clauses=2) for f in informative[:2]) if p
        )
        if name == "medication":
            drugs = drug_terms(case, facts)
            phrase = "about current medications"
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
                    "about drug allergies",
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
                HistoryTarget(
                    "about family history", crit, 2 if not examples else 3, ids, 2.5, first
                )
            )
        elif name == "pmh":
            crit = "Asks about past medical history" + (f", such as {examples}" if examples else "")
            targets.append(
                HistoryTarget(
                    "about past medical history",
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
                HistoryTarget("about menstrual and obstetric history", crit, 4, ids, 4.0, first)
            )
        elif name == "vaccination":
            targets.append(
                HistoryTarget(
                    "about immunization status",
                    "Asks about the patient's immunization status",
                    3,
                    ids,
                    3.0,
                    first,
                )
            )
        else:
            spec = next((g for g in SOCIAL_GROUPS if g[0] == name), None)
            base, points = (
                (spec[2], spec[3]) if spec else ("Asks about the patient's social history", 2)
            )
            crit = base + (f", such as {examples}" if examples else "")
            phrase = "about " + re.sub(r"^(?:Asks about|Takes) (?:the patient's )?", "", base)
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


def _finding_items(
    case: CaseRecord, options: CoreOptions
) -> list[tuple[int, RubricItem, list[str]]]:
    """(record order, item, finding ids) for the examinations and tests behind the findings."""
    out: list[tuple[int, RubricItem, list[str]]] = []
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
    exam: list[tuple[float, int, RubricItem, list[str]]] = []
    for name, facts in systems.items():
        abnormal = [f for f in facts if is_abnormal(f)]
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
            (
                points,
                order[facts[0].id],
                item(crit, points, "consultation_logic", "completeness"),
                [f.id for f in facts],
            )
        )
    exam.sort(key=lambda e: (-e[0], e[1]))
    if vitals:
        points = 3 if any(is_abnormal(f) for f in vitals) else 2
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
            (
                points,
                order[vitals[0].id],
                item(crit, points, "consultation_logic", "completeness"),
                [f.id for f in vitals],
            ),
        )
    out += [(o, i, ids) for _p, o, i, ids in exam[: options.max_exam_items]]

    tests: dict[str, list[Fact]] = {}
    for fact in case.test_results:
        label = finding_label(fact.text)
        found = _item_for(fact, lx.TEST_ITEMS)
        key = found.name if found else (label or short_finding(fact.text, limit=40)).lower()
        tests.setdefault(key, []).append(fact)
    ranked: list[tuple[int, int, RubricItem, list[str]]] = []
    for name, facts in tests.items():
        abnormal = [f for f in facts if is_abnormal(f)]
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
            (
                points,
                order[facts[0].id],
                item(crit, points, "consultation_logic", "completeness"),
                [f.id for f in facts],
            )
        )
    ranked.sort(key=lambda r: (-r[0], r[1]))
    out += [(o, i, ids) for _p, o, i, ids in ranked[: options.max_test_items]]
    return out


# --------------------------------------------------------------------------------------------
# the dimension


def consultation_items(
    case: CaseRecord, build: CoreBuild, options: CoreOptions, transcript: Transcript | None
) -> None:
    """Add the consultation-logic items and record the history targets on ``build``.

    Args:
        case: the case record.
        build: the build to add to; its ``targets`` become the chosen history targets.
        options: item limits.
        transcript: when given, the generic "diagnosis before the key questions" item is left
            out (the transcript items say which questions this consultation missed).
    """
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
        build.add(
            item(target.criterion, target.points, "consultation_logic", "completeness"),
            check=RevealedCheck(fact_ids=target.fact_ids) if target.fact_ids else None,
        )
    asked_drugs = {"medication", "allergy"} & {group_of(f) for f in case.facts}
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
    for _order, finding_item, finding_ids in _finding_items(case, options):
        build.add(finding_item, check=RevealedCheck(fact_ids=finding_ids))
    key_targets = sorted(targets, key=lambda t: (-t.score, t.order))[:2]
    key = [t.phrase for t in key_targets]
    if transcript is None and key:
        groups = [t.fact_ids for t in key_targets if t.fact_ids]
        build.add(
            item(
                f"States a final diagnosis without having asked {join_or(key)}",
                -5,
                "consultation_logic",
                "completeness",
            ),
            # "without having asked about A or B": about neither of them
            check=ConcludedBeforeCheck(groups=groups, min_missed=len(groups)) if groups else None,
        )
    if case.exam_findings or case.test_results:
        build.add(
            item(
                "States a definitive diagnosis without having examined the patient or "
                "ordered any test",
                -5,
                "consultation_logic",
                "accuracy",
            ),
            check=ConcludedBeforeCheck(),
        )
