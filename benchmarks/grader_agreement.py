"""Agreement of the offline local grader (``--grader local``) with labelled verdicts, and its speed.

Measures, on graded HealthBench rows (default: ../shared/data/healthbench/graded_sample70.jsonl,
labels = an LLM judge's verdicts, CC BY-NC 4.0 m42-health; else the 10-row test fixture):

* the shipped weights on the prompts they were not trained on (macro F1 overall and per axis,
  the share of positive criteria marked met, and the per-example HealthBench scores the verdicts
  give: their Pearson r with the reference scores of the same rows, with a bootstrap interval);
* grouped 5-fold cross-validation by prompt_id over every row, retraining the whole pipeline in
  each fold: the shipped recipe (with sampled negatives) and the variant without them;
* trivial baselines on the same rows: always met, always not met, "met iff points > 0", and an
  embedding-only threshold (met iff the best sentence's MiniLM cosine >= t, t fitted per fold);
* criteria graded per second on this CPU (cold embedding cache, then warm).

Every grader, baselines included, gets the same figures: a grader that calls everything "met"
is the bar a useful grader's score correlation has to clear. Measuring the shipped weights on
their own source file also rewrites ``src/medverify/healthbench/local_grader_agreement.json``,
the held-out figures that ``medverify healthbench run|grade --grader local`` quotes in its
warning and in ``results.json`` (``--no-record`` leaves it alone).

    python benchmarks/grader_agreement.py [--data FILE] [--folds 5] [--out FILE] [--no-record]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from _common import write_result
from medverify.grading import local_grader as lg
from medverify.grading import local_training as lt
from medverify.grading.agreement import LabelledCriterion, load_labelled, macro_f1
from medverify.grading.scoring import example_score
from medverify.healthbench import validity
from medverify.text.embeddings import Embedder

ROOT = Path(__file__).parents[1]
SHARED = ROOT.parent / "shared" / "data" / "healthbench" / "graded_sample70.jsonl"
FIXTURE = ROOT / "tests" / "fixtures" / "healthbench" / "graded_sample10.jsonl"


@dataclass
class Rows:
    """Labelled criteria and what every grader's figures need of them."""

    items: list[LabelledCriterion]
    met: np.ndarray
    categories: list[str]
    groups: list[str]

    def subset(self, mask: np.ndarray) -> Rows:
        """The rows where ``mask`` is true."""
        keep = np.flatnonzero(mask)
        return Rows(
            items=[self.items[i] for i in keep],
            met=self.met[keep],
            categories=[self.categories[i] for i in keep],
            groups=[self.groups[i] for i in keep],
        )

    @property
    def positive(self) -> np.ndarray:
        """Whether each criterion has positive points."""
        return np.array([i.item.points > 0 for i in self.items])

    def example_scores(self, verdicts: np.ndarray) -> dict[str, float]:
        """HealthBench score per row (prompt) from per-criterion verdicts (reference semantics)."""
        index: dict[str, list[int]] = defaultdict(list)
        for i, group in enumerate(self.groups):
            index[group].append(i)
        out = {}
        for group, idx in index.items():
            score = example_score(
                [self.items[i].item for i in idx], [bool(verdicts[i]) for i in idx]
            )
            if score is not None:
                out[group] = score
        return out


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return None  # undefined (a constant grader)
    return float(np.corrcoef(x, y)[0, 1])


