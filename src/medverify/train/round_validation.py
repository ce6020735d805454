"""Choosing which round's adapter to ship, on training cases that no round played.

Expert iteration keeps every round's adapter, and the rounds' own search rewards cannot choose
among them: each round searches *different* cases, with sampling, and the last adapter is never
searched with at all. So each adapter (and the base model, for reference) plays the same
validation cases the way a user runs it -- greedy, through the backend ``local:doctor`` loads --
and the verifier scores them as the held-out benchmark does. The validation cases come from the
training set (the recipe's case file) but were drawn in no round of the run, so they are neither
trained on nor held out: choosing on them never looks at an evaluation case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from medverify.backends.local_doctor import DOCTOR_SPEC
from medverify.backends.registry import BackendOptions
from medverify.cases.closing import names_condition
from medverify.cases.records import CaseRecord
from medverify.consult.pipeline import ConsultJob, ConsultOutcome, run_consult_job
from medverify.errors import ConfigError
from medverify.train.config import StageConfig
from medverify.train.data import load_case_set
from medverify.train.expert_iteration import round_cases

#: The label of the base model among the validated policies.
BASE = "base"
#: Doctor turns and reply tokens, as ``medverify demo`` and the held-out benchmark play them.
VALIDATION_TURNS = 6
VALIDATION_MAX_TOKENS = 96


class PolicyValidation(BaseModel):
    """How one policy did on the validation cases."""

    doctor: str
    mean_score: float
    diagnosis_named: float
    facts_elicited: float


class RoundValidation(BaseModel):
    """Every round's adapter (and the base model) on the same validation cases.

    Attributes:
        case_ids: the validation cases (training cases drawn in no round).
        settings: doctor turns and reply tokens, as the held-out benchmark plays.
        policies: ``base`` and each round number (as a string), with its results.
        chosen: the round whose adapter scored best (ties to the later round).
    """

    case_ids: list[str]
    settings: dict[str, int]
    policies: dict[str, PolicyValidation]
    chosen: int


def validation_cases(stage: StageConfig, n: int) -> list[CaseRecord]:
    """The first ``n`` of the stage's training cases that no round drew (its own order).

    Raises:
        ConfigError: the stage is no expert-iteration stage, or every case was drawn.
    """
    ei = stage.ei
    if ei is None:
        raise ConfigError(f"stage {stage.name}: not an expert_iteration stage")
    cases = load_case_set(stage.data.source)[: stage.data.limit]
    seed = stage.train.seed
    per_round = ei.cases_per_round
    drawn = {c.id for r in range(ei.rounds) for c in round_cases(cases, per_round, r, seed)}
    rest = [c for c in round_cases(cases, len(cases), 0, seed) if c.id not in drawn]
    if not rest:
        raise ConfigError(
            f"stage {stage.name}: every training case was drawn in some round; none is left to "
            "validate on (fewer rounds or cases per round, or more cases)"
        )
    return rest[:n]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _summarise(doctor: str, outcome: ConsultOutcome) -> PolicyValidation:
    scores = [ex.score for ex in outcome.examples]
    if any(s is None for s in scores):
        failed = [ex.prompt_id for ex in outcome.examples if ex.score is None]
        raise ConfigError(f"{doctor}: validation consultations not scored: {failed}")
    cases = outcome.results.cases
    return PolicyValidation(
        doctor=doctor,
        mean_score=_mean([s for s in scores if s is not None]),
        diagnosis_named=_mean([float(names_condition(c.stated_diagnosis)) for c in cases]),
        facts_elicited=_mean(
            [c.facts_elicited / c.facts_total if c.facts_total else 0.0 for c in cases]
        ),
    )


async def validate_rounds(
    stage: StageConfig,
    stage_dir: Path,
    *,
    n_cases: int,
    work_dir: Path,
    turns: int = VALIDATION_TURNS,
    max_tokens: int = VALIDATION_MAX_TOKENS,
    on_policy: Callable[[str], Any] | None = None,
) -> RoundValidation:
    """Play the base model and every round's adapter on the validation cases; choose the best.

    Each policy's consultations persist in ``work_dir/<label>`` (a rerun resumes, and a run
    directory is bound to the adapter's weights, so a retrained round is played anew).

    Raises:
        ConfigError: a round's adapter is missing, or a consultation could not be scored.
    """
    cases = validation_cases(stage, n_cases)
    rounds = stage.ei.rounds if stage.ei is not None else 0
    doctors = {BASE: "local"}
    for r in range(rounds):
        adapter = stage_dir / "rounds" / str(r) / "adapter"
        if r == rounds - 1 and not adapter.is_dir():
            adapter = stage_dir / "adapter"  # the last round's adapter is the stage's own
        if not adapter.is_dir():
            raise ConfigError(f"{adapter}: round {r} has no finished adapter")
        doctors[str(r)] = f"{DOCTOR_SPEC}:{adapter}"
    # recorded beside a shipped adapter: the run's place on this machine means nothing elsewhere
    shown = {
        label: spec.replace(str(stage_dir), "<stage-dir>", 1) for label, spec in doctors.items()
    }
    policies: dict[str, PolicyValidation] = {}
    for label, doctor in doctors.items():
        if on_policy is not None:
            on_policy(label)
        job = ConsultJob(
            cases=cases,
            run_dir=work_dir / label,
            doctor=doctor,
            personas=["case"],
            max_turns=turns,
            doctor_max_tokens=max_tokens,
            concurrency=4,
            doctor_options=BackendOptions(use_cache=False),
        )
        policies[label] = _summarise(shown[label], await run_consult_job(job))
    chosen = max(range(rounds), key=lambda r: (policies[str(r)].mean_score, r))
    return RoundValidation(
        case_ids=[c.id for c in cases],
        settings={"turns": turns, "doctor_max_tokens": max_tokens},
        policies=policies,
        chosen=chosen,
    )
