"""Exporting a trained doctor: the adapter travels with how it was made, or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medverify.errors import ConfigError
from medverify.train.config import load_config
from medverify.train.export import export_doctor

RECIPE = Path(__file__).parents[2] / "configs" / "train" / "doctor_cpu.yaml"


def _finished_run(tmp_path: Path, weights: bytes = b"w" * 1000) -> Path:
    stage = tmp_path / "run" / "stages" / "doctor"
    adapter = stage / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    (adapter / "adapter_model.safetensors").write_bytes(weights)
    rounds = [{"round": 0, "mean_reward": 0.1, "sample_seconds": 10.0, "train_seconds": 2.0}]
    (stage / "rounds.json").write_text(json.dumps(rounds))
    return tmp_path / "run"


def test_the_adapter_ships_with_its_recipe_cases_rounds_and_scores(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])  # the recipe names its case file from the root
    run = _finished_run(tmp_path)
    out = export_doctor(
        load_config(RECIPE), RECIPE, run, out=tmp_path / "ship", heldout={"all": {"n": 1}}
    )
    record = json.loads((out / "doctor.json").read_text())
    assert (out / "adapter_model.safetensors").read_bytes() == b"w" * 1000
    assert record["config"]["stages"][0]["kind"] == "expert_iteration"
    assert record["training_cases"]["n"] == 116
    assert record["rounds"][0]["mean_reward"] == 0.1 and record["total_seconds"] == 12.0
    assert record["heldout_benchmark"] == {"all": {"n": 1}}


def test_no_finished_adapter_no_export(tmp_path):
    with pytest.raises(ConfigError, match="no finished adapter"):
        export_doctor(load_config(RECIPE), RECIPE, tmp_path, out=tmp_path / "ship")


def test_an_adapter_too_big_for_the_wheel_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    monkeypatch.setattr("medverify.train.export.MAX_ADAPTER_MB", 0.0005)
    run = _finished_run(tmp_path)
    with pytest.raises(ConfigError, match="over the"):
        export_doctor(load_config(RECIPE), RECIPE, run, out=tmp_path / "ship")
    assert not (tmp_path / "ship").exists()


@pytest.mark.parametrize(
    ("rewards", "expected"),
    [
        ([0.060, 0.085, 0.082, 0.018], 0),  # this recipe's run: adapter 0 scored best
        ([0.05, 0.06, 0.09], 1),
        ([0.10, 0.02, 0.05], None),  # no adapter beat the base model: the last is all there is
        ([0.10], None),
    ],
)
def test_the_best_round_is_chosen_on_training_rewards_alone(rewards, expected):
    from medverify.train.export import best_round

    assert best_round([{"round": i, "mean_reward": r} for i, r in enumerate(rewards)]) == expected


def test_export_ships_the_best_rounds_adapter_and_says_so(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    run = _finished_run(tmp_path, weights=b"last")
    stage = run / "stages" / "doctor"
    rounds = [{"round": i, "mean_reward": r} for i, r in enumerate([0.06, 0.085, 0.082, 0.02])]
    rounds[2]["commit"] = rounds[3]["commit"] = "abc123"  # rounds 0-1 ran before rounds kept one
    (stage / "rounds.json").write_text(json.dumps(rounds))
    for k in range(3):
        kept = stage / "rounds" / str(k) / "adapter"
        kept.mkdir(parents=True)
        (kept / "adapter_config.json").write_text('{"r": 8}')
        (kept / "adapter_model.safetensors").write_bytes(f"round {k}".encode())
    out = export_doctor(load_config(RECIPE), RECIPE, run, out=tmp_path / "best")
    assert (out / "adapter_model.safetensors").read_bytes() == b"round 0"
    record = json.loads((out / "doctor.json").read_text())
    assert record["adapter_of_round"] == 0 and "no held-out case" in record["adapter_chosen_by"]
    assert record["trained_at"] == ["abc123"]  # the code that trained, besides the exporting one
    last = export_doctor(
        load_config(RECIPE), RECIPE, run, out=tmp_path / "last", round_choice="last"
    )
    assert (last / "adapter_model.safetensors").read_bytes() == b"last"
    with pytest.raises(ConfigError, match="--round"):
        export_doctor(load_config(RECIPE), RECIPE, run, out=tmp_path / "x", round_choice="9")
