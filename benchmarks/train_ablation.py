"""GRPO switch ablation: the same short rule-reward run with each improvement switched off.

``GRPOSwitches``' defaults come from DAPO and the Baichuan-M2 report. This measures them on our
own setup: every variant starts from the same model, sees the same prompts in the same order (same
seed) and trains for the same number of steps through ``medverify.train`` (TRL GRPOTrainer). It
records, per variant and per step, what each switch is meant to change:

- the task (rule) reward, the total reward (task + shaping, not comparable across variants that
  switch shaping off), and greedy accuracy on held-out MCQ items after training;
- policy entropy (clip-higher is meant to keep it from collapsing);
- the share of groups whose rewards are all equal (what dynamic sampling drops) and the clip ratios;
- completion length (token-level loss and overlong shaping act on it), KL when on, seconds per step.

Variants: ``defaults``; ``vanilla`` (KL 0.04, symmetric clip 0.2, sequence-mean loss, no dynamic
sampling, no overlong or length shaping: GRPO as in DeepSeekMath); and ``no_<switch>`` for each
default switched off alone. The JSON is rewritten after each variant and a rerun skips the variants
already in it, so a killed run resumes.

    python benchmarks/train_ablation.py --out r.json [--variants defaults,vanilla] [--steps 12]
        [--mcq FILE] [--model local] [--cpu]   # --cpu: a tiny smoke setting

Prints one summary line.
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

VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "vanilla": {
        "kl": True,
        "kl_beta": 0.04,
        "clip_higher": False,
        "token_level_loss": False,
        "dynamic_sampling": False,
        "overlong_shaping": False,
        "length_reward": False,
    },
    "no_clip_higher": {"clip_higher": False},
    "no_token_level_loss": {"token_level_loss": False},
    "no_dynamic_sampling": {"dynamic_sampling": False},
    "with_kl": {"kl": True, "kl_beta": 0.04},
    "no_overlong_shaping": {"overlong_shaping": False},
    "no_length_reward": {"length_reward": False},
}
LOGGED = {
    "task_reward": "rewards/rule_reward/mean",
    "reward": "reward",
    "entropy": "entropy",
    "zero_std_groups": "frac_reward_zero_std",
    "dropped_groups": "dynamic_sampling/dropped_frac",
    "clip_high": "clip_ratio/high_mean",
    "clip_low": "clip_ratio/low_mean",
    "length": "completions/mean_length",
    "kl": "kl",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's flags."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default="local")
    ap.add_argument("--variants", default="defaults,vanilla,no_clip_higher,no_dynamic_sampling")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--num-generations", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-6)
    ap.add_argument("--mcq", default="bundled", help="MCQ JSONL (default: the 64 shipped items)")
    ap.add_argument("--held-out", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", action="store_true", help="tiny CPU smoke sizes, LoRA, fp32")
    args = ap.parse_args(argv)
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    return args


def stage_for(args: argparse.Namespace, overrides: dict[str, Any]) -> Any:
    """The GRPO stage of one variant (validated)."""
    from medverify.train.config import StageConfig

    train: dict[str, Any] = {
        "max_steps": args.steps,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "bf16": not args.cpu,
        "lora": {} if args.cpu else None,
        "save_steps": 100_000,
        "logging_steps": 1,
        "seed": args.seed,
    }
    if args.cpu:
        train["use_cpu"] = True
    return StageConfig.model_validate(
        {
            "name": "ablation",
            "kind": "grpo",
            "task": "rule",
            "train": train,
            "rollout": {
                "num_generations": args.num_generations,
                "max_completion_length": args.max_tokens,
            },
            "grpo": overrides,
        }
    )


def held_out_accuracy(model: Any, tokenizer: Any, rows: list[dict[str, Any]]) -> float:
    """Greedy exact-answer accuracy on held-out MCQ rows, generated as one left-padded batch."""
    import torch

    from medverify.train.rewards import rule_score

    if not rows:
        return float("nan")
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    texts = [
        tokenizer.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False)
        for r in rows
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    batch = batch.to(model.device)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=12, do_sample=False)
    tokenizer.padding_side = side
    replies = tokenizer.batch_decode(
        out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True
    )
    model.train()
    scores = [
        rule_score(text, r["answer"], json.loads(r["options"]))
        for text, r in zip(replies, rows, strict=True)
    ]
    return sum(scores) / len(scores)


def summarize(history: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-step series of the logged measures, and their first- and last-third means."""
    series = {name: [float(h[key]) for h in history if key in h] for name, key in LOGGED.items()}
    out: dict[str, Any] = {"per_step": series}
    for name, values in series.items():
        if values:
            third = max(1, len(values) // 3)
            out[f"{name}_first_third"] = sum(values[:third]) / third
            out[f"{name}_last_third"] = sum(values[-third:]) / third
    return out


def run_variant(args: argparse.Namespace, name: str, rows: tuple[list, list]) -> dict[str, Any]:
    """Train one variant from scratch and measure it."""
    import torch

    from medverify.train.pipeline import resolve_model
    from medverify.train.rewards import RuleReward
    from medverify.train.trainer import build_grpo_trainer

    stage = stage_for(args, VARIANTS[name])
    train_rows, held = rows
    out_dir = Path("/tmp/medverify-train-ablation") / name
    trainer = build_grpo_trainer(
        stage, resolve_model(args.model), train_rows, out_dir, [RuleReward()]
    )
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    history = [h for h in trainer.state.log_history if "reward" in h]
    result = {
        "switches": stage.grpo.model_dump(),
        "steps": len(history),
        "seconds_per_step": seconds / max(len(history), 1),
        "held_out_accuracy_after": held_out_accuracy(trainer.model, trainer.processing_class, held),
        **summarize(history),
    }
    if torch.cuda.is_available():
        result["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    del trainer
    return result


def main(argv: list[str] | None = None) -> None:
    """Run the variants not yet in ``--out`` and rewrite it after each."""
    args = parse_args(argv)
    if args.cpu:
        args.batch_size, args.num_generations = (
            min(args.batch_size, 4),
            min(args.num_generations, 4),
        )
        args.max_tokens = min(args.max_tokens, 16)
    import torch

    from medverify.train.data import split, task_rows
    from medverify.train.pipeline import resolve_model

    done: dict[str, Any] = {}
    if args.out.is_file():
        done = json.loads(args.out.read_text()).get("variants", {})
    rows = split(task_rows("rule", args.mcq), args.held_out)
    card = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    before = None
    for name in args.variants.split(","):
        if name in done:
            continue
        if before is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            path = resolve_model(args.model)
            model = AutoModelForCausalLM.from_pretrained(path).to(
                "cuda" if card != "cpu" else "cpu"
            )
            before = held_out_accuracy(model, AutoTokenizer.from_pretrained(path), rows[1])
            del model
        done[name] = run_variant(args, name, rows)
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        result = {
            "card": card,
            "model": "SmolLM2-135M-Instruct (embedded)" if args.model == "local" else args.model,
            "trainer": "TRL GRPOTrainer via medverify.train, transformers generate",
            "settings": settings,
            "train_items": len(rows[0]),
            "held_out_items": len(rows[1]),
            "held_out_accuracy_before": before,
            "variants": done,
        }
        write_result("train_ablation", result, args.out)
        d = done[name]
        print(
            f"[{name}] reward {d.get('reward_first_third', 0):.3f} -> "
            f"{d.get('reward_last_third', 0):.3f}, entropy {d.get('entropy_last_third', 0):.3f}, "
            f"zero-std groups {d.get('zero_std_groups_last_third', 0):.2f}, held-out "
            f"{d['held_out_accuracy_after']:.3f}, {d['seconds_per_step']:.1f} s/step",
            flush=True,
        )
    summary = ", ".join(
        f"{n} {v.get('reward_last_third', float('nan')):.3f}" for n, v in done.items()
    )
    print(f"train_ablation on {card}: last-third reward {summary} -> {args.out}")


if __name__ == "__main__":
    main()
