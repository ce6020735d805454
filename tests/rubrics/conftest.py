"""Shared fixtures for the rubric generator's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from medverify.cases.loading import load_bundled_cases, load_case
from medverify.cases.records import CaseRecord, Persona, Transcript, Turn

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def bundled() -> list[CaseRecord]:
    return load_bundled_cases()


@pytest.fixture(scope="session")
def mg_case(bundled: list[CaseRecord]) -> CaseRecord:
    return next(c for c in bundled if c.id == "agentclinic-medqa-001")


@pytest.fixture(scope="session")
def allergy_case() -> CaseRecord:
    return load_case(FIXTURES / "penicillin_allergy.json")


def transcript_of(case: CaseRecord, turns: list[tuple[str, str, list[str]]], **kw) -> Transcript:
    """A transcript from (role, text, revealed ids) triples."""
    return Transcript(
        case_id=case.id,
        persona=case.persona or Persona(),
        turns=[Turn(role=r, text=t, revealed_fact_ids=ids) for r, t, ids in turns],
        **kw,
    )
