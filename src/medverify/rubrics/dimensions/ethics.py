"""Medical ethics: consent, honesty and confidentiality in a consultation.

A few items that hold for any case: consent before examining (when the record has an
examination), honesty about what is not yet known, and respect when taking a sexual history
(when the record has one). Two serious faults are penalised heavily: stating findings or results
that were never obtained (fabrication) and disclosing the patient's health to a third party.
"""

from __future__ import annotations

from medverify.cases.records import CaseRecord
from medverify.rubrics.dimensions.shared import CoreBuild, cannot_converse
from medverify.rubrics.records import item


def ethics_items(case: CaseRecord, build: CoreBuild, sexual: bool) -> None:
    """Add the medical-ethics items to ``build``.

    Args:
        case: the case record.
        build: the build to add to.
        sexual: whether the history includes a sexual history (adds the respect item).
    """
    if case.exam_findings and not cannot_converse(case):
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