def bootstrap_r(x: np.ndarray, y: np.ndarray, n: int = 2000, seed: int = 0) -> list | None:
    """95% percentile interval of Pearson r over rows resampled with replacement."""
    rng = np.random.default_rng(seed)
    draws = [pearson(x[i], y[i]) for i in rng.integers(0, len(x), size=(n, len(x)))]
    values = [r for r in draws if r is not None]
    if len(values) < n // 2:
        return None
    return [round(float(v), 3) for v in np.quantile(values, [0.025, 0.975])]


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def scores(pred: np.ndarray, rows: Rows) -> dict:
    """Criterion-level agreement (macro F1, per axis, met rates) and per-example scores."""
    met, categories = rows.met, rows.categories
    pairs = list(zip(pred.tolist(), met.tolist(), strict=True))
    by_axis: dict[str, list] = defaultdict(list)
    for pair, cat in zip(pairs, categories, strict=True):
        by_axis[cat].append(pair)
    ours, ref = rows.example_scores(pred), rows.example_scores(met)
    keys = sorted(ref)
    x, y = np.array([ours[k] for k in keys]), np.array([ref[k] for k in keys])
    return {
        "macro_f1": round(macro_f1(pairs), 3),
        "accuracy": round(float(np.mean(pred == met)), 3),
        "n": len(pairs),
        "met_rate": round(float(pred.mean()), 3),
        "met_rate_positive": round(float(pred[rows.positive].mean()), 3),
        "example_scores": {
            "n_rows": len(keys),
            "pearson_r": _r(pearson(x, y)),
            "pearson_r_ci95": bootstrap_r(x, y),
            "mean_score": round(float(x.mean()), 3),
            "mean_abs_error": round(float(np.abs(x - y).mean()), 3),
        },
        "by_axis": {
            k: {"macro_f1": round(macro_f1(v), 3), "n": len(v)} for k, v in sorted(by_axis.items())
        },
    }


def reference(rows: Rows, recorded: dict[str, float]) -> dict:
    """The labels' own figures, and how far their scores are from the file's recorded ones."""
    ref = rows.example_scores(rows.met)
    diff = [abs(ref[k] - recorded[k]) for k in ref if k in recorded]
    return {
        "met_rate": round(float(rows.met.mean()), 3),
        "met_rate_positive": round(float(rows.met[rows.positive].mean()), 3),
        "mean_score": round(float(np.mean(list(ref.values()))), 3),
        "n_rows": len(ref),
        "max_abs_diff_to_recorded_score": round(max(diff), 6) if diff else None,
    }


