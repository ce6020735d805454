"""Consultation benchmark: does it separate doctors, and what does a case cost on CPU?

Two parts, side by side in one run:

* ``separation``: the four scripted reference doctors (good / wrong / guess / unsafe) on every
  bundled case, graded by the offline local grader: mean score per doctor and per dimension,
  and on how many cases the good doctor beats each bad one (the benchmark's sanity check).
* ``embedded``: the embedded doctor model (SmolLM2-135M-Instruct, CPU) on a few bundled cases,
  as ``medverify demo`` runs it: wall time per case, split into consultation, rubric and
  grading, and its scores.

    python benchmarks/consult_bench.py [--cases N] [--embedded-cases 4] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from _common import write_result
from medverify.backends.registry import BackendOptions
from medverify.cases.loading import load_bundled_cases
from medverify.consult import ConsultJob, run_consult_job
from medverify.consult.records import DIMENSIONS
from medverify.demo import DEFAULT_CASES, demo_job


async def separation(cases, tmp: Path) -> dict:
    rows = {}
    for doctor in ("scripted:good", "scripted:wrong", "scripted:guess", "scripted:unsafe"):
        start = time.perf_counter()
        job = ConsultJob(
            cases=cases, run_dir=tmp / doctor, doctor=doctor, max_turns=40, concurrency=8
        )
        outcome = await run_consult_job(job)
        results = outcome.results
        rows[doctor] = {
            "overall": results.overall.score,
            "std": results.overall.std,
            "dimensions": {d: s.score for d, s in results.dimensions.items()},
            "per_case": {c.case_id: c.score for c in results.cases},
            "mean_criteria_per_case": sum(c.n_criteria for c in results.cases) / len(cases),
            "wall_s": round(time.perf_counter() - start, 2),
        }
    good = rows["scripted:good"]["per_case"]
    for doctor, row in rows.items():
        if doctor != "scripted:good":
            row["good_beats_on"] = sum(
                1 for c, s in row["per_case"].items() if good[c] is not None and good[c] > s
            )
    return rows


async def embedded(case_ids, tmp: Path) -> dict:
    by_id = {c.id: c for c in load_bundled_cases()}
    # No response cache: the wall time must be the model's, not a replay of an earlier run.
    job = demo_job(
        [by_id[c] for c in case_ids], tmp / "embedded", options=BackendOptions(use_cache=False)
    )
    start = time.perf_counter()
    outcome = await run_consult_job(job)
    wall = time.perf_counter() - start
    results = outcome.results
    return {
        "doctor": "local (SmolLM2-135M-Instruct, embedded)",
        "cases": list(case_ids),
        "max_turns": job.max_turns,
        "doctor_max_tokens": job.doctor_max_tokens,
        "concurrency": job.concurrency,
        "wall_s": round(wall, 1),
        "wall_s_per_case": round(wall / len(case_ids), 1),
        "overall": results.overall.score,
        "dimensions": {d: s.score for d, s in results.dimensions.items()},
        "diagnosis_correct_rate": results.process.diagnosis_correct_rate,
        "mean_fact_recall": results.process.mean_fact_recall,
        "doctor_usage": results.usage.get("doctor"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=None, help="bundled cases for separation")
    parser.add_argument("--embedded-cases", type=int, default=len(DEFAULT_CASES))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cases = load_bundled_cases()[: args.cases] if args.cases else load_bundled_cases()
    with tempfile.TemporaryDirectory() as tmp:
        sep = asyncio.run(separation(cases, Path(tmp)))
        emb = (
            asyncio.run(embedded(DEFAULT_CASES[: args.embedded_cases], Path(tmp)))
            if args.embedded_cases
            else None
        )
    path = write_result(
        "consult_bench",
        {
            "grader": "local",
            "rubric_writer": None,
            "n_cases": len(cases),
            "dimensions": list(DIMENSIONS),
            "separation": sep,
            "embedded": emb,
        },
        args.out,
    )
    good = sep["scripted:good"]["overall"]
    beats = ", ".join(
        f"{d.split(':')[1]} {r['overall']:.2f} (good wins {r['good_beats_on']}/{len(cases)})"
        for d, r in sep.items()
        if d != "scripted:good"
    )
    emb_txt = (
        f"; embedded doctor {emb['overall']:.2f}, {emb['wall_s_per_case']} s/case" if emb else ""
    )
    print(f"consult_bench: good {good:.2f} vs {beats}{emb_txt} -> {path}")


if __name__ == "__main__":
    main()
