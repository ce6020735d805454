"""Personas: reproducible by seed, diverse, presets and precedence."""

from __future__ import annotations

import pytest

from medverify.cases.personas import (
    CAREGIVER_BACKGROUNDS,
    NEUTRAL_BACKGROUNDS,
    PERSONA_PRESETS,
    YOUTH_BACKGROUNDS,
    persona_for,
    sample_persona,
    seed_for,
    with_seeded_persona,
)
from medverify.cases.records import CaseRecord, Demographics, Fact, Persona
from medverify.errors import ConfigError


def _case(age: int = 40, persona: Persona | None = None) -> CaseRecord:
    return CaseRecord(
        id="c1",
        demographics=Demographics(age=age, sex="female"),
        chief_complaint="I've come in because of a cough.",
        facts=[Fact(id="f1", category="symptom", text="Cough for 2 weeks.")],
        diagnosis="Asthma",
        persona=persona,
        source="test",
    )


def test_same_seed_same_persona() -> None:
    assert sample_persona(7) == sample_persona(7)
    assert sample_persona(7, age=80) == sample_persona(7, age=80)


def test_personas_are_diverse() -> None:
    personas = [sample_persona(seed) for seed in range(200)]
    assert len({p.personality for p in personas}) >= 10
    assert len({p.mbti for p in personas}) >= 12
    assert {p.health_literacy for p in personas} == {"low", "medium", "high"}
    assert {p.verbosity for p in personas} == {"terse", "normal", "talkative"}
    assert len({p.emotional_state for p in personas}) >= 8
    assert len({p.social_background for p in personas}) >= 10
    assert len({p.language_style for p in personas}) >= 6
    patience = {p.patience for p in personas}
    assert None in patience
    assert all(p is None or 3 <= p <= 8 for p in patience)
    assert len(patience) >= 4


def test_background_fits_the_age() -> None:
    assert sample_persona(3, age=5).social_background in CAREGIVER_BACKGROUNDS
    assert sample_persona(3, age=15).social_background in YOUTH_BACKGROUNDS


def test_presets() -> None:
    assert {"anxious", "terse", "talkative", "low-literacy", "impatient"} <= set(PERSONA_PRESETS)
    assert PERSONA_PRESETS["terse"].verbosity == "terse"
    assert PERSONA_PRESETS["talkative"].verbosity == "talkative"
    assert PERSONA_PRESETS["low-literacy"].health_literacy == "low"
    assert PERSONA_PRESETS["impatient"].patience is not None


def test_persona_for_precedence() -> None:
    own = Persona(personality="the case's own")
    case = _case(persona=own)
    assert persona_for(case, seed=1, preset="terse") == PERSONA_PRESETS["terse"]
    assert persona_for(case, seed=1) == sample_persona(1, age=40)
    assert persona_for(case) == own
    assert persona_for(_case()) == Persona()
    with pytest.raises(ConfigError, match="unknown persona preset"):
        persona_for(case, preset="grumpy")


def test_preset_copies_are_independent() -> None:
    persona = persona_for(_case(), preset="anxious")
    persona.patience = 99
    assert PERSONA_PRESETS["anxious"].patience is None


def test_seeded_persona_from_case_id_is_stable() -> None:
    assert seed_for("c1") == seed_for("c1") != seed_for("c2")
    assert with_seeded_persona(_case()).persona == with_seeded_persona(_case()).persona
    assert with_seeded_persona(_case()).persona == sample_persona(seed_for("c1"), age=40)


def test_cases_with_a_social_history_get_a_neutral_background() -> None:
    case = _case()
    case.facts.append(Fact(id="f2", category="social", text="Works as a graphic designer."))
    backgrounds = {persona_for(case, seed=s).social_background for s in range(40)}
    assert backgrounds <= set(NEUTRAL_BACKGROUNDS)
    assert with_seeded_persona(case).persona.social_background in NEUTRAL_BACKGROUNDS
