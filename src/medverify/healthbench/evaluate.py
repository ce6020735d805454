"""HealthBench end to end: sample completions, grade every criterion, score, report — resumably.

``medverify healthbench run`` samples a completion per prompt (and repeat) from the model under
test; ``medverify healthbench grade`` takes completions made elsewhere, or the physician-written
and reference completions shipped in the data. Either way each criterion is one grader call, each
completion and each grade is written to the run store the moment it arrives (keyed by
``prompt_id#repeat`` and ``prompt_id#repeat#criterion``, so grades can never be attached to the
wrong criterion whatever order calls finish in), and a rerun with the same ``--run-dir`` redoes
nothing that finished. Scoring is :mod:`medverify.grading.scoring`, the reference semantics.

An example with a criterion whose grading failed is left out of the scores and counted in
``n_grading_failures``: counting it as "not met" would silently lower the score.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from medverify.backends.base import Backend
from medverify.errors import ConfigError, InputError, MedverifyError
from medverify.grading import Grader, grade_rubric
from medverify.grading.records import Grade
from medverify.grading.results import CriterionVerdict, ExampleResult
from medverify.grading.scoring import OVERALL, example_metrics
from medverify.healthbench.data import HealthBenchExample
from medverify.runs.store import RunStore

log = logging.getLogger(__name__)

PHYSICIAN_GROUPS = {
    "no_reference": "Group 1",
    "aug_2024_reference": "Group 2",
    "apr_2025_reference": "Group 3",
}
PhysicianMode = Literal["no_reference", "aug_2024_reference", "apr_2025_reference"]
Progress = Callable[[str, int], Callable[..., None]]
#: Most completions per prompt (``--n-repeats``; ``repeat`` of a completions file is below it).
MAX_REPEATS = 100


class GradingFailed(MedverifyError):
    """A criterion could not be graded (recorded in the run store, retried on rerun)."""


class CompletionRecord(BaseModel):
    """A line of a completions file for ``healthbench grade``."""

    prompt_id: str
    completion: str
    repeat: int = Field(default=0, ge=0, lt=MAX_REPEATS)


def completion_key(prompt_id: str, repeat: int) -> str:
    """Run-store key of one completion."""
    return f"{prompt_id}#{repeat}"


def grade_key(prompt_id: str, repeat: int, index: int) -> str:
    """Run-store key of one criterion's grade."""
    return f"{prompt_id}#{repeat}#{index:03d}"


