"""Scores from verdicts, exactly as HealthBench's reference code computes them.

Pure functions, no I/O: the same code scores evaluations and computes training rewards.

* Example score = points of met criteria / sum of positive points (``None`` when a rubric has
  no positive points). Negative criteria that are met subtract; the example score may be below
  0 or, in principle, above 1 — clipping happens only on the mean.
* Tag scores per example: every example-level tag (``theme:*``, ``physician_agreed_category:*``)
  gets the example's score; every rubric-level tag (``axis:*``, ``level:*``, ``cluster:*``,
  ``dimension:*``) is scored over the items carrying it, kept only when defined.
* Aggregate = mean over examples clipped to [0, 1], with the standard deviation of 1,000
  bootstrap means (each clipped) and n. Unlike the reference, the bootstrap is seeded, so a
  rerun reports the same std.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel

from medverify.grading.records import RubricItem

OVERALL = "overall_score"


class Stat(BaseModel):
    """A clipped mean with its bootstrap standard deviation over n examples."""

    score: float
    std: float
    n: int


def example_score(items: Sequence[RubricItem], met: Sequence[bool]) -> float | None:
    """Points achieved over positive points available; ``None`` if none are positive."""
    if len(items) != len(met):
        raise ValueError(f"{len(items)} rubric items but {len(met)} verdicts")
    possible = sum(item.points for item in items if item.points > 0)
    if possible == 0:
        return None
    achieved = sum(item.points for item, ok in zip(items, met, strict=True) if ok)
    return achieved / possible


def example_metrics(
    items: Sequence[RubricItem], met: Sequence[bool], example_tags: Iterable[str] = ()
) -> dict[str, float]:
    """``overall_score`` plus every example-level and rubric-level tag score of one example."""
    overall = example_score(items, met)
    if overall is None:
        return {}
    metrics: dict[str, float] = {OVERALL: overall}
    for tag in example_tags:
        metrics[tag] = overall
    by_tag: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        for tag in item.tags:
            by_tag.setdefault(tag, []).append(index)
    for tag, indexes in by_tag.items():
        score = example_score([items[i] for i in indexes], [met[i] for i in indexes])
        if score is not None:
            metrics[tag] = score
    return metrics


def clipped_mean(values: Sequence[float]) -> float:
    """Mean clipped to [0, 1]."""
    return float(np.clip(np.mean(np.asarray(values, dtype=float)), 0.0, 1.0))


def bootstrap_std(values: Sequence[float], *, resamples: int = 1000, seed: int = 0) -> float:
    """Std of ``resamples`` clipped means of samples drawn with replacement."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return 0.0
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, data.size, size=(resamples, data.size))
    means = np.clip(data[draws].mean(axis=1), 0.0, 1.0)
    return float(np.std(means))


def aggregate(
    per_example: Sequence[Mapping[str, float]], *, resamples: int = 1000, seed: int = 0
) -> dict[str, Stat]:
    """Clipped mean, bootstrap std and n of every metric over the examples that have it."""
    names: list[str] = []
    for metrics in per_example:
        names.extend(k for k in metrics if k not in names)
    out = {}
    for name in names:
        values = [m[name] for m in per_example if name in m]
        out[name] = Stat(
            score=clipped_mean(values),
            std=bootstrap_std(values, resamples=resamples, seed=seed),
            n=len(values),
        )
    return out
