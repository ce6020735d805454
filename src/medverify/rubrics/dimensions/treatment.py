"""Treatment rationality: the management a diagnosis calls for, and the harm to avoid.

When the record has management steps and red flags, the items are those, in the record's words
(each red flag both as something to ask about and as a penalty for ignoring it). The shipped
records have neither, so otherwise the items are only what follows honestly from the
diagnosis's kind (:mod:`medverify.rubrics.knowledge`): an emergency needs urgent care, a
contagious infection needs advice on spread, a drug-induced condition needs its culprit
stopped, a pregnancy constrains tests and drugs, and a documented allergy or drug reaction
forbids its drug class. A plan, safety-netting and a drug-allergy check are asked of every
consultation; dismissing the complaint is penalised.
"""

from __future__ import annotations

import re

from medverify.cases.records import CaseRecord
from medverify.grading.evidence import RedFlagCheck, flag_fact_ids
from medverify.rubrics import knowledge as kb
from medverify.rubrics.dimensions.shared import CoreBuild, drug_terms
from medverify.rubrics.phrasing import is_negative, join_or, topic_of
from medverify.rubrics.records import item


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
    """Whether a fact mentions the patient's pregnancy without denying it."""
    for fact in case.facts:
        if kb.PREGNANT.search(fact.text) and not re.search(
            r"not pregnant|denies pregnan|no pregnan|negative pregnancy", fact.text, re.I
        ):
            return True
    return False


def treatment_items(case: CaseRecord, build: CoreBuild) -> None:
    """Add the treatment-rationality items (and the red flags' history items) to ``build``.

    Args:
        case: the case record.
        build: the build to add to.
    """
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
        facts = flag_fact_ids(case, flag)
        build.add(
            item(
                f"Asks about or checks for {flag} (a red flag)",
                4,
                "consultation_logic",
                "completeness",
            ),
            check=RedFlagCheck(flag=flag, fact_ids=facts),
        )
        build.add(
            item(
                f"Ends the consultation without addressing the red flag: {flag}",
                -5,
                "treatment_rationality",
                "accuracy",
            ),
            check=RedFlagCheck(flag=flag, fact_ids=facts, addressed=False),
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
            drugs = drug_terms(case, meds)
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
