"""Agreement of the offline local grader (``--grader local``) with labelled verdicts, and its speed.

Measures, on graded HealthBench rows (default: ../shared/data/healthbench/graded_sample70.jsonl,
labels = an LLM judge's verdicts, CC BY-NC 4.0 m42-health; else the 10-row test fixture):

* the shipped weights on the prompts they were not trained on (macro F1 overall and per axis);
* grouped 5-fold cross-validation by prompt_id over every row, retraining the whole pipeline in
  each fold: the shipped recipe (with sampled negatives) and the variant without them;
* trivial baselines on the same rows: always met, always not met, "met iff points > 0", and an
  embedding-only threshold (met iff the best sentence's MiniLM cosine >= t, t fitted per fold);
* criteria graded per second on this CPU (cold embedding cache, then warm).

    python benchmarks/grader_agreement.py [--data FILE] [--folds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from _common import write_result
from medverify.grading import local_grader as lg
from medverify.grading.agreement import load_labelled, macro_f1
from medverify.text.embeddings import Embedder

ROOT = Path(__file__).parents[1]
SHARED = ROOT.parent / "shared" / "data" / "healthbench" / "graded_sample70.jsonl"
FIXTURE = ROOT / "tests" / "fixtures" / "healthbench" / "graded_sample10.jsonl"


def scores(pred, met, categories) -> dict:
    pairs = list(zip(pred.tolist(), met.tolist(), strict=True))
    by_axis: dict[str, list] = defaultdict(list)
    for pair, cat in zip(pairs, categories, strict=True):
        by_axis[cat].append(pair)
    return {
        "macro_f1": round(macro_f1(pairs), 3),
        "accuracy": round(float(np.mean(pred == met)), 3),
        "n": len(pairs),
        "by_axis": {
            k: {"macro_f1": round(macro_f1(v), 3), "n": len(v)} for k, v in sorted(by_axis.items())
        },
    }


def cross_validate(data: lg.TrainingSet, n: int, folds: int, negatives: bool) -> np.ndarray:
    pred = np.zeros(n, dtype=bool)
    for test in lg.group_folds(data.groups[:n], folds):
        held = {data.groups[i] for i in test}
        train = np.array(
            [i for i in range(len(data.groups)) if data.groups[i] not in held]
            if negatives
            else [i for i in range(n) if data.groups[i] not in held]
        )
        sub = data.subset(train)
        prior, grader = lg.fit(sub)
        cut = lg.best_threshold(sub, prior, grader)
        model = lg.LocalGrader(lg.LocalGraderWeights(prior=prior, grader=grader), embed=_no_embed)
        prob = model.covered_probability(data.rows[test], data.crit_vectors[test])
        pred[test] = (prob >= cut) ^ data.negated[test]
    return pred


def embedding_threshold(data: lg.TrainingSet, n: int, folds: int) -> np.ndarray:
    sim = data.rows[:n, list(lg.lf.FEATURE_NAMES).index("sim_max")]
    met, neg = data.met[:n], data.negated[:n]
    pred = np.zeros(n, dtype=bool)
    for test in lg.group_folds(data.groups[:n], folds):
        train = np.setdiff1d(np.arange(n), test)
        cuts = np.quantile(sim[train], np.linspace(0.05, 0.95, 37))
        best = max(
            cuts,
            key=lambda t: macro_f1(list(zip(((sim[train] >= t) ^ neg[train]).tolist(),
                                            met[train].tolist(), strict=True))),
        )  # fmt: skip
        pred[test] = (sim[test] >= best) ^ neg[test]
    return pred


def _no_embed(texts):
    raise RuntimeError("features are precomputed")


async def throughput(items, embedder: Embedder) -> dict:
    grader = lg.LocalGrader(embed=embedder.embed)
    out = {}
    for label in ("cold", "warm"):
        if label == "cold":
            embedder.clear()
        start = time.perf_counter()
        grades = await asyncio.gather(
            *(grader.grade(i.conversation, i.completion, i.item) for i in items)
        )
        seconds = time.perf_counter() - start
        out[label] = {
            "criteria": len(items),
            "seconds": round(seconds, 2),
            "criteria_per_s": round(len(items) / seconds, 1),
            "failures": sum(g.failed for g in grades),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED if SHARED.is_file() else FIXTURE)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    items = load_labelled(args.data)
    n = len(items)
    embedder = Embedder()
    start = time.perf_counter()
    data = lg.featurize(items, embedder.embed, negatives=1)
    featurize_s = time.perf_counter() - start
    met, cats = data.met[:n], data.categories[:n]
    points = np.array([i.item.points > 0 for i in items])

    weights = lg.load_weights()
    trained = set(weights.trained_prompt_ids)
    held = np.array([g not in trained for g in data.groups[:n]])
    shipped = lg.LocalGrader(weights, embed=_no_embed)
    prob = shipped.covered_probability(data.rows[:n], data.crit_vectors[:n])
    shipped_pred = (prob >= weights.threshold) ^ data.negated[:n]
    held_cats = [c for c, h in zip(cats, held, strict=True) if h]

    result = {
        "data": str(args.data.name),
        "labels": "LLM-judge verdicts recorded with the completions (not physicians)",
        "model": "local grader: all-MiniLM-L6-v2 features + 2 logistic regressions (numpy/scipy)",
        "n_criteria": n,
        "n_prompts": len(set(data.groups[:n])),
        "featurize_seconds": round(featurize_s, 1),
        "shipped_heldout": {
            "n_prompts": (len({g for g, h in zip(data.groups[:n], held, strict=True) if h})),
            "local": scores(shipped_pred[held], met[held], held_cats),
            "always_met": scores(np.ones(held.sum(), bool), met[held], held_cats),
            "always_not_met": scores(np.zeros(held.sum(), bool), met[held], held_cats),
            "points_positive": scores(points[held], met[held], held_cats),
        },
        f"grouped_{args.folds}fold_cv": {
            "local_shipped_recipe": scores(cross_validate(data, n, args.folds, True), met, cats),
            "local_without_sampled_negatives": scores(
                cross_validate(data, n, args.folds, False), met, cats
            ),
            "embedding_threshold": scores(embedding_threshold(data, n, args.folds), met, cats),
            "always_met": scores(np.ones(n, bool), met, cats),
            "always_not_met": scores(np.zeros(n, bool), met, cats),
            "points_positive": scores(points, met, cats),
        },
    }
    held_items = [i for i, h in zip(items, held, strict=True) if h]
    result["throughput"] = asyncio.run(throughput(held_items, embedder))
    path = write_result("grader_agreement", result, args.out)
    cv = result[f"grouped_{args.folds}fold_cv"]
    print(
        f"local grader vs LLM judge: held-out macro F1 "
        f"{result['shipped_heldout']['local']['macro_f1']} "
        f"(always met {result['shipped_heldout']['always_met']['macro_f1']}); "
        f"{args.folds}-fold CV {cv['local_shipped_recipe']['macro_f1']} "
        f"(no negatives {cv['local_without_sampled_negatives']['macro_f1']}, "
        f"embedding threshold {cv['embedding_threshold']['macro_f1']}); "
        f"{result['throughput']['cold']['criteria_per_s']} criteria/s cold, "
        f"{result['throughput']['warm']['criteria_per_s']} warm -> {path}"
    )


if __name__ == "__main__":
    main()
