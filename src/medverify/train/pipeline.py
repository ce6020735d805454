"""``medverify train pipeline --config stages.yaml``: the stages in order, resumable, evaluated.

Baichuan-M2's recipe is mid-training -> rejection-sampling SFT -> rule-based RL -> rubric-based
RL -> multi-turn RL in the patient simulator. A config lists any subset of those stages; each one
starts from the previous stage's final checkpoint, trains with TRL (checkpoints every
``save_steps`` in ``<run>/stages/<name>/checkpoints``), and ends with a merged HF checkpoint in
``<run>/stages/<name>/final``. The run store (``<run>/run.sqlite``) records each finished stage
and each evaluation, so a rerun with the same ``--run-dir`` skips finished stages and resumes the
interrupted one from its last checkpoint. After the run: ``summary.json`` (before/after scores of
every stage) and ``curves.png`` (reward, length, KL, entropy).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from medverify.backends.hf import HFBackend
from medverify.backends.local import default_model_dir
from medverify.cases.records import CaseRecord
from medverify.errors import ConfigError
from medverify.grading import VerdictCache, make_grader
from medverify.runs.store import RunStore
from medverify.train.checkpoints import last_checkpoint, save_final, write_log_history
from medverify.train.config import PipelineConfig, StageConfig
from medverify.train.data import load_case_set, split, task_rows
from medverify.train.evaluate import evaluate_checkpoint
from medverify.train.expert_iteration import run_expert_iteration
from medverify.train.midtrain import mixture
from medverify.train.plots import load_histories, plot_curves
from medverify.train.rewards import ConsultationReward, RubricReward, RubricScorer, RuleReward
from medverify.train.rollout import consultation_rollout, prompt_key
from medverify.train.rs_sft import sample_and_grade, sft_rows, task_scorer, train_sft

log = logging.getLogger(__name__)


class StageResult(BaseModel):
    """What a finished stage left behind."""

    name: str
    kind: str
    final: str
    seconds: float
    stats: dict[str, float] = Field(default_factory=dict)


class PipelineResult(BaseModel):
    """The run's outcome: stages, evaluations, and where the files are."""

    run_dir: str
    stages: list[StageResult]
    evals: dict[str, dict[str, Any]]
    curves: str | None = None


def resolve_model(spec: str) -> str:
    """``local`` -> the embedded model's HF checkpoint directory; anything else as given."""
    if spec == "local":
        return str(default_model_dir())
    return spec


def _grader(settings: Any) -> Any:
    return make_grader(settings.grader)


def _run_grpo(stage: StageConfig, model: str, stage_dir: Path, rows: list[dict[str, Any]]) -> Any:
    from medverify.train.trainer import build_grpo_trainer  # heavy: trl, torch

    rollout = None
    if stage.task == "rule":
        rewards: list[Any] = [RuleReward()]
    else:
        scorer = RubricScorer(
            _grader(stage.reward),
            concurrency=stage.reward.grader_concurrency,
            cache=VerdictCache(str(stage_dir / "grades.sqlite")),
            max_items=stage.data.max_rubric_items,
        )
        if stage.task == "rubric":
            rewards = [RubricReward(scorer)]
        else:
            cases = {c.id: c for c in load_case_set(stage.data.source)}
            rewards = [
                ConsultationReward(
                    scorer,
                    cases,
                    rubric=stage.reward.rubric,
                    rubric_weight=stage.reward.rubric_weight,
                    process_weight=stage.reward.process_weight,
                )
            ]
            r = stage.rollout
            rollout = consultation_rollout(
                {prompt_key(row["prompt"]): cases[row["case_id"]] for row in rows},
                max_turns=r.max_turns,
                turn_tokens=r.turn_tokens,
                temperature=r.temperature,
                max_completion_length=r.max_completion_length,
                seed=stage.train.seed,
            )
    trainer = build_grpo_trainer(
        stage, model, rows, stage_dir / "checkpoints", rewards, rollout_func=rollout
    )
    try:
        trainer.train(resume_from_checkpoint=last_checkpoint(stage_dir / "checkpoints"))
    finally:
        if stage.task != "rule":
            close_scorer(scorer, getattr(trainer, "async_loop", None))
    return trainer


