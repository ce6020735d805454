"""Patient personas: how a simulated patient talks, sampled reproducibly from a seed.

Baichuan-M2's simulator pairs each case with a persona (personality, MBTI letters, health
literacy, verbosity, emotional state, social background, language style, patience) so that a
doctor model meets terse, anxious, talkative and impatient patients, not one polite textbook
voice. A seed gives the same persona every time, so benchmark runs are reproducible; named
presets serve demos and tests. Used by ``medverify simulate``, ``medverify consult-bench`` and
``medverify cases import --personas``.
"""

from __future__ import annotations

import hashlib
import random

from medverify.cases.records import CaseRecord, HealthLiteracy, Persona, Verbosity
from medverify.errors import ConfigError

PERSONALITIES: tuple[str, ...] = (
    "calm and cooperative",
    "warm and chatty, likes to tell stories",
    "reserved and private, answers only what is asked",
    "practical and matter-of-fact",
    "cheerful, tends to play symptoms down",
    "worried and detail-oriented, has read about symptoms online",
    "skeptical of doctors, wants reasons before agreeing",
    "polite and deferential, hesitant to bother the doctor",
    "direct and a little blunt",
    "easily distracted, drifts to unrelated topics",
    "stoic, used to putting up with pain",
    "curious, asks many questions back",
    "organized, brings a written list of concerns",
    "embarrassed about some symptoms and slow to mention them",
)
EMOTIONAL_STATES: tuple[str, ...] = (
    "a little worried",
    "calm",
    "anxious",
    "frightened",
    "frustrated after several visits",
    "tired and low",
    "irritable",
    "embarrassed",
    "hopeful",
    "in obvious discomfort",
    "relieved to finally be seen",
)
ADULT_BACKGROUNDS: tuple[str, ...] = (
    "university student, shares a flat",
    "recent immigrant, speaks English as a second language",
    "office worker with two young children",
    "farmer from a rural area, far from the nearest hospital",
    "nurse on night shifts",
    "small shop owner, works long hours",
    "construction worker, paid by the day",
    "software developer, works from home",
    "single parent working two jobs",
    "warehouse worker on rotating shifts",
    "stay-at-home parent of three",
    "professional cook in a busy restaurant",
    "unemployed, looking for work",
    "delivery driver",
    "graduate student far from family",
)
ELDERLY_BACKGROUNDS: tuple[str, ...] = (
    "retired bus driver, lives alone",
    "retired teacher, lives with a spouse",
    "retired factory worker, cared for by a son",
    "widowed, lives with a daughter's family",
    "retired farmer, still keeps a vegetable garden",
    "lives in a care home, visited by a daughter",
)
YOUTH_BACKGROUNDS: tuple[str, ...] = (
    "high school student, lives with parents",
    "secondary school student who plays team sports",
    "teenager who works a weekend job",
    "student boarding away from home",
)
CAREGIVER_BACKGROUNDS: tuple[str, ...] = (
    "a parent answers for the child; first child, new to this",
    "a parent answers for the child; has older children too",
    "a parent who works shifts answers for the child",
    "a parent, recent immigrant, speaks English as a second language, answers for the child",
    "a parent who has read a lot online answers for the child",
)
# Circumstances that shape how a patient talks without stating a job or a household, for cases
# whose record already has a social history (a sampled "nurse on night shifts" must not
# contradict "Works as a graphic designer").
NEUTRAL_BACKGROUNDS: tuple[str, ...] = (
    "recent immigrant, speaks English as a second language",
    "rarely sees doctors, last check-up years ago",
    "grew up in a small rural town",
    "busy schedule, squeezed this visit in",
    "first visit to this clinic",
    "worried about the cost of tests",
    "has had bad experiences with doctors before",
    "reads health news and likes to understand the details",
    "left school early, prefers simple explanations",
    "very private person, uncomfortable discussing personal matters",
)
LANGUAGE_STYLES: tuple[str, ...] = (
    "plain everyday words",
    "short sentences, no medical terms",
    "uses some medical words picked up online, not always correctly",
    "formal and polite",
    "casual, uses slang",
    "speaks English as a second language, simple grammar",
    "rambling, with many asides",
    "vague about times and amounts",
    "precise about dates and numbers",
)
HEALTH_LITERACY: tuple[HealthLiteracy, ...] = ("low", "medium", "medium", "high")
VERBOSITY: tuple[Verbosity, ...] = ("terse", "normal", "normal", "talkative")
# None: never leaves. A number: unhelpful doctor turns tolerated before leaving.
PATIENCE: tuple[int | None, ...] = (None, None, None, 3, 4, 5, 6, 8)