def recorded_scores(path: Path) -> dict[str, float]:
    """The per-row ``score`` the reference code computed from the judge's verdicts."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if isinstance(row.get("score"), (int, float)):
                out[row["prompt_id"]] = float(row["score"])
    return out


def cross_validate(data: lt.TrainingSet, n: int, folds: int, negatives: bool) -> np.ndarray:
    pred = np.zeros(n, dtype=bool)
    for test in lt.group_folds(data.groups[:n], folds):
        held = {data.groups[i] for i in test}
        train = np.array(
            [i for i in range(len(data.groups)) if data.groups[i] not in held]
            if negatives
            else [i for i in range(n) if data.groups[i] not in held]
        )
        sub = data.subset(train)
        prior, grader = lt.fit(sub)
        cut = lt.best_threshold(sub, prior, grader)
        model = lg.LocalGrader(lg.LocalGraderWeights(prior=prior, grader=grader), embed=_no_embed)
        prob = model.covered_probability(data.rows[test], data.crit_vectors[test])
        pred[test] = (prob >= cut) ^ data.negated[test]
    return pred


def embedding_threshold(data: lt.TrainingSet, n: int, folds: int) -> np.ndarray:
    sim = data.rows[:n, list(lg.lf.FEATURE_NAMES).index("sim_max")]
    met, neg = data.met[:n], data.negated[:n]
    pred = np.zeros(n, dtype=bool)
    for test in lt.group_folds(data.groups[:n], folds):
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


def record(result: dict, data_path: Path, data_sha: str) -> Path:
    """Write the shipped weights' held-out figures where the CLI's warning reads them."""
    held = result["shipped_heldout"]
    local, always = held["local"], held["always_met"]
    return validity.write_agreement(
        validity.LocalGraderAgreement(
            weights_sha256=validity.weights_sha256() or "",
            data=data_path.name,
            data_sha256=data_sha,
            labels=result["labels"],
            rows="graded rows whose prompt the weights were not trained on",
            n_rows=local["example_scores"]["n_rows"],
            n_criteria=local["n"],
            macro_f1=local["macro_f1"],
            always_met_macro_f1=always["macro_f1"],
            met_rate_positive=local["met_rate_positive"],
            reference_met_rate_positive=held["reference"]["met_rate_positive"],
            score_pearson_r=local["example_scores"]["pearson_r"],
            always_met_score_pearson_r=always["example_scores"]["pearson_r"],
            mean_score=local["example_scores"]["mean_score"],
            reference_mean_score=held["reference"]["mean_score"],
            measured=dt.date.today().isoformat(),
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED if SHARED.is_file() else FIXTURE)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--no-record", action="store_true", help="do not rewrite local_grader_agreement.json"
    )
    args = parser.parse_args()
    items = load_labelled(args.data)
    n = len(items)
    embedder = Embedder()
    start = time.perf_counter()
    data = lt.featurize(items, embedder.embed, negatives=1)
    featurize_s = time.perf_counter() - start
    rows = Rows(
        items=items, met=data.met[:n], categories=data.categories[:n], groups=data.groups[:n]
    )
    points = np.array([i.item.points > 0 for i in items])
    recorded = recorded_scores(args.data)

    weights = lg.load_weights()
    trained = set(weights.trained_prompt_ids)
    held = np.array([g not in trained for g in rows.groups])
    shipped = lg.LocalGrader(weights, embed=_no_embed)
    prob = shipped.covered_probability(data.rows[:n], data.crit_vectors[:n])
    shipped_pred = (prob >= weights.threshold) ^ data.negated[:n]
    held_rows = rows.subset(held)
    m = int(held.sum())

    result = {
        "data": str(args.data.name),
        "labels": "LLM-judge verdicts recorded with the completions (not physicians)",
        "model": "local grader: all-MiniLM-L6-v2 features + 2 logistic regressions (numpy/scipy)",
        "n_criteria": n,
        "n_prompts": len(set(rows.groups)),
        "featurize_seconds": round(featurize_s, 1),
        "shipped_heldout": {
            "n_prompts": len(set(held_rows.groups)),
            "reference": reference(held_rows, recorded),
            "local": scores(shipped_pred[held], held_rows),
            "always_met": scores(np.ones(m, bool), held_rows),
            "always_not_met": scores(np.zeros(m, bool), held_rows),
            "points_positive": scores(points[held], held_rows),
        },
        f"grouped_{args.folds}fold_cv": {
            "reference": reference(rows, recorded),
            "local_shipped_recipe": scores(cross_validate(data, n, args.folds, True), rows),
            "local_without_sampled_negatives": scores(
                cross_validate(data, n, args.folds, False), rows
            ),
            "embedding_threshold": scores(embedding_threshold(data, n, args.folds), rows),
            "always_met": scores(np.ones(n, bool), rows),
            "always_not_met": scores(np.zeros(n, bool), rows),
            "points_positive": scores(points, rows),
        },
    }
    held_items = [i for i, h in zip(items, held, strict=True) if h]
    result["throughput"] = asyncio.run(throughput(held_items, embedder))
    path = write_result("grader_agreement", result, args.out)
    data_sha = hashlib.sha256(args.data.read_bytes()).hexdigest()
    shipped_weights = not os.environ.get(lg.WEIGHTS_ENV)
    if not args.no_record and shipped_weights and data_sha == weights.data_sha256:
        print(f"recorded the held-out figures in {record(result, args.data, data_sha)}")
    h, cv = result["shipped_heldout"], result[f"grouped_{args.folds}fold_cv"]
    print(
        f"local grader vs LLM judge on {h['n_prompts']} held-out rows "
        f"({h['local']['n']} criteria): "
        f"macro F1 {h['local']['macro_f1']} (always met {h['always_met']['macro_f1']}); "
        f"positive criteria met {h['local']['met_rate_positive']:.0%} "
        f"(judge {h['reference']['met_rate_positive']:.0%}); per-example score r "
        f"{h['local']['example_scores']['pearson_r']} "
        f"(always met {h['always_met']['example_scores']['pearson_r']}); "
        f"{args.folds}-fold CV macro F1 {cv['local_shipped_recipe']['macro_f1']}, r "
        f"{cv['local_shipped_recipe']['example_scores']['pearson_r']} "
        f"(always met {cv['always_met']['example_scores']['pearson_r']}); "
        f"{result['throughput']['cold']['criteria_per_s']} criteria/s cold, "
        f"{result['throughput']['warm']['criteria_per_s']} warm -> {path}"
    )


if __name__ == "__main__":
    main()
