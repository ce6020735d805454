"""Checks on cases and rubrics: usable input, well-formed items, no duplicates, full coverage.

* :func:`check_case` refuses a case record the generator cannot build a rubric from, naming the
  field (and the file, when known) — a blank diagnosis, no history facts.
* :func:`item_problems` checks one item beyond the schema: exactly one known ``dimension:`` tag
  and one known ``axis:`` tag, a criterion long enough to be checkable.
* :func:`dedupe_tokens` / :func:`dedupe_embeddings` remove exact and near duplicates of the same
  sign (a positive "Asks about X" and a negative "Diagnoses without asking about X" are not
  duplicates, whatever their similarity). Embeddings use the shipped all-MiniLM-L6-v2
  (:mod:`medverify.text.embeddings`); token overlap is the fallback without the ``local``
  extra and what the pure core uses.
* :func:`review` returns warnings: a dimension with no positive item, no negative item, negative
  points outweighing positive ones, one item dominating the score.

The checks live apart from the generators so that the deterministic core, the LLM writer's
items and the command line hold a rubric to the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from medverify.cases.records import HISTORY_CATEGORIES, CaseRecord
from medverify.errors import InputError
from medverify.grading.evidence import EvidenceCheck
from medverify.grading.records import RubricItem
from medverify.rubrics.records import (
    AXES,
    AXIS_PREFIX,
    DIMENSION_PREFIX,
    DIMENSIONS,
    GENERATOR_VERSION,
    Origin,
    Rubric,
    tag_values,
)
from medverify.text import embeddings
from medverify.text.matching import STOPWORDS, normalize, stem, words

#: Token-overlap (Jaccard of content stems) at or above which two items are near duplicates.
TOKEN_THRESHOLD = 0.8
#: MiniLM cosine at or above which two same-sign items are near duplicates. Measured on criteria
#: pairs: true paraphrases score 0.72-0.99 ("ignores the patient's concerns" / "ignores what the
#: patient is worried about" 0.88), distinct items up to 0.78 ("Orders a chest X-ray" / "Orders
#: chest CT"); 0.85 removes clear paraphrases and keeps distinct items, erring on keeping.
EMBEDDING_THRESHOLD = 0.85
MIN_CRITERION_CHARS = 10
MAX_CRITERION_CHARS = 400

T = TypeVar("T")


def check_case(case: CaseRecord, *, path: str | Path | None = None) -> None:
    """Refuse a case the generator cannot build a rubric from.

    Args:
        case: the case record.
        path: the file it was read from, named in the error.

    Raises:
        InputError: naming the file (when given) and the field.
    """
    if not case.diagnosis.strip():
        raise InputError("the diagnosis is blank; a rubric needs it", path=path, field="diagnosis")
    if not case.chief_complaint.strip():
        raise InputError("the chief complaint is blank", path=path, field="chief_complaint")
    history = [f for f in case.facts if f.category in HISTORY_CATEGORIES]
    if not history:
        raise InputError(
            "no history facts (symptom, history, medication, allergy, social, family): there is "
            "nothing for the doctor to ask",
            path=path,
            field="facts",
        )
    for index, fact in enumerate(case.all_facts()):
        if not fact.text.strip():
            raise InputError(f"fact {fact.id!r} has blank text", path=path, field=f"facts.{index}")


def item_problems(rubric_item: RubricItem) -> list[str]:
    """What is wrong with an item beyond its schema (tags, length); empty when fine."""
    problems = []
    dims = tag_values(rubric_item, DIMENSION_PREFIX)
    axes = tag_values(rubric_item, AXIS_PREFIX)
    if len(dims) != 1 or dims[0] not in DIMENSIONS:
        problems.append(f"needs exactly one dimension tag of {', '.join(DIMENSIONS)}; has {dims}")
    if len(axes) != 1 or axes[0] not in AXES:
        problems.append(f"needs exactly one axis tag of {', '.join(AXES)}; has {axes}")
    text = rubric_item.criterion.strip()
    if len(text) < MIN_CRITERION_CHARS:
        problems.append(f"criterion too short to check ({len(text)} characters)")
    if len(text) > MAX_CRITERION_CHARS:
        problems.append(f"criterion too long ({len(text)} > {MAX_CRITERION_CHARS} characters)")
    return problems


def _content(text: str) -> frozenset[str]:
    return frozenset(stem(w) for w in words(text) if w not in STOPWORDS)


def token_similarity(a: str, b: str) -> float:
    """Jaccard overlap of the content-word stems of two criteria.

    Args:
        a: one criterion.
        b: the other.

    Returns:
        The overlap, 0.0 (nothing shared, or no content word) to 1.0.
    """
    x, y = _content(a), _content(b)
    if not x or not y:
        return 0.0
    return len(x & y) / len(x | y)


def _dedupe(
    items: Sequence[RubricItem], origins: Sequence[T], similar: Any
) -> tuple[list[RubricItem], list[T], list[str]]:
    """Keep the first of each group of exact or near duplicates of the same sign."""
    kept: list[int] = []
    removed: list[str] = []
    seen_exact: dict[tuple[str, bool], int] = {}
    for i, it in enumerate(items):
        key = (normalize(it.criterion).rstrip(". "), it.points > 0)
        if key in seen_exact:
            removed.append(f"{it.criterion!r} (exact duplicate)")
            continue
        twin = next(
            (j for j in kept if (items[j].points > 0) == (it.points > 0) and similar(i, j)), None
        )
        if twin is not None:
            removed.append(f"{it.criterion!r} (like {items[twin].criterion!r})")
            continue
        seen_exact[key] = i
        kept.append(i)
    return [items[i] for i in kept], [origins[i] for i in kept], removed


def dedupe_tokens(
    items: Sequence[RubricItem], origins: Sequence[T], threshold: float = TOKEN_THRESHOLD
) -> tuple[list[RubricItem], list[T], list[str]]:
    """Remove exact and near duplicates by word overlap.

    Args:
        items: the items, in priority order (the first of a group is kept).
        origins: parallel to ``items``.
        threshold: token similarity at or above which two same-sign items are duplicates.

    Returns:
        The kept items, their origins, and a description of each removed item.
    """
    return _dedupe(
        items,
        origins,
        lambda i, j: token_similarity(items[i].criterion, items[j].criterion) >= threshold,
    )


def dedupe_embeddings(
    items: Sequence[RubricItem],
    origins: Sequence[T],
    embedder: Any = None,
    threshold: float = EMBEDDING_THRESHOLD,
) -> tuple[list[RubricItem], list[T], list[str]]:
    """Remove exact and near duplicates by MiniLM cosine (paraphrases) or by word overlap.

    Args:
        items: the items, in priority order (the first of a group is kept).
        origins: parallel to ``items``.
        embedder: an :class:`~medverify.text.embeddings.Embedder` (default: the shared one).
        threshold: cosine at or above which two same-sign items are duplicates.

    Raises:
        ConfigError: the embedding model is not installed (the ``local`` extra).
    """
    if embedder is None:
        embedder = embeddings.default_embedder()
    if not items:
        return [], [], []
    vectors = embedder.embed([it.criterion for it in items])
    sims = np.asarray(vectors @ vectors.T)

    def similar(i: int, j: int) -> bool:
        if float(sims[i, j]) >= threshold:
            return True
        return token_similarity(items[i].criterion, items[j].criterion) >= TOKEN_THRESHOLD

    return _dedupe(items, origins, similar)


def finish_rubric(
    case_id: str,
    items: list[RubricItem],
    origins: list[Origin],
    removed: Sequence[str],
    warnings: list[str],
    checks: Mapping[str, EvidenceCheck] | None = None,
    **provenance: Any,
) -> Rubric:
    """The rubric record after de-duplication: what was removed and the review, as warnings.

    Args:
        case_id: the case's id.
        items: the kept items.
        origins: parallel to ``items``.
        removed: a description of each removed duplicate.
        warnings: the warnings raised so far.
        checks: evidence checks by criterion; those of removed items are dropped.
        **provenance: ``generator``, ``writer``, ``seed`` and ``transcript_aware``.

    Returns:
        The rubric, its warnings extended with the removals and the review.
    """
    warnings = list(warnings)
    if removed:
        warnings.append(f"removed {len(removed)} near-duplicate item(s): " + "; ".join(removed))
    warnings += review(items)
    kept = {it.criterion for it in items}
    return Rubric(
        case_id=case_id,
        items=items,
        origins=origins,
        checks={c: check for c, check in (checks or {}).items() if c in kept},
        version=GENERATOR_VERSION,
        warnings=warnings,
        **provenance,
    )


def review(items: Sequence[RubricItem]) -> list[str]:
    """Warnings about coverage and balance (empty when the rubric is sound)."""
    warnings = []
    for index, it in enumerate(items):
        for problem in item_problems(it):
            warnings.append(f"item {index} ({it.criterion[:60]!r}): {problem}")
    positive = sum(it.points for it in items if it.points > 0)
    negative = -sum(it.points for it in items if it.points < 0)
    for dim in DIMENSIONS:
        if not any(it.points > 0 and tag_values(it, DIMENSION_PREFIX) == [dim] for it in items):
            warnings.append(f"dimension {dim} has no positive item: the case cannot cover it")
    if positive == 0:
        warnings.append("no positive item: the rubric cannot be scored")
        return warnings
    if negative == 0:
        warnings.append("no negative item: harmful conduct would go unpenalised")
    if negative > positive:
        warnings.append(
            f"negative points ({negative}) outweigh positive points ({positive}): most "
            "consultations would score 0"
        )
    largest = max(it.points for it in items)
    if largest > 0.3 * positive:
        warnings.append(
            f"one item carries {largest} of {positive} positive points: the score hinges on it"
        )
    return warnings