def close_scorer(scorer: Any, loop: Any = None) -> None:
    """Close a reward scorer's grader (its HTTP client) and verdict cache after a GRPO stage.

    TRL runs async reward functions on its own event loop in a daemon thread, so the grader's
    client belongs to that loop and is closed there; without a loop, in a fresh one. A failure to
    close is logged, never raised: the stage's results are already saved.
    """
    try:
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(scorer.grader.aclose(), loop).result(timeout=30)
        else:
            asyncio.run(scorer.grader.aclose())
    except Exception as exc:  # closing must not fail a finished stage
        log.warning("could not close the grader cleanly: %s", exc)
    scorer.cache.close()


def _run_rs_sft(
    stage: StageConfig, model: str, stage_dir: Path, rows: list[dict[str, Any]]
) -> tuple[Any, dict[str, float]]:
    assert stage.rs is not None
    grader = _grader(stage.reward) if stage.task == "rubric" else None
    scorer = None
    if grader is not None:
        scorer = RubricScorer(
            grader,
            concurrency=stage.reward.grader_concurrency,
            cache=VerdictCache(str(stage_dir / "grades.sqlite")),
            max_items=stage.data.max_rubric_items,
        )
    policy = HFBackend(model, spec=f"hf:{model}")
    store = RunStore(
        stage_dir, job="rs-sample", config={"model": model, "rs": stage.rs, "task": stage.task}
    )

    async def sample() -> Any:
        try:
            return await sample_and_grade(
                rows,
                policy,
                task_scorer(stage.task or "rule", scorer),
                store,
                k=stage.rs.k,
                temperature=stage.rs.temperature,
                max_new_tokens=stage.rs.max_new_tokens,
            )
        finally:
            await policy.aclose()
            if grader is not None:
                await grader.aclose()

    samples = asyncio.run(sample())
    store.close()
    kept, stats = sft_rows(rows, samples, stage.rs.threshold)
    log.info("rejection sampling kept %d of %d prompts", len(kept), len(rows))
    if not kept:
        raise ConfigError(
            f"stage {stage.name}: no sample reached the threshold {stage.rs.threshold} "
            f"(mean sample score {stats['mean_sample_score']:.3f}); lower rs.threshold"
        )
    return train_sft(stage, model, kept, stage_dir / "checkpoints"), stats


def _run_mid(stage: StageConfig, model: str, stage_dir: Path) -> Any:
    assert stage.mid is not None
    stream = mixture(stage.mid, seed=stage.train.seed)
    return train_sft(
        stage,
        model,
        [],
        stage_dir / "checkpoints",
        dataset=stream,
        packing=True,
        max_length=stage.mid.max_length,
    )


