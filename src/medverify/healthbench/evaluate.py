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

import hashlib
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from medverify import __version__
from medverify.backends.base import Backend, UsageMeter
from medverify.errors import ConfigError, InputError, MedverifyError
from medverify.grading import Grader
from medverify.grading.cost import estimate_cost
from medverify.grading.records import Grade
from medverify.grading.results import CriterionVerdict, ExampleResult, RunResults
from medverify.grading.scoring import OVERALL, Stat, aggregate, example_metrics
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


class GradingFailed(MedverifyError):
    """A criterion could not be graded (recorded in the run store, retried on rerun)."""


class CompletionRecord(BaseModel):
    """A line of a completions file for ``healthbench grade``."""

    prompt_id: str
    completion: str
    repeat: int = 0


def completion_key(prompt_id: str, repeat: int) -> str:
    """Run-store key of one completion."""
    return f"{prompt_id}#{repeat}"


def grade_key(prompt_id: str, repeat: int, index: int) -> str:
    """Run-store key of one criterion's grade."""
    return f"{prompt_id}#{repeat}#{index:03d}"


def _criterion_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_completions(path: str | Path) -> tuple[dict[str, str], str]:
    """Read a completions JSONL (``prompt_id``, ``completion``, optional ``repeat``).

    Returns:
        Completions by ``prompt_id#repeat`` and the file's sha256.
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
    """Grade every criterion of every available completion; one grader call per criterion."""
    units = {}
    for ex in examples:
        for repeat in range(n_repeats):
            key = completion_key(ex.prompt_id, repeat)
            if key not in completions:
                continue
            for index in range(len(ex.rubrics)):
                units[grade_key(ex.prompt_id, repeat, index)] = (ex, completions[key], index)

    async def work(key: str, unit: tuple[HealthBenchExample, str, int]) -> dict:
        example, completion, index = unit
        item = example.rubrics[index]
        grade = await grader.grade(example.messages(), completion, item)
        if grade.failed:
            raise GradingFailed(grade.error or "grading failed")
        return {**grade.model_dump(), "criterion_sha": _criterion_hash(item.criterion)}

    advance = progress("grading", len(units)) if progress else None
    done = await store.map("grade", units, work, concurrency=concurrency, on_done=advance)
    grades = {}
    for key, value in done.items():
        example, _, index = units[key]
        if value.pop("criterion_sha") != _criterion_hash(example.rubrics[index].criterion):
            raise ConfigError(f"grade {key} in the run store belongs to another criterion")
        grades[key] = Grade.model_validate(value)
    for key, error in store.failures("grade").items():
        if key in units and key not in grades:
            grades[key] = Grade(met=None, error=error)
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


def summarize(
    results: Sequence[ExampleResult],
    *,
    model: str,
    grader: str,
    usage: dict[str, UsageMeter],
    cost_estimate_usd: float | None,
    data_sha256: str,
    bootstrap_seed: int = 0,
) -> RunResults:
    """The aggregate of a run, in the fixed ``results.json`` shape."""
    stats = aggregate([r.metrics for r in results if r.metrics], seed=bootstrap_seed)
    overall = stats.pop(OVERALL, Stat(score=0.0, std=0.0, n=0))
    return RunResults(
        overall=overall,
        tags=dict(sorted(stats.items())),
        model=model,
        grader=grader,
        n_grading_failures=sum(r.n_failures for r in results),
        usage={name: meter.model_dump() for name, meter in usage.items()},
        cost_estimate_usd=cost_estimate_usd,
        medverify_version=__version__,
        data_sha256=data_sha256,
    )


def total_cost(parts: Sequence[tuple[str, UsageMeter, str | None]]) -> float | None:
    """Sum of per-backend cost estimates; ``None`` if any is unknown."""
    total = 0.0
    for spec, meter, base_url in parts:
        cost = estimate_cost(spec, meter, base_url=base_url)
        if cost is None:
            return None
        total += cost
    return round(total, 6)
