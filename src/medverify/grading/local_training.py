"""Training the offline local grader (:mod:`medverify.grading.local_grader`) on labelled verdicts.

Features of labelled criteria (plus sampled negatives: responses to other prompts), a prior on the
criterion's MiniLM embedding, and the grader on the coverage features with non-negative weights on
coverage (:data:`~medverify.grading.local_grader.MONOTONE`), fitted by L-BFGS-B; the verdict's cut
is set for macro F1 on the labelled rows. Writes ``local_grader.json``::

    python -m medverify.grading.local_training train --data labelled.jsonl --out mygrader/
    MEDVERIFY_LOCAL_GRADER=mygrader/local_grader.json medverify healthbench meta-eval ...
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from medverify.errors import InputError, MedverifyError
from medverify.grading import local_features as lf
from medverify.grading.agreement import load_labelled, macro_f1
from medverify.grading.local_grader import (
    _PRIOR,
    MONOTONE,
    LocalGraderWeights,
    LogisticWeights,
    _Featurizer,
    _Prepared,
    _sigmoid,
)
from medverify.text.embeddings import default_embedder


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    l2: float,
    nonnegative: Sequence[str] = (),
    sample_weight: np.ndarray | None = None,
) -> LogisticWeights:
    """L2-regularized logistic regression on standardized features, some weights kept >= 0.

    scikit-learn's ``LogisticRegression`` has no bounds on coefficients, and the sign constraint
    is what keeps the grader monotone in coverage; SciPy's L-BFGS-B solves the same convex
    problem with bounds. Classes are weighted to balance (as ``class_weight="balanced"``), times
    ``sample_weight`` if given.
    """
    from scipy.optimize import minimize

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    yf = y.astype(np.float64)
    sw = np.ones(len(yf)) if sample_weight is None else np.asarray(sample_weight, float)
    pos = max((sw * yf).sum() / sw.sum(), 1e-9)
    w = sw * np.where(yf > 0, 0.5 / pos, 0.5 / max(1 - pos, 1e-9))
    n, d = z.shape

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef, b = theta[:d], theta[d]
        logits = z @ coef + b
        prob = _sigmoid(logits)
        ll = w * (np.logaddexp(0, logits) - yf * logits)
        g = w * (prob - yf)
        value = ll.sum() / n + 0.5 * l2 * coef @ coef
        grad = np.concatenate([z.T @ g / n + l2 * coef, [g.sum() / n]])
        return float(value), grad

    bounds = [(0.0, None) if name in nonnegative else (None, None) for name in names]
    bounds.append((None, None))
    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    return LogisticWeights(
        names=list(names),
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=res.x[:d].tolist(),
        intercept=float(res.x[d]),
    )


class TrainingSet(BaseModel):
    """Feature rows of labelled criteria (and of sampled negatives), ready for :func:`fit`."""

    model_config = {"arbitrary_types_allowed": True}

    rows: Any  # (n, len(FEATURE_NAMES)) features of each criterion's core
    crit_vectors: Any  # (n, dim) embeddings of each criterion's core
    covered: Any  # (n,) bool: whether the response covers the core (label xor negated)
    met: Any  # (n,) bool: the label
    negated: Any  # (n,) bool
    sampled: Any  # (n,) bool: a sampled negative (another prompt's response), not a label
    groups: list[str]  # prompt id of each row (splits never cut a prompt)
    categories: list[str]

    def subset(self, index: np.ndarray) -> TrainingSet:
        """The rows at ``index``."""
        return TrainingSet(
            rows=self.rows[index],
            crit_vectors=self.crit_vectors[index],
            covered=self.covered[index],
            met=self.met[index],
            negated=self.negated[index],
            sampled=self.sampled[index],
            groups=[self.groups[i] for i in index],
            categories=[self.categories[i] for i in index],
        )


def prompt_id_of(item: Any) -> str:
    """The prompt a labelled criterion belongs to (``prompt_id`` or the id's prefix)."""
    pid = getattr(item, "prompt_id", None)
    return str(pid) if pid else str(item.id).split("#", 1)[0].split(":", 1)[0]


def featurize(
    items: Sequence[Any],
    embed: Callable[[Sequence[str]], np.ndarray],
    *,
    negatives: int = 1,
    seed: int = 0,
) -> TrainingSet:
    """Features of labelled criteria (majority label when several), plus sampled negatives.

    Labelled HealthBench pairs are all on topic: every response addresses its prompt, and what
    the judge decides turns on details MiniLM barely sees. Alone, they teach a model that
    similarity hardly matters, which is wrong for a consultation where the doctor simply never
    asked. So each criterion is also paired with ``negatives`` responses to *other* prompts
    (which certainly do not cover it; for a negated criterion that means "met"): the classic
    negative sampling of retrieval training. Measurements use the labelled rows only.
    """
    fz = _Featurizer(embed, cache_size=4096)
    prepared = [fz.prepare(i.conversation, i.completion, i.item) for i in items]
    groups = [prompt_id_of(i) for i in items]
    met = [sum(i.labels) * 2 > len(i.labels) for i in items]
    sampled = [False] * len(items)
    rng = np.random.default_rng(seed)
    by_group: dict[str, str] = {g: i.completion for g, i in zip(groups, items, strict=True)}
    others = sorted(by_group)
    extra: list[_Prepared] = []
    for index, item in enumerate(items):
        pool = [g for g in others if g != groups[index]]
        for g in rng.choice(pool, size=min(negatives, len(pool)), replace=False) if pool else []:
            extra.append(fz.prepare(item.conversation, by_group[str(g)], item.item))
            groups.append(groups[index])
            met.append(prepared[index].crit.negated)  # not covered
            sampled.append(True)
    prepared += extra
    emb = fz.embeddings(prepared)
    rows = np.stack([fz.rows(p, emb)[0] for p in prepared])
    crit = np.stack([emb[p.crit.core] for p in prepared])
    negated = np.array([p.crit.negated for p in prepared])
    met_arr = np.array(met)
    categories = [i.category for i in items] + ["sampled"] * len(extra)
    return TrainingSet(
        rows=rows,
        crit_vectors=crit,
        covered=met_arr ^ negated,
        met=met_arr,
        negated=negated,
        sampled=np.array(sampled),
        groups=groups,
        categories=categories,
    )


def group_folds(groups: Sequence[str], k: int) -> list[np.ndarray]:
    """``k`` disjoint folds of row indices, whole groups each, fixed by a hash of the group."""
    names = sorted(set(groups), key=lambda g: hashlib.sha256(g.encode()).hexdigest())
    fold_of = {g: i % k for i, g in enumerate(names)}
    idx = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(idx == f) for f in range(k)]


