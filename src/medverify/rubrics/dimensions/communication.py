"""Communication and empathy: explaining at the patient's level, acknowledging how they feel.

The items follow the simulated patient's persona: plain everyday words for low health literacy
(and a penalty for unexplained medical terms), the persona's emotional state named in the
empathy item, follow-up questions for a terse patient, simple sentences for a patient speaking
English as a second language, and the parent or caregiver for a child. Checking understanding is
asked of every consultation; dismissing the patient's concerns is penalised.
"""

from __future__ import annotations

import re

from medverify.cases.records import CaseRecord
from medverify.rubrics.dimensions.shared import CoreBuild, cannot_converse
from medverify.rubrics.records import item


def communication_items(case: CaseRecord, build: CoreBuild) -> None:
    """Add the communication-and-empathy items to ``build``, fitted to the persona.

    Args:
        case: the case record; without a persona, medium literacy and a worried patient.
        build: the build to add to.
    """
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
    # A patient who cannot talk voices no feelings and has no understanding to check.
    if not cannot_converse(case):
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
