"""The training benchmarks build valid configs on CPU (the GPU one only runs on a GPU)."""

import importlib.util
import json
import sys
from pathlib import Path

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
