"""HealthBench grading throughput against a slow judge, and the cost of an identical rerun.

Grades N criteria (default 10,000: fixture rows replicated with new prompt ids) through the real
``healthbench grade`` pipeline (run store, cache, judge prompt and parsing) against the fake
OpenAI-compatible server in its own process, answering as a keyword judge after a fixed latency.
Reports calls/s as a ratio of the ideal ``concurrency / latency`` (target >= 0.8 at 128), the
client CPU time per call, and the calls made by two reruns: same run dir (run store) and a new run
dir with the same cache (response cache). Both should be 0.

    python benchmarks/healthbench_throughput.py [--criteria 10000] [--latency 0.2] [-c 128]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import start_fake_server, write_result
from medverify.backends.registry import BackendOptions
from medverify.healthbench.pipeline import HealthBenchJob, run_job

FIXTURE = Path(__file__).parents[1] / "tests" / "fixtures" / "healthbench" / "hard_sample5.jsonl"


def build_data(directory: Path, n_criteria: int) -> tuple[Path, Path, int]:
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    data, completions, total, copy = [], [], 0, 0
    while total < n_criteria:
        for row in rows:
            new = dict(row, prompt_id=f"{row['prompt_id']}-{copy}")
            data.append(new)
            completions.append(
                {
                    "prompt_id": new["prompt_id"],
                    "completion": f"Answer {copy}: rest, fluids, and see a doctor.",
                }
            )
            total += len(row["rubrics"])
            if total >= n_criteria:
                break
        copy += 1
    data_path, comp_path = directory / "data.jsonl", directory / "completions.jsonl"
    data_path.write_text("".join(json.dumps(r) + "\n" for r in data))
    comp_path.write_text("".join(json.dumps(c) + "\n" for c in completions))
    return data_path, comp_path, total


def server_requests(base_url: str) -> int:
    with urllib.request.urlopen(base_url.replace("/v1", "/_fake/stats")) as resp:
        return json.load(resp)["requests"]


async def grade(data: Path, comps: Path, run_dir: Path, base_url: str, cache: Path, c: int):
    job = HealthBenchJob(
        data=data,
        completions=comps,
        mode="completions",
        grader="openai:judge",
        run_dir=run_dir,
        grader_concurrency=c,
        grader_options=BackendOptions(
            base_url=base_url, api_key="", concurrency=c, cache_path=cache
        ),
    )
    return await run_job(job)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--criteria", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("-c", "--concurrency", type=int, default=128)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    proc, base_url = start_fake_server(args.latency, responder="keyword-judge")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmpdir = Path(tmp)
            data, comps, n = build_data(tmpdir, args.criteria)
            cache = tmpdir / "cache.sqlite"
            before = server_requests(base_url)
            cpu0, start = time.process_time(), time.perf_counter()
            outcome = asyncio.run(
                grade(data, comps, tmpdir / "run", base_url, cache, args.concurrency)
            )
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
            calls = server_requests(base_url) - before
            before = server_requests(base_url)
            t1 = time.perf_counter()
            asyncio.run(grade(data, comps, tmpdir / "run", base_url, cache, args.concurrency))
            rerun_store_s = time.perf_counter() - t1
            rerun_store_calls = server_requests(base_url) - before
            before = server_requests(base_url)
            t2 = time.perf_counter()
            asyncio.run(grade(data, comps, tmpdir / "run2", base_url, cache, args.concurrency))
            rerun_cache_s = time.perf_counter() - t2
            rerun_cache_calls = server_requests(base_url) - before
    finally:
        proc.terminate()
        proc.wait(10)
    ideal = args.concurrency / args.latency
    rate = calls / elapsed
    result = {
        "what": "healthbench grade pipeline vs fake keyword judge in its own process",
        "criteria": n,
        "grader_calls": calls,
        "latency_s": args.latency,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 2),
        "calls_per_s": round(rate, 1),
        "ideal_calls_per_s": ideal,
        "ratio_of_ideal": round(rate / ideal, 3),
        "client_cpu_ms_per_call": round(1000 * cpu / max(calls, 1), 3),
        "overall_score": outcome.results.overall.score,
        "rerun_same_run_dir": {"calls": rerun_store_calls, "seconds": round(rerun_store_s, 2)},
        "rerun_new_run_dir_same_cache": {
            "calls": rerun_cache_calls,
            "seconds": round(rerun_cache_s, 2),
        },
        "target": "ratio_of_ideal >= 0.8 at concurrency 128; reruns 0 calls",
    }
    path = write_result("healthbench_throughput", result, args.out)
    print(
        f"healthbench_throughput: {calls} grader calls in {elapsed:.1f}s = {rate:.0f}/s, "
        f"{result['ratio_of_ideal']} of ideal at c={args.concurrency}, "
        f"{result['client_cpu_ms_per_call']} ms CPU/call; reruns: {rerun_store_calls} calls "
        f"(run store), {rerun_cache_calls} calls (cache) -> {path}"
    )


if __name__ == "__main__":
    main()