def run_stage(
    stage: StageConfig, model: str, stage_dir: Path, rows: list[dict[str, Any]]
) -> StageResult:
    """Train one stage from ``model`` and write its merged final checkpoint."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    stats: dict[str, float] = {}
    if stage.kind == "grpo":
        trainer = _run_grpo(stage, model, stage_dir, rows)
    elif stage.kind == "rs_sft":
        trainer, stats = _run_rs_sft(stage, model, stage_dir, rows)
    elif stage.kind == "expert_iteration":
        cases = load_case_set(stage.data.source)[: stage.data.limit]
        trainer, stats = run_expert_iteration(stage, model, stage_dir, cases)
    else:
        trainer = _run_mid(stage, model, stage_dir)
    write_log_history(stage_dir, trainer.state.log_history)
    final = save_final(
        trainer.model,
        trainer.processing_class,
        stage_dir / "final",
        {"stage": stage.name, "kind": stage.kind, "from": model},
    )
    return StageResult(
        name=stage.name,
        kind=stage.kind,
        final=str(final),
        seconds=time.perf_counter() - start,
        stats=stats,
    )


def _eval_data(cfg: PipelineConfig) -> tuple[list[Any], list[Any], list[CaseRecord]]:
    """Held-out eval rows: the MCQ and HealthBench items no stage trains on, and cases."""
    e = cfg.eval
    _, mcq_held = split(task_rows("rule", "bundled"), max(e.mcq, 1))
    _, hb_held = split(task_rows("rubric", "bundled"), max(e.healthbench, 1))
    cases = load_case_set()[-max(e.cases, 1) :] if e.cases else []
    return mcq_held, hb_held, cases


def stage_rows(stage: StageConfig) -> list[dict[str, Any]]:
    """A stage's training rows (held-out items removed)."""
    if stage.kind in ("mid_train", "expert_iteration") or stage.task is None:
        return []
    rows = task_rows(stage.task, stage.data.source)
    train, _ = split(rows, stage.data.eval_limit, stage.data.limit)
    return train


def run_identity(cfg: PipelineConfig, stages: list[StageConfig]) -> dict[str, Any]:
    """The settings a resumed run must share: the model, the eval, each stage (threads aside)."""
    identity: dict[str, Any] = {"model": cfg.model, "eval": cfg.eval.model_dump(mode="json")}
    for stage in stages:
        dump = stage.model_dump(mode="json", exclude={"train": {"threads"}})
        identity[f"stage {stage.name}"] = dump
    return identity


def run_pipeline(
    cfg: PipelineConfig, run_dir: str | Path, *, kinds: set[str] | None = None
) -> PipelineResult:
    """Run (or resume) the configured stages, evaluating before and after each.

    Args:
        cfg: the pipeline config.
        run_dir: the run directory (resumes when it holds a run of the same config).
        kinds: only stages of these kinds (``medverify train rs-sft`` / ``grpo``).
    """
    run = Path(run_dir)
    stages = [s for s in cfg.stages if kinds is None or s.kind in kinds]
    if not stages:
        raise ConfigError(f"the config has no stage of kind {sorted(kinds or [])}")
    job = "train-" + ("-".join(sorted(kinds)) if kinds else "pipeline")
    store = RunStore(run, job=job, config=run_identity(cfg, stages))
    mcq_held, hb_held, eval_cases = _eval_data(cfg)

    def evaluate(name: str, model_dir: str) -> None:
        if not cfg.eval.enabled or store.get("eval", name) is not None:
            return
        scores = asyncio.run(
            evaluate_checkpoint(
                model_dir,
                cfg.eval,
                mcq_rows=mcq_held,
                rubric_rows=hb_held,
                cases=eval_cases,
                cache_path=str(run / "eval-grades.sqlite"),
            )
        )
        store.put("eval", name, scores)
        log.info("eval after %s: %s", name, scores)

    try:
        model = resolve_model(cfg.model)
        evaluate("base", model)
        results = []
        for stage in stages:
            done = store.get("stage", stage.name)
            if done is not None:
                result = StageResult.model_validate(done)
                log.info("stage %s already done: %s", stage.name, result.final)
            else:
                log.info("stage %s (%s) from %s", stage.name, stage.kind, model)
                result = run_stage(stage, model, run / "stages" / stage.name, stage_rows(stage))
                store.put("stage", stage.name, result)
            results.append(result)
            model = result.final
            evaluate(stage.name, model)
        evals = store.items("eval")
        ordered = {k: evals[k] for k in ["base", *[s.name for s in stages]] if k in evals}
        curves = plot_curves(load_histories(run, [s.name for s in stages]), run / "curves.png")
        outcome = PipelineResult(
            run_dir=str(run),
            stages=results,
            evals=ordered,
            curves=str(curves) if curves else None,
        )
        (run / "summary.json").write_text(json.dumps(outcome.model_dump(), indent=2) + "\n")
        return outcome
    finally:
        store.close()
