"""The pipeline's bookkeeping: stage order, resume after a failure, evals, summary, curves.

Training itself is replaced by a fake stage runner (the GRPO end-to-end test trains for real).
"""

import json

import pytest

from medverify.errors import ConfigError
from medverify.train import pipeline
from medverify.train.config import parse_config
from medverify.train.pipeline import StageResult, run_pipeline

CONFIG = {
    "model": "base-model",
    "eval": {"cases": 0, "healthbench": 0, "mcq": 2},
    "stages": [
        {"name": "sft", "kind": "rs_sft", "task": "rule"},
        {"name": "rule-rl", "kind": "grpo", "task": "rule"},
        {"name": "consult-rl", "kind": "grpo", "task": "consultation", "data": {"limit": 1}},
    ],
}


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    calls = {"stages": [], "evals": [], "fail": set()}

    def fake_run_stage(stage, model, stage_dir, rows):
        if stage.name in calls["fail"]:
            raise RuntimeError(f"killed during {stage.name}")
        calls["stages"].append((stage.name, model, len(rows)))
        stage_dir.mkdir(parents=True, exist_ok=True)
        history = [{"step": 1, "reward": 0.25, "entropy": 1.0}, {"step": 2, "reward": 0.5}]
        (stage_dir / "log_history.json").write_text(json.dumps(history))
        return StageResult(
            name=stage.name, kind=stage.kind, final=f"{stage.name}/final", seconds=1.0
        )

    async def fake_eval(model_dir, settings, **kwargs):
        calls["evals"].append(model_dir)
        return {"model": model_dir, "mcq_accuracy": 0.5, "mcq_n": len(kwargs["mcq_rows"])}

    monkeypatch.setattr(pipeline, "run_stage", fake_run_stage)
    monkeypatch.setattr(pipeline, "evaluate_checkpoint", fake_eval)
    return calls


def test_stages_chain_and_evaluate(fakes, tmp_path):
    outcome = run_pipeline(parse_config(CONFIG), tmp_path)
    assert [(n, m) for n, m, _ in fakes["stages"]] == [
        ("sft", "base-model"),
        ("rule-rl", "sft/final"),
        ("consult-rl", "rule-rl/final"),
    ]
    assert fakes["stages"][2][2] == 1  # data.limit
    assert fakes["evals"] == ["base-model", "sft/final", "rule-rl/final", "consult-rl/final"]
    assert list(outcome.evals) == ["base", "sft", "rule-rl", "consult-rl"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["evals"]["base"]["mcq_n"] == 2
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_resume_skips_finished_stages(fakes, tmp_path):
    cfg = parse_config(CONFIG)
    fakes["fail"].add("rule-rl")
    with pytest.raises(RuntimeError, match="killed"):
        run_pipeline(cfg, tmp_path)
    assert [n for n, _, _ in fakes["stages"]] == ["sft"]
    fakes["fail"].clear()
    run_pipeline(cfg, tmp_path)
    assert [n for n, _, _ in fakes["stages"]] == ["sft", "rule-rl", "consult-rl"]
    assert fakes["evals"].count("base-model") == 1  # evaluations are not redone either


def test_resume_with_other_settings_is_refused(fakes, tmp_path):
    run_pipeline(parse_config(CONFIG), tmp_path)
    changed = json.loads(json.dumps(CONFIG))
    changed["stages"][1]["train"] = {"learning_rate": 1.0}
    with pytest.raises(ConfigError, match="stage rule-rl"):
        run_pipeline(parse_config(changed), tmp_path)


def test_only_one_kind(fakes, tmp_path):
    run_pipeline(parse_config(CONFIG), tmp_path, kinds={"rs_sft"})
    assert [n for n, _, _ in fakes["stages"]] == ["sft"]
    with pytest.raises(ConfigError, match="no stage of kind"):
        run_pipeline(parse_config(CONFIG), tmp_path / "other", kinds={"mid_train"})


def test_a_grpo_stage_closes_its_grader_on_the_loop_that_ran_it(tmp_path):
    import asyncio
    import threading

    from medverify.grading import VerdictCache
    from medverify.train.pipeline import close_scorer

    class Grader:
        spec = "fake"

        def __init__(self) -> None:
            self.closed_on: list[object] = []

        async def aclose(self) -> None:
            self.closed_on.append(asyncio.get_running_loop())

    class Scorer:
        def __init__(self) -> None:
            self.grader = Grader()
            self.cache = VerdictCache(str(tmp_path / "grades.sqlite"))

    # TRL's pattern: an event loop running in a daemon thread
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    scorer = Scorer()
    close_scorer(scorer, loop)
    assert scorer.grader.closed_on == [loop]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    # no loop: closed in a fresh one; a grader that fails to close is logged, not raised
    other = Scorer()
    close_scorer(other)
    assert len(other.grader.closed_on) == 1

    async def boom() -> None:
        raise RuntimeError("already closed")

    other.grader.aclose = boom
    close_scorer(other)
