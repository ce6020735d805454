"""Score parity: medverify's HealthBench scores against an independent computation.

Replays the verdicts recorded in graded HealthBench rows (an LLM judge's ``responses``, with the
reference code's ``score`` and ``metrics``) through the real ``healthbench grade`` pipeline (fake
judge server answering the recorded verdicts), then compares, per example and per metric:

* medverify's scores vs the reference code's recorded scores, and
* medverify's scores vs a from-scratch computation in this file (no medverify import),

plus the aggregate clipped means. Target: every difference <= 1e-9.

    python benchmarks/healthbench_parity.py [--data graded.jsonl]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import tempfile
from collections import defaultdict
from pathlib import Path

from _common import write_result
from medverify.backends.registry import BackendOptions
from medverify.healthbench.pipeline import HealthBenchJob, run_job
from medverify.testing.fake_openai import FakeOpenAIServer
from medverify.testing.judges import replay_judge

ROOT = Path(__file__).parents[1]
SHARED = ROOT.parent / "shared" / "data" / "healthbench" / "graded_sample70.jsonl"
FIXTURE = ROOT / "tests" / "fixtures" / "healthbench" / "graded_sample10.jsonl"


def independent_metrics(row: dict) -> dict[str, float]:
    """HealthBench's per-example metrics, written again without any medverify code."""
    verdicts = [r["response_dict"]["criteria_met"] for r in ast.literal_eval(row["responses"])]
    rubrics = row["rubrics"]

    def score(indexes):
        positive = sum(rubrics[i]["points"] for i in indexes if rubrics[i]["points"] > 0)
        if positive <= 0:
            return None
        return sum(rubrics[i]["points"] for i in indexes if verdicts[i]) / positive

    overall = score(range(len(rubrics)))
    out = {"overall_score": overall}
    out.update({tag: overall for tag in row["example_tags"]})
    by_tag = defaultdict(list)
    for i, rubric in enumerate(rubrics):
        for tag in rubric["tags"]:
            by_tag[tag].append(i)
    for tag, indexes in by_tag.items():
        value = score(indexes)
        if value is not None:
            out[tag] = value
    return out


def completion_of(row: dict) -> str:
    turns = row["prompt_response"]
    turns = ast.literal_eval(turns) if isinstance(turns, str) else turns
    return turns[-1]["content"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED if SHARED.exists() else FIXTURE)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--keep-run",
        type=Path,
        default=None,
        help="keep the run directory (results.json, report.html) here",
    )
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    verdicts = {}
    for row in rows:
        for rubric, resp in zip(row["rubrics"], ast.literal_eval(row["responses"]), strict=True):
            verdicts[(completion_of(row), rubric["criterion"])] = resp["response_dict"][
                "criteria_met"
            ]
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeOpenAIServer(responder=replay_judge(verdicts)) as server,
    ):
        comps = Path(tmp) / "completions.jsonl"
        comps.write_text(
            "".join(
                json.dumps({"prompt_id": r["prompt_id"], "completion": completion_of(r)}) + "\n"
                for r in rows
            )
        )
        job = HealthBenchJob(
            data=args.data,
            completions=comps,
            mode="completions",
            grader="openai:replay",
            run_dir=args.keep_run or Path(tmp) / "run",
            grader_options=BackendOptions(base_url=server.base_url, api_key="", use_cache=False),
        )
        outcome = asyncio.run(run_job(job))
        ours = {
            json.loads(line)["prompt_id"]: json.loads(line)
            for line in outcome.paths["examples"].read_text().splitlines()
        }
    vs_reference = vs_independent = 0.0
    n_values = 0
    for row in rows:
        mine = ours[row["prompt_id"]]["metrics"]
        recorded = ast.literal_eval(row["metrics"])
        independent = independent_metrics(row)
        assert set(mine) == set(recorded) == set(independent), row["prompt_id"]
        for key in mine:
            vs_reference = max(vs_reference, abs(mine[key] - recorded[key]))
            vs_independent = max(vs_independent, abs(mine[key] - independent[key]))
            n_values += 1
        vs_reference = max(vs_reference, abs(mine["overall_score"] - float(row["score"])))
    independent_mean = min(
        1.0, max(0.0, sum(independent_metrics(r)["overall_score"] for r in rows) / len(rows))
    )
    aggregate_diff = abs(outcome.results.overall.score - independent_mean)
    worst = max(vs_reference, vs_independent, aggregate_diff)
    result = {
        "what": "graded HealthBench rows replayed through `healthbench grade`",
        "data": str(args.data.name),
        "examples": len(rows),
        "metric_values_compared": n_values,
        "max_abs_diff_vs_reference_recorded": vs_reference,
        "max_abs_diff_vs_independent": vs_independent,
        "aggregate_abs_diff_vs_independent": aggregate_diff,
        "overall_score": outcome.results.overall.score,
        "pass": worst <= 1e-9,
    }
    path = write_result("healthbench_parity", result, args.out)
    print(
        f"healthbench_parity: {len(rows)} examples, {n_values} metric values, max |diff| "
        f"{worst:.2e} (reference {vs_reference:.1e}, independent {vs_independent:.1e}) "
        f"{'PASS' if result['pass'] else 'FAIL'} -> {path}"
    )


if __name__ == "__main__":
    main()
