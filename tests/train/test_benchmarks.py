"""The training benchmarks build valid configs on CPU (the GPU one only runs on a GPU)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[2] / "benchmarks"


def _load(name):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_train_gpu_parses_args_and_builds_its_stage(tmp_path, capsys):
    bench = _load("train_gpu")
    args = bench.parse_args(["--out", str(tmp_path / "r.json"), "--steps", "5"])
    stage = bench.build_stage(args)
    assert stage.kind == "grpo" and stage.train.bf16 and stage.train.lora is None
    assert stage.train.max_steps == 5
    bench.main(["--out", str(tmp_path / "r.json"), "--dry-run"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["trl"]["loss_type"] == "dapo" and printed["trl"]["beta"] == 0.0
    assert not (tmp_path / "r.json").exists()


def test_cpu_smoke_reward_path_helpers_run():
    bench = _load("train_cpu_smoke")
    assert 0 < bench.rubric_path_seconds_per_sample(16) < 0.05
    assert 0 < bench.hook_seconds_per_sample(8, 4, reps=5) < 0.05


def test_train_ablation_variants_map_onto_the_trl_options(tmp_path):
    from medverify.train.config import grpo_args

    bench = _load("train_ablation")
    args = bench.parse_args(["--out", str(tmp_path / "r.json"), "--variants", "defaults,vanilla"])
    defaults = grpo_args(bench.stage_for(args, bench.VARIANTS["defaults"]).grpo)
    vanilla = grpo_args(bench.stage_for(args, bench.VARIANTS["vanilla"]).grpo)
    assert defaults["beta"] == 0.0 and vanilla["beta"] == 0.04
    assert defaults["loss_type"] == "dapo" and vanilla["loss_type"] == "grpo"
    assert defaults["epsilon_high"] > defaults["epsilon"] == vanilla["epsilon_high"]
    for name, overrides in bench.VARIANTS.items():  # every variant is a valid stage
        assert bench.stage_for(args, overrides).grpo.model_dump().items() >= overrides.items(), name
    summary = bench.summarize(
        [
            {"reward": "0.1", "rewards/rule_reward/mean": "0.5", "entropy": "2.0"},
            {"reward": "0.3", "rewards/rule_reward/mean": "0.25", "entropy": "1.0"},
        ]
    )
    assert summary["per_step"]["task_reward"] == [0.5, 0.25]
    assert summary["task_reward_last_third"] == 0.25
    import pytest

    with pytest.raises(SystemExit):
        bench.parse_args(["--out", "x.json", "--variants", "defaults,nonsense"])


def test_train_doctor_pairs_cases_and_bounds_the_difference():
    bench = _load("train_doctor")
    base = {f"c{i}": {"overall": 0.0, "facts_elicited": 0.1, "inquiry": None} for i in range(10)}
    trained = {f"c{i}": {"overall": 0.2, "facts_elicited": 0.1 + i / 100} for i in range(9)}
    for k in trained:
        trained[k]["inquiry"] = 0.5
    out = bench.compare(base, trained)
    assert out["overall"]["n"] == 9  # a case only one doctor played is not paired
    assert abs(out["overall"]["diff"] - 0.2) < 1e-9 and out["overall"]["ci95"] == [
        pytest.approx(0.2),
        pytest.approx(0.2),
    ]
    low, high = out["facts_elicited"]["ci95"]
    assert low < out["facts_elicited"]["diff"] < high
    assert out["inquiry"] == {"n": 0}  # never measured for the base: no difference claimed