def fit(
    data: TrainingSet,
    *,
    l2_prior: float = 2.0,
    l2_grader: float = 0.03,
    sampled_weight: float = 0.3,
    inner_folds: int = 4,
) -> tuple[LogisticWeights, LogisticWeights]:
    """Train the prior and the grader; the grader sees out-of-fold priors, as at test time.

    The prior is fitted on labelled rows only (a sampled negative says nothing about which
    criteria tend to be met); the grader on labelled rows and sampled negatives.
    """
    dim = data.crit_vectors.shape[1]
    prior_names = [f"e{i}" for i in range(dim)]
    labelled = np.flatnonzero(~data.sampled)
    oof = np.zeros(len(data.groups))
    n_groups = len({data.groups[i] for i in labelled})
    folds = group_folds(data.groups, inner_folds) if n_groups >= inner_folds else []
    for test in folds:
        train = np.setdiff1d(labelled, test)
        w = fit_logistic(data.crit_vectors[train], data.covered[train], prior_names, l2=l2_prior)
        oof[test] = _sigmoid(w.logits(data.crit_vectors[test]))
    prior = fit_logistic(
        data.crit_vectors[labelled], data.covered[labelled], prior_names, l2=l2_prior
    )
    if not folds:
        oof = _sigmoid(prior.logits(data.crit_vectors))
    names = [*lf.FEATURE_NAMES, _PRIOR]
    x = np.column_stack([data.rows, oof])
    weight = np.where(data.sampled, sampled_weight, 1.0)
    grader = fit_logistic(
        x,
        data.covered,
        names,
        l2=l2_grader,
        nonnegative=(*MONOTONE, _PRIOR),
        sample_weight=weight,
    )
    return prior, grader