PERSONA_PRESETS: dict[str, Persona] = {
    "default": Persona(),
    "anxious": Persona(
        personality="worried and detail-oriented, has read about symptoms online",
        mbti="ISFJ",
        health_literacy="medium",
        verbosity="talkative",
        emotional_state="anxious, fears the worst",
        language_style="asks 'is it serious?' often",
        social_background="office worker with two young children",
        patience=None,
    ),
    "terse": Persona(
        personality="reserved and private, answers only what is asked",
        mbti="ISTP",
        health_literacy="medium",
        verbosity="terse",
        emotional_state="calm",
        language_style="short sentences, no medical terms",
        social_background="construction worker, paid by the day",
        patience=None,
    ),
    "talkative": Persona(
        personality="warm and chatty, likes to tell stories",
        mbti="ESFP",
        health_literacy="medium",
        verbosity="talkative",
        emotional_state="a little worried",
        language_style="rambling, with many asides",
        social_background="retired teacher, lives with a spouse",
        patience=None,
    ),
    "low-literacy": Persona(
        personality="polite and deferential, hesitant to bother the doctor",
        mbti="ISFP",
        health_literacy="low",
        verbosity="normal",
        emotional_state="a little worried",
        language_style="plain everyday words, does not know medical terms",
        social_background="recent immigrant, speaks English as a second language",
        patience=None,
    ),
    "impatient": Persona(
        personality="direct and a little blunt",
        mbti="ESTJ",
        health_literacy="high",
        verbosity="terse",
        emotional_state="irritable, in a hurry",
        language_style="casual",
        social_background="small shop owner, works long hours",
        patience=3,
    ),
}


def sample_persona(
    seed: int, *, age: int | None = None, neutral_background: bool = False
) -> Persona:
    """A persona drawn reproducibly from ``seed``.

    Args:
        seed: Any integer; the same seed (and arguments) gives the same persona.
        age: The patient's age, to draw an age-fitting social background (a caregiver answers
            for children under 12).
        neutral_background: Draw a background that states no job or household (for a case
            whose record has its own social history).

    Returns:
        A persona with every field filled except, sometimes, ``patience`` (never leaves).
    """
    rng = random.Random(seed)
    mbti = "".join(rng.choice(pair) for pair in ("EI", "SN", "TF", "JP"))
    return Persona(
        personality=rng.choice(PERSONALITIES),
        mbti=mbti,
        health_literacy=rng.choice(HEALTH_LITERACY),
        verbosity=rng.choice(VERBOSITY),
        emotional_state=rng.choice(EMOTIONAL_STATES),
        language_style=rng.choice(LANGUAGE_STYLES),
        social_background=rng.choice(_backgrounds(age, neutral=neutral_background)),
        patience=rng.choice(PATIENCE),
    )


def _backgrounds(age: int | None, *, neutral: bool = False) -> tuple[str, ...]:
    if age is not None and age < 12:
        return CAREGIVER_BACKGROUNDS
    if neutral:
        return NEUTRAL_BACKGROUNDS
    if age is None:
        return ADULT_BACKGROUNDS
    if age < 18:
        return YOUTH_BACKGROUNDS
    if age >= 65:
        return ELDERLY_BACKGROUNDS
    if age >= 30:  # students are young adults here
        return tuple(b for b in ADULT_BACKGROUNDS if "student" not in b)
    return ADULT_BACKGROUNDS


def _has_social_history(case: CaseRecord) -> bool:
    return case.demographics.occupation is not None or any(
        fact.category == "social" for fact in case.facts
    )


def seed_for(case_id: str) -> int:
    """A stable seed from a case id (the same on every machine and Python version)."""
    return int.from_bytes(hashlib.sha256(case_id.encode("utf-8")).digest()[:8], "big")


def persona_for(case: CaseRecord, seed: int | None = None, preset: str | None = None) -> Persona:
    """The persona to simulate ``case`` with.

    Precedence: a named ``preset``, then a persona sampled from ``seed``, then the case's own
    persona, then the default persona. A sampled persona's social background states no job or
    household when the case has its own social history.

    Raises:
        ConfigError: ``preset`` is not a known preset name.
    """
    if preset is not None:
        if preset not in PERSONA_PRESETS:
            known = ", ".join(sorted(PERSONA_PRESETS))
            raise ConfigError(f"unknown persona preset {preset!r}; known: {known}")
        return PERSONA_PRESETS[preset].model_copy()
    if seed is not None:
        return sample_persona(
            seed, age=case.demographics.age, neutral_background=_has_social_history(case)
        )
    if case.persona is not None:
        return case.persona
    return Persona()


def with_seeded_persona(case: CaseRecord) -> CaseRecord:
    """A copy of ``case`` with a persona sampled from a seed derived from its id."""
    persona = persona_for(case.model_copy(update={"persona": None}), seed=seed_for(case.id))
    return case.model_copy(update={"persona": persona})
