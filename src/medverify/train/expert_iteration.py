"""Expert iteration against the verifier: the doctor learns from its own best consultations.

Each round (ReST-EM, Singh et al. 2023, arXiv:2312.06585: sample with the latest policy, keep
what the reward approves, fine-tune the *base* model again on it):

1. the current policy (the base model with the previous round's LoRA merged in) plays
   ``cases_per_round`` training cases in the offline simulator, every turn chosen by the
   verifier among its own samples (:mod:`medverify.train.guided_search`);
2. the turns worth learning (:func:`~medverify.train.guided_search.training_rows`) become
   prompt-completion rows;
3. TRL's ``SFTTrainer`` trains the LoRA on them: a new one in the first round, the previous
   round's adapter after that, on that round's rows only.

ReST-EM fine-tunes the base model afresh on all rows each round; on 2 CPU cores a training step
of 8 consultation prompts takes about 25 s, so retraining on everything grows the cost with
every round (an estimated 108 minutes for three rounds, against 51 when each round continues
the adapter on its own rows). The adapter therefore carries over, and one LoRA is what ships.

The last round's adapter is the stage's result (``<stage>/adapter``, a few MB) and every
round's is kept (``rounds/<k>/adapter``): ``medverify train export-doctor`` ships the one whose
searched consultations scored best on the training cases
(:func:`~medverify.train.export.best_round`). Every consultation is persisted the moment it
finishes and every round's adapter when it is trained, so an interrupted run resumes where it
stopped. ``<stage>/rounds.json`` holds per round the mean verifier reward of the searched
consultations (the reward curve), facts elicited, diagnoses named and right, rows kept, wall
time and peak memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from medverify.cases.records import CaseRecord
from medverify.consult.task import ConsultationTask
from medverify.errors import ConfigError
from medverify.grading import make_grader
from medverify.progress import progress_bars
from medverify.runs.store import RunStore
from medverify.simulator.fact_unit import OfflineFactUnit
from medverify.train.config import StageConfig
from medverify.train.git_commit import git_commit
from medverify.train.guided_search import (
    SearchedConsultation,
    SearchSettings,
    guided_consultation,
    training_rows,
)
from medverify.train.policy_sampler import LocalSampler
from medverify.train.rs_sft import train_sft

log = logging.getLogger(__name__)

ADAPTER = "adapter"


class RoundStats(BaseModel):
    """What one round did."""

    round: int
    consultations: int
    mean_reward: float
    mean_score: float
    facts_elicited: float
    diagnosis_named: float
    diagnosis_correct: float
    rows_this_round: int
    rows_so_far: int
    sample_seconds: float
    train_seconds: float
    peak_rss_mb: float
    commit: str | None = Field(
        None, description="the code the round ran (git commit, +changes when the tree differed)"
    )


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def round_cases(cases: list[CaseRecord], per_round: int, round_index: int, seed: int) -> list:
    """The cases of one round: a seeded shuffle, walked in order (every case before a repeat)."""
    order = list(cases)
    random.Random(seed).shuffle(order)
    start = (round_index * per_round) % len(order)
    return [order[(start + i) % len(order)] for i in range(min(per_round, len(order)))]


def load_policy(base: str, adapter: Path | None, stage: StageConfig) -> tuple[Any, Any]:
    """The base model, with ``adapter`` merged in when given, ready to sample."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medverify.train.trainer import configure_cpu

    configure_cpu(stage)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.eval()
    if not stage.train.use_cpu:
        import torch

        if torch.cuda.is_available():
            model = model.to("cuda")
    return model, tokenizer