def best_threshold(data: TrainingSet, prior: LogisticWeights, grader: LogisticWeights) -> float:
    """The cut on P(covered) that maximizes macro F1 on the labelled rows.

    Sampled negatives pull the intercept down (they are easy "not covered" rows); the verdict's
    cut is set where it serves the labelled, on-topic rows.
    """
    labelled = ~data.sampled
    z = np.column_stack([data.rows[labelled], _sigmoid(prior.logits(data.crit_vectors[labelled]))])
    prob = _sigmoid(grader.logits(z))
    met, negated = data.met[labelled], data.negated[labelled]
    best, best_f1 = 0.5, -1.0
    for cut in np.round(np.arange(0.2, 0.81, 0.02), 2):
        pred = (prob >= cut) ^ negated
        f1 = macro_f1(list(zip(pred.tolist(), met.tolist(), strict=True)))
        if f1 > best_f1 + 1e-9:
            best, best_f1 = float(cut), f1
    return best


def train(
    data_path: str | Path,
    out_dir: str | Path,
    *,
    holdout: Sequence[str] = (),
    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    label_source: str = "",
    negatives: int = 1,
) -> Path:
    """Train on a labelled file and write ``local_grader.json`` into ``out_dir``.

    Args:
        data_path: a meta-eval or graded HealthBench file (see ``load_labelled``).
        out_dir: where the weights go.
        holdout: prompt ids kept out of training (for an honest held-out measurement).
        embed: embedding function (default: the shipped MiniLM).
        label_source: who labelled the data, recorded with the weights.
        negatives: responses to other prompts paired with each criterion as sampled negatives.

    Raises:
        InputError: the file cannot be read, or too few labelled criteria remain.
    """
    path = Path(data_path)
    items = [i for i in load_labelled(path) if prompt_id_of(i) not in set(holdout)]
    if len(items) < 20 or len({sum(i.labels) * 2 > len(i.labels) for i in items}) < 2:
        raise InputError("need at least 20 labelled criteria with both verdicts", path=path)
    if embed is None:
        embed = default_embedder().embed
    data = featurize(items, embed, negatives=negatives)
    l2_prior, l2_grader = 2.0, 0.03
    prior, grader = fit(data, l2_prior=l2_prior, l2_grader=l2_grader)
    weights = LocalGraderWeights(
        prior=prior,
        grader=grader,
        threshold=best_threshold(data, prior, grader),
        trained_prompt_ids=sorted(set(data.groups)),
        n_train_items=len(items),
        data_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        label_source=label_source or f"labels in {path.name}",
        l2_prior=l2_prior,
        l2_grader=l2_grader,
        sampled_negatives=negatives,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    file = out / "local_grader.json"
    file.write_text(_dump(weights), encoding="utf-8")
    return file


def _dump(weights: LocalGraderWeights) -> str:
    """Compact JSON (floats to 6 significant digits: the file ships in the wheel)."""
    payload = json.loads(weights.model_dump_json())
    for part in ("prior", "grader"):
        for key in ("mean", "scale", "coef"):
            payload[part][key] = [float(f"{v:.6g}") for v in payload[part][key]]
        payload[part]["intercept"] = float(f"{payload[part]['intercept']:.6g}")
    return json.dumps(payload, separators=(",", ":")) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: ``train --data FILE --out DIR [--holdout IDS] [--label-source WHO]``.

    Run as ``python -m medverify.grading.local_training``; returns the exit status.
    """
    parser = argparse.ArgumentParser(prog="python -m medverify.grading.local_training")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train the local grader on labelled verdicts")
    tr.add_argument("--data", required=True, help="meta-eval or graded HealthBench JSONL")
    tr.add_argument("--out", required=True, help="directory for local_grader.json")
    tr.add_argument(
        "--holdout", default=None, help="file with prompt ids (one per line) kept out of training"
    )
    tr.add_argument("--label-source", default="", help="who labelled the data (recorded)")
    args = parser.parse_args(argv)
    holdout: list[str] = []
    try:
        if args.holdout:
            holdout = Path(args.holdout).read_text(encoding="utf-8").split()
        file = train(args.data, args.out, holdout=holdout, label_source=args.label_source)
    except (MedverifyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {file}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
