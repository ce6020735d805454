"""Diagnostic accuracy: the final diagnosis named, a differential considered, findings cited.

The right diagnosis is the largest single item of the rubric (10 points), and ending without it
is penalised, naming the record's own differential as examples: a different final diagnosis, or
none at all when the consultation asked for one. Charging only a wrong diagnosis made silence
pay: a doctor too weak to be right scored best by never naming a condition, and the trained
doctor learned exactly that. Two smaller items ask
for a differential before settling and for the reasoning tied to the record's plainly abnormal
findings, so that a correct guess without reasoning scores below a reasoned diagnosis.
"""

from __future__ import annotations

import re

from medverify.cases.records import CaseRecord
from medverify.grading.evidence import DiagnosisCheck
from medverify.rubrics.dimensions.shared import ABNORMAL, CoreBuild, is_abnormal, vital_value
from medverify.rubrics.phrasing import finding_name, join_or
from medverify.rubrics.records import item


def diagnostic_items(case: CaseRecord, build: CoreBuild) -> None:
    """Add the diagnostic-accuracy items to ``build``.

    Args:
        case: the case record.
        build: the build to add to.
    """
    dx = case.diagnosis.strip()
    build.add(
        item(
            f"States {dx} as the final diagnosis (or an equivalent name for it)",
            10,
            "diagnostic_accuracy",
            "accuracy",
        ),
        check=DiagnosisCheck(expect="final"),
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
            ),
            check=DiagnosisCheck(expect="alternatives"),
        )
    else:
        build.add(
            item(
                "Mentions at least one alternative diagnosis considered before settling on "
                "the final one",
                2,
                "diagnostic_accuracy",
                "completeness",
            ),
            check=DiagnosisCheck(expect="alternatives"),
        )
    abnormal = [  # findings that say plainly what is abnormal, vital signs aside
        f
        for f in case.exam_findings + case.test_results
        if is_abnormal(f)
        and vital_value(f.text) is None
        and ABNORMAL.search(f.text)
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
            f"Ends without {dx} as the final diagnosis: gives another one{wrong}, or none when "
            "asked to conclude",
            -6,
            "diagnostic_accuracy",
            "accuracy",
        ),
        check=DiagnosisCheck(expect="missed_final"),
    )