def trainable(base: str, round_dir: Path) -> Any:
    """The base model with a finished round's adapter, ready to train further."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    return PeftModel.from_pretrained(model, str(round_dir / ADAPTER), is_trainable=True)


def _summary(consultations: list[SearchedConsultation]) -> dict[str, float]:
    n = len(consultations) or 1
    rewards = [c.reward for c in consultations if c.reward is not None]
    scores = [c.score for c in consultations if c.score is not None]
    return {
        "mean_reward": sum(rewards) / len(rewards) if rewards else 0.0,
        "mean_score": sum(scores) / len(scores) if scores else 0.0,
        "facts_elicited": sum(c.facts_elicited for c in consultations) / n,
        "diagnosis_named": sum(c.diagnosis_named for c in consultations) / n,
        "diagnosis_correct": sum(c.diagnosis_correct for c in consultations) / n,
    }


def run_expert_iteration(
    stage: StageConfig, base: str, stage_dir: Path, cases: list[CaseRecord]
) -> tuple[Any, dict[str, float]]:
    """All rounds of a stage; returns the last round's trainer and the last round's statistics.

    Raises:
        ConfigError: no case to train on, or a round kept nothing to learn from.
    """
    ei = stage.ei
    assert ei is not None
    if not cases:
        raise ConfigError(f"stage {stage.name}: no training cases")
    settings = SearchSettings(
        candidates=ei.candidates,
        turn_tokens=ei.turn_tokens,
        closing_tokens=ei.closing_tokens,
        search_prompt=ei.search_prompt,
        closing_prefix=ei.closing_prefix,
        plan_prefix=ei.plan_prefix,
        plan_samples=ei.plan_samples,
        plan_tokens=ei.plan_tokens,
        closings_kept=ei.closings_kept,
        rubric_weight=stage.reward.rubric_weight,
        process_weight=stage.reward.process_weight,
    )
    store = RunStore(
        stage_dir,
        job="expert-iteration",
        config={"base": base, "ei": ei, "reward": stage.reward, "train": stage.train},
    )
    grader = make_grader(stage.reward.grader)
    fact_unit = OfflineFactUnit()
    all_rows: list[dict[str, Any]] = []
    stats: list[RoundStats] = []
    trainer = None
    adapter: Path | None = None
    commit = git_commit()  # at the start: a commit made while the run goes is not its code
    try:
        for r in range(ei.rounds):
            round_dir = stage_dir / "rounds" / str(r)
            chosen = round_cases(cases, ei.cases_per_round, r, stage.train.seed)
            kind = f"round-{r}"
            start = time.perf_counter()
            pending = [c for c in chosen if store.get(kind, c.id) is None]
            if pending:
                model, tokenizer = load_policy(base, adapter, stage)
                sampler = LocalSampler(
                    model,
                    tokenizer,
                    temperature=ei.temperature,
                    top_p=ei.top_p,
                    seed=stage.train.seed + 7919 * r,
                )

                async def play(
                    key: str, case: CaseRecord, sampler: LocalSampler = sampler
                ) -> dict[str, Any]:
                    task = ConsultationTask(
                        case=case, max_turns=ei.max_turns, seed=stage.train.seed
                    )
                    done = await guided_consultation(
                        task, sampler, grader, settings, fact_unit=fact_unit
                    )
                    return done.model_dump(mode="json")

                with progress_bars() as add:
                    advance = add(f"round {r + 1}/{ei.rounds}: search", len(chosen))

                    def tick(key: str, advance: Any = advance, r: int = r) -> None:
                        advance()
                        log.info("round %d: consultation %s done", r, key)

                    asyncio.run(
                        store.map(
                            kind, [(c.id, c) for c in chosen], play, concurrency=1, on_done=tick
                        )
                    )
                del model, sampler
            sample_seconds = time.perf_counter() - start
            stored = [store.get(kind, c.id) for c in chosen]
            played = [SearchedConsultation.model_validate(d) for d in stored if d is not None]
            rows = training_rows(played)
            all_rows += rows
            if not rows:
                raise ConfigError(
                    f"stage {stage.name} round {r}: the search found no turn worth learning"
                )
            prior = store.get("round-stats", str(r))
            adapter = round_dir / ADAPTER
            if prior is not None and adapter.is_dir() and r < ei.rounds - 1:
                stats.append(RoundStats.model_validate(prior))
                continue
            start = time.perf_counter()
            per_step = stage.train.batch_size * stage.train.grad_accum
            steps = max(1, int(ei.epochs * len(rows) / per_step))
            round_stage = stage.model_copy(
                update={"train": stage.train.model_copy(update={"max_steps": steps})}
            )
            policy: Any = base if r == 0 else trainable(base, stage_dir / "rounds" / str(r - 1))
            trainer = train_sft(round_stage, policy, rows, round_dir / "checkpoints")
            trainer.model.save_pretrained(str(adapter))
            train_seconds = time.perf_counter() - start
            summary = _summary(played)
            stat = RoundStats(
                round=r,
                consultations=len(played),
                rows_this_round=len(rows),
                rows_so_far=len(all_rows),
                sample_seconds=prior["sample_seconds"] if prior and not pending else sample_seconds,
                train_seconds=train_seconds,
                peak_rss_mb=peak_rss_mb(),
                commit=commit,
                **summary,
            )
            store.put("round-stats", str(r), stat)
            stats.append(stat)
            log.info("round %d: %s", r, stat.model_dump())
        final_adapter = stage_dir / ADAPTER
        if final_adapter.exists():
            shutil.rmtree(final_adapter)
        assert adapter is not None
        shutil.copytree(adapter, final_adapter)
        (stage_dir / "rounds.json").write_text(
            json.dumps([s.model_dump() for s in stats], indent=2) + "\n"
        )
    finally:
        store.close()
    last = stats[-1]
    return trainer, {k: float(v) for k, v in last.model_dump(exclude={"commit"}).items()}
