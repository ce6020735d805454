"""Choosing the shipped round on training cases no round drew, never on a held-out case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medverify.demo import DEMO_MAX_TOKENS, DEMO_TURNS
from medverify.errors import ConfigError
from medverify.train.config import load_config
from medverify.train.expert_iteration import round_cases
from medverify.train.export import export_doctor
from medverify.train.round_validation import (
    VALIDATION_MAX_TOKENS,
    VALIDATION_TURNS,
    PolicyValidation,
    RoundValidation,
    validate_rounds,
    validation_cases,
)

ROOT = Path(__file__).parents[2]
RECIPE = ROOT / "configs" / "train" / "doctor_cpu.yaml"


@pytest.fixture
def stage(monkeypatch):
    monkeypatch.chdir(ROOT)  # the recipe names its case file from the root
    return load_config(RECIPE).stages[0]


def test_validation_cases_are_training_cases_no_round_drew(stage):
    from medverify.train.data import load_case_set

    cases = load_case_set(stage.data.source)
    ei = stage.ei
    drawn = {
        c.id
        for r in range(ei.rounds)
        for c in round_cases(cases, ei.cases_per_round, r, stage.train.seed)
    }
    chosen = validation_cases(stage, 12)
    assert len(chosen) == 12 and len({c.id for c in chosen}) == 12
    assert not {c.id for c in chosen} & drawn
    assert {c.id for c in chosen} <= {c.id for c in cases}
    assert [c.id for c in validation_cases(stage, 12)] == [c.id for c in chosen]  # stable


def test_no_case_left_to_validate_on_is_one_clear_error(stage):
    greedy = stage.model_copy(update={"ei": stage.ei.model_copy(update={"rounds": 50})})
    with pytest.raises(ConfigError, match="none is left to validate on"):
        validation_cases(greedy, 4)


def test_validation_plays_as_the_demo_and_the_benchmark_do():
    assert (VALIDATION_TURNS, VALIDATION_MAX_TOKENS) == (DEMO_TURNS, DEMO_MAX_TOKENS)


def _rounds(stage_dir: Path, n: int) -> None:
    for r in range(n):
        adapter = stage_dir / "rounds" / str(r) / "adapter"
        adapter.mkdir(parents=True)
        (adapter / "adapter_config.json").write_text('{"r": 8}')
        (adapter / "adapter_model.safetensors").write_bytes(f"round {r}".encode())


class _Played:
    """What run_consult_job returns, for a doctor whose every case scores ``score``."""

    def __init__(self, job, score):
        from types import SimpleNamespace

        self.examples = [SimpleNamespace(prompt_id=c.id, score=score) for c in job.cases]
        case = SimpleNamespace(stated_diagnosis="Migraine", facts_elicited=1, facts_total=4)
        self.results = SimpleNamespace(cases=[case for _ in job.cases])


async def test_every_adapter_plays_the_same_cases_and_the_best_is_chosen(
    stage, tmp_path, monkeypatch
):
    stage = stage.model_copy(update={"ei": stage.ei.model_copy(update={"rounds": 4})})
    _rounds(tmp_path, stage.ei.rounds)
    by_doctor = {"local": 0.05}
    by_doctor |= {
        f"local:doctor:{tmp_path / 'rounds' / str(r) / 'adapter'}": s
        for r, s in enumerate([0.02, 0.09, 0.09, 0.04])
    }
    played = []

    async def fake(job):
        played.append((job.doctor, [c.id for c in job.cases], job.max_turns, job.run_dir))
        return _Played(job, by_doctor[job.doctor])

    monkeypatch.setattr("medverify.train.round_validation.run_consult_job", fake)
    result = await validate_rounds(stage, tmp_path, n_cases=3, work_dir=tmp_path / "v")
    assert {d for d, *_ in played} == set(by_doctor)
    assert len({tuple(ids) for _, ids, *_ in played}) == 1  # the same cases for everyone
    assert {t for *_, t, _ in played} == {DEMO_TURNS}
    assert len({d for *_, d in played}) == len(by_doctor)  # one run dir per policy
    assert result.chosen == 2  # ties go to the later round
    assert result.policies["base"].mean_score == pytest.approx(0.05)
    assert result.policies["1"].diagnosis_named == 1.0
    assert result.policies["1"].facts_elicited == pytest.approx(0.25)
    # what is recorded beside the shipped adapter names no place on this machine
    assert result.policies["1"].doctor == "local:doctor:<stage-dir>/rounds/1/adapter"
    assert str(tmp_path) not in result.model_dump_json()


async def test_an_unscored_consultation_stops_the_choice(stage, tmp_path, monkeypatch):
    _rounds(tmp_path, stage.ei.rounds)

    async def fake(job):
        return _Played(job, None)

    monkeypatch.setattr("medverify.train.round_validation.run_consult_job", fake)
    with pytest.raises(ConfigError, match="not scored"):
        await validate_rounds(stage, tmp_path, n_cases=2, work_dir=tmp_path / "v")


async def test_a_missing_rounds_adapter_is_one_clear_error(stage, tmp_path):
    stage = stage.model_copy(update={"ei": stage.ei.model_copy(update={"rounds": 4})})
    _rounds(tmp_path, 2)  # rounds 2 and 3 never finished
    with pytest.raises(ConfigError, match="round 2 has no finished adapter"):
        await validate_rounds(stage, tmp_path, n_cases=2, work_dir=tmp_path / "v")


def test_export_ships_the_validated_round_and_records_why(stage, tmp_path):
    run = tmp_path / "run"
    stage_dir = run / "stages" / "doctor"
    _rounds(stage_dir, 4)
    (stage_dir / "rounds.json").write_text(
        json.dumps([{"round": r, "mean_reward": 0.1 * (4 - r)} for r in range(4)])
    )
    policy = PolicyValidation(doctor="x", mean_score=0.1, diagnosis_named=0.5, facts_elicited=0.2)
    validation = RoundValidation(
        case_ids=["a", "b"],
        settings={"turns": 6, "doctor_max_tokens": 96},
        policies={"base": policy, "1": policy},
        chosen=1,
    )
    out = export_doctor(
        load_config(RECIPE), RECIPE, run, out=tmp_path / "ship", validation=validation
    )
    assert (out / "adapter_model.safetensors").read_bytes() == b"round 1"
    record = json.loads((out / "doctor.json").read_text())
    assert record["adapter_of_round"] == 1 and "validation cases" in record["adapter_chosen_by"]
    assert record["validation"]["case_ids"] == ["a", "b"]