def load_completions(
    path: str | Path,
    *,
    prompt_ids: Collection[str] | None = None,
    data_name: str = "the data file",
) -> tuple[dict[str, str], str]:
    """Read a completions JSONL (``prompt_id``, ``completion``, optional ``repeat``).

    Args:
        path: The completions file.
        prompt_ids: The prompt ids of the data; a line with another ``prompt_id`` is refused
            (``None``: not checked).
        data_name: How the data file is named in that refusal.

    Returns:
        Completions by ``prompt_id#repeat`` and the file's sha256.

    Raises:
        InputError: naming the file, line and field of the first bad line: invalid JSON or
            fields, a ``repeat`` outside ``0..MAX_REPEATS-1``, an unknown ``prompt_id``, or a
            second completion for the same prompt and repeat.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError("file not found", path=file)
    raw = file.read_bytes()
    out: dict[str, str] = {}
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = CompletionRecord.model_validate_json(line)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or None
            raise InputError(err["msg"], path=file, line=number, field=field) from None
        if prompt_ids is not None and record.prompt_id not in prompt_ids:
            raise InputError(
                f"unknown prompt_id {record.prompt_id!r}: not in {data_name}",
                path=file,
                line=number,
                field="prompt_id",
            )
        key = completion_key(record.prompt_id, record.repeat)
        if key in out:
            raise InputError(
                f"second completion for {key}", path=file, line=number, field="prompt_id"
            )
        out[key] = record.completion
    if not out:
        raise InputError("no completions", path=file)
    return out, hashlib.sha256(raw).hexdigest()


def physician_completions(
    examples: Sequence[HealthBenchExample], mode: PhysicianMode, *, reference: bool = False
) -> tuple[list[HealthBenchExample], dict[str, str]]:
    """The physician-written (or, with ``reference``, a model reference) completion per example.

    As in the reference implementation, only examples of the mode's physician group are kept,
    and a reference completion is drawn with ``random.Random(0)`` from the group's references.
    """
    group = PHYSICIAN_GROUPS[mode]
    if reference and mode == "no_reference":
        raise ConfigError("the no_reference group has no reference completions to grade")
    rng = random.Random(0)
    kept, completions = [], {}
    for example in examples:
        data = example.ideal_completions_data or {}
        if data.get("ideal_completions_group") != group:
            continue
        if reference:
            refs = data.get("ideal_completions_ref_completions") or []
            if not refs:
                continue
            text = rng.choice(refs)
        else:
            text = data.get("ideal_completion")
        if not isinstance(text, str):
            continue
        kept.append(example)
        completions[completion_key(example.prompt_id, 0)] = text
    if not kept:
        raise ConfigError(f"no example in this file has completions of {group} ({mode})")
    return kept, completions


async def sample_completions(
    examples: Sequence[HealthBenchExample],
    model: Backend,
    store: RunStore,
    *,
    n_repeats: int = 1,
    temperature: float = 0.0,
    max_tokens: int = 2048,
    concurrency: int = 16,
    progress: Progress | None = None,
) -> dict[str, str]:
    """One completion per example and repeat, each persisted as it arrives."""
    units = {completion_key(ex.prompt_id, r): (ex, r) for ex in examples for r in range(n_repeats)}

    async def work(key: str, unit: tuple[HealthBenchExample, int]) -> dict:
        example, repeat = unit
        completion = await model.complete(
            example.messages(), temperature=temperature, max_tokens=max_tokens, seed=repeat
        )
        return {"text": completion.text, "usage": completion.usage.model_dump()}

    advance = progress("sampling", len(units)) if progress else None
    done = await store.map("completion", units, work, concurrency=concurrency, on_done=advance)
    return {key: value["text"] for key, value in done.items()}


async def grade_all(
    examples: Sequence[HealthBenchExample],
    completions: dict[str, str],
    grader: Grader,
    store: RunStore,
    *,
    n_repeats: int = 1,
    concurrency: int = 32,
    progress: Progress | None = None,
) -> dict[str, Grade]:
    """Grade every criterion of every available completion; one grader call per criterion.

    Each completion's rubric goes through :func:`~medverify.grading.grade_rubric`, memoised in the
    run store, so a rerun asks the grader only for the verdicts it does not have.
    """
    todo = [
        (ex, repeat, completions[key])
        for ex in examples
        for repeat in range(n_repeats)
        if (key := completion_key(ex.prompt_id, repeat)) in completions
    ]
    limit = asyncio.Semaphore(max(1, concurrency))
    total = sum(len(ex.rubrics) for ex, _, _ in todo)
    advance = progress("grading", total) if progress else None

    async def one(ex: HealthBenchExample, repeat: int, completion: str) -> dict[str, Grade]:
        verdicts = await grade_rubric(
            grader,
            ex.messages(),
            completion,
            ex.rubrics,
            memo=store,
            limit=limit,
            on_graded=advance,
        )
        return {
            grade_key(ex.prompt_id, repeat, index): Grade(
                met=v.met, explanation=v.explanation, error=v.error
            )
            for index, v in enumerate(verdicts)
        }

    grades: dict[str, Grade] = {}
    for part in await asyncio.gather(*(one(*unit) for unit in todo)):
        grades.update(part)
    return grades


def example_results(
    examples: Sequence[HealthBenchExample],
    completions: dict[str, str],
    grades: dict[str, Grade],
    *,
    n_repeats: int = 1,
) -> list[ExampleResult]:
    """Per-example verdicts and scores; examples with a failed or missing grade are not scored."""
    results = []
    for ex in examples:
        for repeat in range(n_repeats):
            completion = completions.get(completion_key(ex.prompt_id, repeat))
            if completion is None:
                continue
            verdicts = []
            for index, item in enumerate(ex.rubrics):
                grade = grades.get(grade_key(ex.prompt_id, repeat, index))
                verdicts.append(
                    CriterionVerdict(
                        criterion=item.criterion,
                        points=item.points,
                        tags=item.tags,
                        met=grade.met if grade else None,
                        explanation=grade.explanation if grade else "",
                        error=(grade.error if grade else "not graded"),
                    )
                )
            result = ExampleResult(
                prompt_id=ex.prompt_id,
                repeat=repeat,
                conversation=ex.messages(),
                completion=completion,
                example_tags=ex.example_tags,
                verdicts=verdicts,
            )
            if all(v.met is not None for v in verdicts):
                metrics = example_metrics(
                    ex.rubrics, [bool(v.met) for v in verdicts], ex.example_tags
                )
                result.metrics = metrics
                result.score = metrics.get(OVERALL)
            results.append(result)
    return results
