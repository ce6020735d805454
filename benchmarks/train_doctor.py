"""Did the verifier teach? The embedded doctor against the trained one, on cases neither saw.

Both doctors (``local`` and ``local:doctor``, or ``--trained SPEC``) play the same held-out
cases with the same offline simulator, rubric core and offline grader, six doctor turns of at
most 96 tokens (the demo's settings). Held out: the 20 AgentClinic MedQA-extended cases of
``benchmarks/data/heldout_agentclinic_extended20.jsonl`` (no training case has one of their
diagnoses) and the demo's four bundled cases (left out of the training file). Per measure it
reports both means and the paired difference with a 95% bootstrap interval over cases:
per-consultation score (unclipped), the five dimensions, SCAN sub-scores, facts elicited,
diagnosis named (a condition, :func:`~medverify.cases.closing.names_condition`) and correct; and
each run's figures as consult-bench reports them (overall = the mean clipped to [0, 1]).

It also records how training went (the reward curve per round, wall time and peak memory, from
the adapter's ``doctor.json``; the curve as a PNG), and three replies of each model to general
health questions, to show the trained doctor still answers sensibly outside a consultation.

    python benchmarks/train_doctor.py [--trained local:doctor] [--limit N] [--run-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, write_result
from medverify.backends.local_doctor import provenance
from medverify.backends.registry import BackendOptions, make_backend
from medverify.cases.closing import names_condition
from medverify.cases.loading import load_case_arg, load_cases
from medverify.consult.pipeline import ConsultJob, run_consult_job
from medverify.consult.records import DIMENSIONS
from medverify.demo import DEFAULT_CASES, DEMO_MAX_TOKENS, DEMO_TURNS, run_name
from medverify.grading.results import ExampleResult

ROOT = Path(__file__).parents[1]
HELDOUT = ROOT / "benchmarks" / "data" / "heldout_agentclinic_extended20.jsonl"
GENERAL_QUESTIONS = (
    "What are the common signs of dehydration in adults?",
    "How can I lower my blood pressure without medication?",
    "Is it safe to take ibuprofen and paracetamol together for a headache?",
)


def bootstrap_ci(
    diffs: list[float], *, resamples: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """A 95% percentile interval of the mean of paired differences."""
    if len(diffs) < 2:
        return None
    rng = random.Random(seed)
    means = sorted(sum(rng.choice(diffs) for _ in diffs) / len(diffs) for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def per_case(examples: list[ExampleResult], results: Any) -> dict[str, dict[str, float | None]]:
    """Every measure of every consultation, keyed by case id."""
    rows: dict[str, dict[str, float | None]] = {}
    summaries = {c.key: c for c in results.cases}
    for ex in examples:
        c = summaries[ex.prompt_id]
        row: dict[str, float | None] = {"overall": ex.score}
        for dim in DIMENSIONS:
            row[dim] = ex.metrics.get(f"dimension:{dim}")
        row["inquiry"] = c.scan.inquiry
        row["exam_tests_recall"] = c.scan.exam_tests_recall
        row["facts_elicited"] = c.facts_elicited / c.facts_total if c.facts_total else None
        row["diagnosis_named"] = float(names_condition(c.stated_diagnosis))
        row["diagnosis_correct"] = float(c.diagnosis_correct)
        row["diagnosis_in_differential"] = float(c.scan.diagnosis_in_differential)
        rows[c.case_id] = row
    return rows


def compare(base: dict, trained: dict) -> dict[str, Any]:
    """Means of both doctors and the paired difference with its interval, per measure."""
    out: dict[str, Any] = {}
    measures = next(iter(base.values())).keys()
    for m in measures:
        pairs = [
            (base[k][m], trained[k][m])
            for k in base
            if k in trained and base[k][m] is not None and trained[k][m] is not None
        ]
        if not pairs:
            out[m] = {"n": 0}
            continue
        diffs = [t - b for b, t in pairs]
        ci = bootstrap_ci(diffs)
        out[m] = {
            "n": len(pairs),
            "base": sum(b for b, _ in pairs) / len(pairs),
            "trained": sum(t for _, t in pairs) / len(pairs),
            "diff": sum(diffs) / len(diffs),
            "ci95": list(ci) if ci else None,
        }
    return out


async def general_replies(specs: list[str]) -> dict[str, list[dict[str, str]]]:
    """Greedy replies of each model to the general health questions."""
    out: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        backend = make_backend(spec, BackendOptions(use_cache=False))
        try:
            out[spec] = [
                {
                    "question": q,
                    "reply": (
                        await backend.complete([{"role": "user", "content": q}], max_tokens=96)
                    ).text.strip(),
                }
                for q in GENERAL_QUESTIONS
            ]
        finally:
            await backend.aclose()
    return out


def plot_rounds(rounds: list[dict[str, Any]], path: Path) -> Path | None:
    """The mean verifier reward and facts elicited of the searched consultations per round."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    xs = [r["round"] + 1 for r in rounds]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(xs, [r["mean_reward"] for r in rounds], marker="o", label="mean verifier reward")
    ax.plot(xs, [r["facts_elicited"] for r in rounds], marker="s", label="facts elicited")
    ax.set_xlabel("round (searched consultations, policy of the round before)")
    ax.set_xticks(xs)
    ax.legend()
    ax.set_title("expert iteration against the verifier")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="local")
    parser.add_argument("--trained", default="local:doctor")
    parser.add_argument("--limit", type=int, default=None, help="at most N held-out cases")
    parser.add_argument("--turns", type=int, default=DEMO_TURNS)
    parser.add_argument("--max-tokens", type=int, default=DEMO_MAX_TOKENS)
    parser.add_argument("--run-dir", type=Path, default=Path("medverify-runs/train-doctor-bench"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    heldout = load_cases(HELDOUT)
    demo = [load_case_arg(c) for c in DEFAULT_CASES]
    cases = (heldout + demo)[: args.limit] if args.limit else heldout + demo
    heldout_ids = {c.id for c in heldout}
    split = {c.id: ("heldout20" if c.id in heldout_ids else "demo4") for c in cases}
    runs: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    reported: dict[str, dict[str, Any]] = {}
    for spec in (args.base, args.trained):
        job = ConsultJob(
            cases=cases,
            run_dir=args.run_dir / run_name(spec),
            doctor=spec,
            personas=["case"],
            max_turns=args.turns,
            doctor_max_tokens=args.max_tokens,
            concurrency=4,
            doctor_options=BackendOptions(use_cache=False),
        )
        # Fresh every time: the wall time is part of the result, and a kept run directory
        # would resume instead of playing.
        shutil.rmtree(job.run_dir, ignore_errors=True)
        start = time.perf_counter()
        outcome = asyncio.run(run_consult_job(job))
        seconds[spec] = time.perf_counter() - start
        runs[spec] = per_case(outcome.examples, outcome.results)
        r = outcome.results
        reported[spec] = {
            "overall": r.overall.score,
            "overall_std": r.overall.std,
            "dimensions": {k: v.score for k, v in r.dimensions.items()},
            "diagnosis_given_rate": r.process.diagnosis_given_rate,
            "diagnosis_correct_rate": r.process.diagnosis_correct_rate,
            "mean_fact_recall": r.process.mean_fact_recall,
            "terminations": r.process.terminations,
        }
    base, trained = runs[args.base], runs[args.trained]
    result: dict[str, Any] = {
        "what": "base vs trained doctor on held-out cases (paired, 95% bootstrap intervals)",
        "base": args.base,
        "trained": args.trained,
        "settings": {
            "turns": args.turns,
            "doctor_max_tokens": args.max_tokens,
            "patient": "offline",
            "grader": "local (offline: evidence checks + detectors)",
            "rubric": "core",
        },
        "cases": {"n": len(cases), "ids": [c.id for c in cases], "split": split},
        "all": compare(base, trained),
        "by_split": {
            name: compare(
                {k: v for k, v in base.items() if split[k] == name},
                {k: v for k, v in trained.items() if split[k] == name},
            )
            for name in sorted(set(split.values()))
        },
        "as_reported": reported,
        "per_case": {k: {"base": base[k], "trained": trained.get(k)} for k in base},
        "wall_seconds": seconds,
    }
    made = provenance()
    rounds = made.get("rounds", [])
    if rounds:
        png = plot_rounds(rounds, RESULTS / "train_doctor_rounds.png")
        result["training"] = {
            "rounds": rounds,
            "curve": str(png.relative_to(ROOT)) if png else None,
            "recipe": made.get("config"),
            "commit": made.get("commit"),
        }
    result["general_questions"] = asyncio.run(general_replies([args.base, args.trained]))
    path = write_result("train_doctor", result, args.out)
    a = result["all"]
    ci = a["overall"].get("ci95") or [float("nan")] * 2
    rep = [reported[s]["overall"] for s in (args.base, args.trained)]
    print(
        f"train_doctor: {len(cases)} held-out cases, overall (clipped mean) {rep[0]:.3f} -> "
        f"{rep[1]:.3f}; per-case score {a['overall']['base']:.3f} -> "
        f"{a['overall']['trained']:.3f} (diff {a['overall']['diff']:+.3f}, 95% CI "
        f"{ci[0]:+.3f}..{ci[1]:+.3f}); facts {a['facts_elicited']['base']:.3f} -> "
        f"{a['facts_elicited']['trained']:.3f}; diagnosis named "
        f"{a['diagnosis_named']['base']:.2f} -> {a['diagnosis_named']['trained']:.2f}, correct "
        f"{a['diagnosis_correct']['base']:.2f} -> {a['diagnosis_correct']['trained']:.2f} "
        f"-> {path}"
    )


if __name__ == "__main__":
    main()
