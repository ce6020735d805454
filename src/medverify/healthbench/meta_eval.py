"""``medverify healthbench meta-eval`` — how far a grader agrees with physicians.

Two input formats, detected per line:

* the official meta-eval file (``2025-05-07-06-14-12_oss_meta_eval.jsonl``): a conversation, a
  completion, one rubric criterion, a ``category`` and several physicians' ``binary_labels``;
* graded HealthBench rows (like ``graded_sample70.jsonl``): a row with ``prompt_response`` and a
  judge's per-criterion ``responses``; each criterion becomes one labelled item (one label, the
  recorded judge's verdict; category = the criterion's ``axis:`` tag).

Agreement is pairwise, as in the HealthBench paper: every (grader verdict, physician label) pair
counts, and physicians are compared with each other over every pair of distinct labels on the
same item. Macro F1 (the mean of the F1 of "met" and of "not met") and balanced accuracy are
reported overall and per category.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from itertools import permutations
from typing import Any

from pydantic import BaseModel, Field

from medverify.grading import Grader, grade_rubric
from medverify.grading.agreement import Agreement, LabelledCriterion, agreement
from medverify.healthbench.evaluate import Progress
from medverify.runs.store import RunStore


class MetaEvalResult(BaseModel):
    """Grader-vs-labels agreement, and labeller-vs-labeller where items have several labels."""

    grader: str
    data_sha256: str
    overall: Agreement
    by_category: dict[str, Agreement]
    labellers_overall: Agreement | None = None
    labellers_by_category: dict[str, Agreement] = Field(default_factory=dict)
    n_grading_failures: int
    n_excluded_trained: int = 0


def exclude_trained(
    items: Sequence[LabelledCriterion], grader: object
) -> tuple[list[LabelledCriterion], int]:
    """Leave out items whose prompt the grader was trained on (``grader.trained_prompt_ids``).

    A trained grader (the local grader) measured on its own training rows would look better than
    it is; graders without training data keep every item.
    """
    trained = getattr(grader, "trained_prompt_ids", None) or frozenset()
    kept = [item for item in items if item.prompt_id is None or item.prompt_id not in trained]
    return kept, len(items) - len(kept)


def _grouped(
    items: Sequence[LabelledCriterion], pairs_of: Any
) -> tuple[Agreement | None, dict[str, Agreement]]:
    by_cat: dict[str, tuple[list[tuple[bool, bool]], int]] = {}
    all_pairs: list[tuple[bool, bool]] = []
    n_items = 0
    for item in items:
        pairs = pairs_of(item)
        if not pairs:
            continue
        n_items += 1
        all_pairs.extend(pairs)
        cat_pairs, count = by_cat.get(item.category, ([], 0))
        cat_pairs.extend(pairs)
        by_cat[item.category] = (cat_pairs, count + 1)
    if not all_pairs:
        return None, {}
    return agreement(all_pairs, n_items), {
        cat: agreement(p, n) for cat, (p, n) in sorted(by_cat.items())
    }


def score_meta_eval(
    items: Sequence[LabelledCriterion],
    verdicts: dict[str, bool],
    *,
    grader: str,
    data_sha256: str,
    n_failures: int,
    n_excluded_trained: int = 0,
) -> MetaEvalResult:
    """Agreement figures from the grader's verdicts (items without a verdict are left out)."""
    graded = [item for item in items if item.id in verdicts]
    overall, by_cat = _grouped(graded, lambda it: [(verdicts[it.id], lab) for lab in it.labels])
    lab_overall, lab_by_cat = _grouped(
        items, lambda it: list(permutations(it.labels, 2)) if len(it.labels) > 1 else []
    )
    return MetaEvalResult(
        grader=grader,
        data_sha256=data_sha256,
        overall=overall or agreement([], 0),
        by_category=by_cat,
        labellers_overall=lab_overall,
        labellers_by_category=lab_by_cat,
        n_grading_failures=n_failures,
        n_excluded_trained=n_excluded_trained,
    )


async def grade_labelled(
    items: Sequence[LabelledCriterion],
    grader: Grader,
    store: RunStore,
    *,
    concurrency: int = 32,
    progress: Progress | None = None,
) -> tuple[dict[str, bool], int]:
    """The grader's verdict on every labelled item (memoised in the run store; failures counted)."""
    limit = asyncio.Semaphore(max(1, concurrency))
    advance = progress("grading", len(items)) if progress else None

    async def one(item: LabelledCriterion) -> bool | None:
        (verdict,) = await grade_rubric(
            grader,
            item.conversation,
            item.completion,
            [item.item],
            memo=store,
            limit=limit,
            on_graded=advance,
        )
        return verdict.met

    mets = await asyncio.gather(*(one(item) for item in items))
    verdicts = {item.id: met for item, met in zip(items, mets, strict=True) if met is not None}
    return verdicts, sum(1 for met in mets if met is None)
