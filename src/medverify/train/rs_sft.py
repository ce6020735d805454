"""Rejection-sampling SFT: sample k responses per prompt, grade them, train on the best.

``medverify train rs-sft --config FILE`` runs the ``rs_sft`` stages of a training config.
Sampling goes through a medverify backend on the stage's start model (``hf:<dir>``), so it runs
on CPU, on a GPU, or -- pointing ``openai:`` at a vLLM server -- at scale; every prompt's samples
and grades are persisted in the run store the moment they finish (a rerun redoes nothing).
Grading uses the stage task's reward: exact answers for ``rule``, the rubric grader for
``rubric``. The best sample at or above the threshold becomes a prompt-completion pair for TRL's
``SFTTrainer`` (loss on the completion only).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from medverify.backends.base import Backend
from medverify.backends.torch_runtime import checkpointing_kwarg
from medverify.runs.store import RunStore
from medverify.train.checkpoints import last_checkpoint
from medverify.train.config import StageConfig
from medverify.train.rewards import RubricScorer, parse_rubric, rule_score

log = logging.getLogger(__name__)

Scorer = Callable[[dict[str, Any], str], Awaitable[float | None]]


class Candidate(BaseModel):
    """One sampled response and its score (``None``: could not be graded)."""

    text: str
    score: float | None


def select_best(candidates: list[Candidate], threshold: float) -> Candidate | None:
    """The highest-scoring candidate at or above ``threshold`` (first on ties), else ``None``."""
    graded = [c for c in candidates if c.score is not None and c.score >= threshold]
    if not graded:
        return None
    return max(graded, key=lambda c: c.score)  # type: ignore[arg-type, return-value]


def task_scorer(task: str, rubric_scorer: RubricScorer | None = None) -> Scorer:
    """The grading function of a task: ``(row, response) -> score``."""

    async def rule(row: dict[str, Any], text: str) -> float | None:
        options = json.loads(row["options"]) if row.get("options") else None
        return rule_score(text, row["answer"], options)

    async def rubric(row: dict[str, Any], text: str) -> float | None:
        assert rubric_scorer is not None
        return await rubric_scorer.score(row["prompt"], text, parse_rubric(row["rubric"]))

    if task == "rule":
        return rule
    if task == "rubric":
        if rubric_scorer is None:
            raise ValueError("the rubric task needs a rubric scorer")
        return rubric
    raise ValueError(f"rejection sampling does not support task {task!r}")


async def sample_and_grade(
    rows: list[dict[str, Any]],
    policy: Backend,
    scorer: Scorer,
    store: RunStore,
    *,
    k: int,
    temperature: float,
    max_new_tokens: int,
    kind: str = "rs-samples",
) -> dict[str, list[Candidate]]:
    """K graded samples for every row (resumable through ``store``)."""

    async def work(_: str, row: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for i in range(k):
            completion = await policy.complete(
                row["prompt"], temperature=temperature, max_tokens=max_new_tokens, seed=i
            )
            text = completion.text.strip()
            out.append(Candidate(text=text, score=await scorer(row, text)).model_dump())
        return out

    done = await store.map(kind, [(row["id"], row) for row in rows], work, concurrency=4)
    return {key: [Candidate.model_validate(c) for c in value] for key, value in done.items()}


def sft_rows(
    rows: list[dict[str, Any]], samples: dict[str, list[Candidate]], threshold: float
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Prompt-completion rows of the kept samples, and the selection's statistics."""
    kept = []
    scores = []
    for row in rows:
        cands = samples.get(row["id"], [])
        scores += [c.score for c in cands if c.score is not None]
        best = select_best(cands, threshold)
        if best is not None:
            kept.append(
                {
                    "prompt": row["prompt"],
                    "completion": [{"role": "assistant", "content": best.text}],
                }
            )
    n_cands = sum(len(samples.get(r["id"], [])) for r in rows)
    stats = {
        "prompts": float(len(rows)),
        "kept": float(len(kept)),
        "keep_rate": len(kept) / len(rows) if rows else 0.0,
        "mean_sample_score": sum(scores) / len(scores) if scores else 0.0,
        "ungraded": float(n_cands - len(scores)),
    }
    return kept, stats


def train_sft(
    stage: StageConfig,
    model: Any,
    rows: list[dict[str, Any]],
    output_dir: Path,
    *,
    dataset: Any = None,
    packing: bool = False,
    max_length: int | None = None,
) -> Any:
    """TRL's ``SFTTrainer`` on prompt-completion rows (or a given text ``dataset``), trained.

    ``model`` is a checkpoint path (a new LoRA per the stage's settings is put on it) or a
    loaded peft model whose adapter goes on training. Resumes from the last checkpoint in
    ``output_dir``. Returns the trainer.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from medverify.train.trainer import configure_cpu, lora_config  # heavy: trl, torch

    configure_cpu(stage)
    t = stage.train
    args = SFTConfig(
        output_dir=str(output_dir),
        use_cpu=t.use_cpu,
        bf16=t.bf16,
        fp16=False,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        logging_steps=t.logging_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        report_to=[],
        seed=t.seed,
        **checkpointing_kwarg(t.gradient_checkpointing),
        packing=packing,
        max_length=max_length or 1024,
        disable_tqdm=True,
        **({"deepspeed": t.deepspeed} if t.deepspeed else {}),
    )
    loaded = not isinstance(model, (str, Path))
    trainer = SFTTrainer(
        model=model if loaded else str(model),
        args=args,
        train_dataset=dataset if dataset is not None else Dataset.from_list(rows),
        peft_config=None if loaded else lora_config(stage),
    )
    trainer.train(resume_from_checkpoint=last_checkpoint(output_dir))
    return trainer
