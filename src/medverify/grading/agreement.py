"""How far a grader agrees with labels: labelled verdicts, macro F1, balanced accuracy.

HealthBench's meta-eval (physician labels), the local grader's training and validation, and the
verifier benchmarks all measure a grader the same way, on the same labelled-criterion records, so
the figures they report can be compared.

Two input formats, detected per line:

* the official meta-eval file (``2025-05-07-06-14-12_oss_meta_eval.jsonl``): a conversation, a
  completion, one rubric criterion, a ``category`` and several physicians' ``binary_labels``;
* graded HealthBench rows (like ``graded_sample70.jsonl``): a row with ``prompt_response`` and a
  judge's per-criterion ``responses``; each criterion becomes one labelled item (one label, the
  recorded judge's verdict; category = the criterion's ``axis:`` tag).
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from medverify.errors import InputError
from medverify.grading.records import RubricItem


class LabelledCriterion(BaseModel):
    """One criterion on one completion, with the labels of one or more physicians (or a judge)."""

    id: str
    conversation: list[dict[str, str]]
    completion: str
    item: RubricItem
    category: str
    labels: list[bool] = Field(min_length=1)
    prompt_id: str | None = None


class Agreement(BaseModel):
    """Agreement over (prediction, label) pairs."""

    macro_f1: float
    balanced_accuracy: float
    n_pairs: int
    n_items: int


def _f1(pairs: Sequence[tuple[bool, bool]], positive: bool) -> float:
    tp = sum(1 for p, t in pairs if p == positive and t == positive)
    fp = sum(1 for p, t in pairs if p == positive and t != positive)
    fn = sum(1 for p, t in pairs if p != positive and t == positive)
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def macro_f1(pairs: Sequence[tuple[bool, bool]]) -> float:
    """Mean of the F1 of the "met" class and of the "not met" class."""
    return (_f1(pairs, True) + _f1(pairs, False)) / 2


def balanced_accuracy(pairs: Sequence[tuple[bool, bool]]) -> float:
    """Mean recall of the two classes (a class absent from the labels is left out)."""
    recalls = []
    for cls in (True, False):
        relevant = [p for p, t in pairs if t == cls]
        if relevant:
            recalls.append(sum(1 for p in relevant if p == cls) / len(relevant))
    return sum(recalls) / len(recalls) if recalls else 0.0


def agreement(pairs: Sequence[tuple[bool, bool]], n_items: int) -> Agreement:
    """Macro F1 and balanced accuracy of a set of pairs."""
    return Agreement(
        macro_f1=macro_f1(pairs),
        balanced_accuracy=balanced_accuracy(pairs),
        n_pairs=len(pairs),
        n_items=n_items,
    )


def _parse_maybe_repr(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return ast.literal_eval(value)
    return value


def _from_official(row: dict[str, Any], number: int) -> list[LabelledCriterion]:
    ident = row.get("completion_id") or f"line{number}"
    return [
        LabelledCriterion(
            id=f"{ident}:{hashlib.sha256(row['rubric'].encode()).hexdigest()[:8]}",
            conversation=row["prompt"],
            completion=row["completion"],
            item=RubricItem(criterion=row["rubric"], points=1),
            category=row.get("category") or "uncategorised",
            labels=row["binary_labels"],
            prompt_id=row.get("prompt_id"),
        )
    ]


def _from_graded(row: dict[str, Any], number: int) -> list[LabelledCriterion]:
    responses = _parse_maybe_repr(row["responses"])
    completion_turns = _parse_maybe_repr(row["prompt_response"])
    completion = (
        completion_turns[-1]["content"]
        if isinstance(completion_turns, list)
        else str(completion_turns)
    )
    if len(responses) != len(row["rubrics"]):
        raise ValueError(f"{len(responses)} verdicts for {len(row['rubrics'])} rubric items")
    out = []
    for index, (rubric, verdict) in enumerate(zip(row["rubrics"], responses, strict=True)):
        item = RubricItem.model_validate(rubric)
        axis = next((t for t in item.tags if t.startswith("axis:")), "axis:none")
        met = verdict["response_dict"]["criteria_met"]
        if not isinstance(met, bool):
            raise ValueError(f"responses.{index}.response_dict.criteria_met is not a boolean")
        out.append(
            LabelledCriterion(
                id=f"{row['prompt_id']}#{index:03d}",
                conversation=row["prompt"],
                completion=completion,
                item=item,
                category=axis,
                labels=[met],
                prompt_id=row["prompt_id"],
            )
        )
    return out


def load_labelled(path: str | Path, *, limit: int | None = None) -> list[LabelledCriterion]:
    """Labelled criteria from a meta-eval or graded HealthBench file."""
    file = Path(path)
    if not file.is_file():
        raise InputError("file not found", path=file)
    items: list[LabelledCriterion] = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            try:
                row = json.loads(line)
            except RecursionError:
                raise InputError(
                    "not valid JSON (nested too deeply)", path=file, line=number
                ) from None
            if "binary_labels" in row:
                items.extend(_from_official(row, number))
            elif "responses" in row and "prompt_response" in row:
                items.extend(_from_graded(row, number))
            else:
                raise ValueError(
                    "neither a meta-eval row (binary_labels) nor a graded row (responses)"
                )
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InputError(
                err["msg"], path=file, line=number, field=".".join(str(p) for p in err["loc"])
            ) from None
        except (ValueError, KeyError, TypeError, SyntaxError) as exc:
            raise InputError(f"{type(exc).__name__}: {exc}", path=file, line=number) from None
        if limit and len(items) >= limit:
            return items[:limit]
    if not items:
        raise InputError("no labelled criteria", path=file)
    return items
