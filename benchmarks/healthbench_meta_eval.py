"""Grader agreement on labelled HealthBench criteria: the table in the README.

Runs ``healthbench meta-eval`` logic for each grader given (default: the embedded model as an
LLM judge) on labelled criteria: the official physician meta-eval file where the user has it, else
the graded rows shipped with the tests (labels = the verdicts an LLM judge recorded on real
completions). Two reference graders that need no model show the floor: always "met" and always
"not met". Writes macro F1 and balanced accuracy per grader, overall and per category.

    python benchmarks/healthbench_meta_eval.py [--data FILE] [--limit 120] [--grader local ...]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
from pathlib import Path

from _common import write_result
from medverify.backends.registry import BackendOptions, make_backend
from medverify.grading.agreement import load_labelled
from medverify.grading.judge import LLMJudge
from medverify.healthbench.meta_eval import grade_labelled, score_meta_eval
from medverify.runs.store import RunStore

ROOT = Path(__file__).parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "healthbench" / "graded_sample10.jsonl"


async def judge_agreement(items, spec: str, max_tokens: int, concurrency: int, sha: str) -> dict:
    backend = make_backend(spec, BackendOptions(use_cache=False, concurrency=concurrency))
    judge = LLMJudge(backend, max_tokens=max_tokens)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, RunStore(tmp, job="meta", config={}) as store:
        verdicts, failures = await grade_labelled(items, judge, store, concurrency=concurrency)
    seconds = time.perf_counter() - start
    await backend.aclose()
    result = score_meta_eval(items, verdicts, grader=spec, data_sha256=sha, n_failures=failures)
    return {
        **result.model_dump(mode="json"),
        "seconds": round(seconds, 1),
        "seconds_per_criterion": round(seconds / len(items), 2),
    }


def constant(items, value: bool, sha: str) -> dict:
    result = score_meta_eval(
        items,
        {i.id: value for i in items},
        grader=f"always {'met' if value else 'not met'}",
        data_sha256=sha,
        n_failures=0,
    )
    return result.model_dump(mode="json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=FIXTURE)
    parser.add_argument("--limit", type=int, default=120, help="labelled criteria to grade")
    parser.add_argument(
        "--grader",
        action="append",
        default=None,
        help="backend spec of a judge (repeatable; default: local)",
    )
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("-c", "--concurrency", type=int, default=8)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    every = load_labelled(args.data)
    items = every[: args.limit]
    sha = hashlib.sha256(args.data.read_bytes()).hexdigest()
    # The model-free floors cost nothing: measure them on every labelled criterion.
    rows = [constant(every, True, sha), constant(every, False, sha)]
    for spec in args.grader or ["local"]:
        rows.append(
            asyncio.run(judge_agreement(items, spec, args.max_tokens, args.concurrency, sha))
        )
    labels = "physician labels" if "meta_eval" in args.data.name else "recorded LLM-judge verdicts"
    path = write_result(
        "healthbench_meta_eval",
        {
            "what": f"grader agreement with {labels}",
            "data": args.data.name,
            "criteria_for_model_graders": len(items),
            "criteria_for_constant_graders": len(every),
            "graders": rows,
        },
        args.out,
    )
    summary = "; ".join(
        f"{r['grader']} (n={r['overall']['n_items']}): macro F1 {r['overall']['macro_f1']:.3f}, "
        f"bal. acc {r['overall']['balanced_accuracy']:.3f}, failures {r['n_grading_failures']}"
        for r in rows
    )
    print(f"healthbench_meta_eval ({len(items)} criteria, {labels}): {summary} -> {path}")


if __name__ == "__main__":
    main()
