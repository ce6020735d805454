"""The ``healthbench run`` and ``healthbench grade`` jobs as one importable function.

The CLI only parses flags into a :class:`HealthBenchJob`; scripts and notebooks call
:func:`run_job` directly. The job's settings that determine the results (data hash, model,
grader, repeats, sampling, mode) are the run store's config, so resuming with other settings
is refused instead of mixing two runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from medverify.backends.registry import BackendOptions, make_backend
from medverify.grading import make_grader
from medverify.grading.results import RunResults, summarize
from medverify.grading.usage import sum_usage, total_cost, usage_record
from medverify.healthbench.data import load_examples
from medverify.healthbench.evaluate import (
    PhysicianMode,
    Progress,
    example_results,
    grade_all,
    load_completions,
    physician_completions,
    sample_completions,
)
from medverify.healthbench.validity import grader_validity, report_section
from medverify.report.outputs import write_outputs
from medverify.runs.store import RunStore

Mode = Literal["sample", "completions", "physician", "reference"]


class HealthBenchJob(BaseModel):
    """Everything a HealthBench run needs."""

    model_config = ConfigDict(frozen=True)

    data: Path
    grader: str
    run_dir: Path
    mode: Mode = "sample"
    model: str | None = None
    completions: Path | None = None
    physician_mode: PhysicianMode = "apr_2025_reference"
    limit: int | None = Field(default=None, ge=1)
    n_repeats: int = Field(default=1, ge=1, le=100)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=2048, ge=1)
    concurrency: int = Field(default=16, ge=1)
    grader_concurrency: int = Field(default=64, ge=1)
    skip_invalid: bool = False
    model_options: BackendOptions = BackendOptions()
    grader_options: BackendOptions = BackendOptions()


class JobOutcome(BaseModel):
    """What a finished job returns: the aggregate, where files went, what was skipped."""

    results: RunResults
    paths: dict[str, Path]
    n_examples: int
    skipped_lines: list[str]
    resumed: bool


async def run_job(job: HealthBenchJob, progress: Progress | None = None) -> JobOutcome:
    """Sample (or take) completions, grade them, score, and write results and report."""
    loaded = load_examples(job.data, skip_invalid=job.skip_invalid)
    examples = loaded.examples[: job.limit] if job.limit else loaded.examples
    completions: dict[str, str] | None = None
    completions_sha = None
    n_repeats = job.n_repeats
    if job.mode == "completions":
        if job.completions is None:
            raise ValueError("mode 'completions' needs a completions file")
        completions, completions_sha = load_completions(job.completions)
        wanted = {key.split("#")[0] for key in completions}
        examples = [ex for ex in examples if ex.prompt_id in wanted]
        n_repeats = 1 + max(int(key.rsplit("#", 1)[1]) for key in completions)
    elif job.mode in ("physician", "reference"):
        examples, completions = physician_completions(
            examples, job.physician_mode, reference=job.mode == "reference"
        )
        n_repeats = 1
    model_spec = job.model if job.mode == "sample" else f"{job.mode}:{job.physician_mode}"
    if job.mode == "completions":
        model_spec = f"completions:{job.completions}"
    config = {
        "data_sha256": loaded.sha256,
        "limit": job.limit,
        "skip_invalid": job.skip_invalid,
        "mode": job.mode,
        "model": model_spec,
        "completions_sha256": completions_sha,
        "grader": job.grader,
        "n_repeats": n_repeats,
        "temperature": job.temperature,
        "max_tokens": job.max_tokens,
    }
    with RunStore(job.run_dir, job="healthbench", config=config) as store:
        resumed = store.is_resumed
        session: dict[str, dict] = {}
        if completions is None:
            assert job.model is not None
            async with make_backend(job.model, job.model_options) as model:
                completions = await sample_completions(
                    examples,
                    model,
                    store,
                    n_repeats=n_repeats,
                    temperature=job.temperature,
                    max_tokens=job.max_tokens,
                    concurrency=job.concurrency,
                    progress=progress,
                )
                session["model"] = usage_record(model)
        grader = make_grader(job.grader, job.grader_options)
        try:
            grades = await grade_all(
                examples,
                completions,
                grader,
                store,
                n_repeats=n_repeats,
                concurrency=job.grader_concurrency,
                progress=progress,
            )
        finally:
            await grader.aclose()
        backend = getattr(grader, "backend", None)
        if backend is not None:
            session["grader"] = usage_record(backend)
        # Usage of every session of this run (a resumed run paid for its first part too).
        store.put("usage", f"{time.time():.6f}", session)
        usage, cost_parts = sum_usage(store.items("usage").values())
    per_example = example_results(examples, completions, grades, n_repeats=n_repeats)
    results = summarize(
        per_example,
        model=model_spec or "",
        grader=job.grader,
        usage=usage,
        cost_estimate_usd=total_cost(cost_parts),
        data_sha256=loaded.sha256,
    )
    # A grader whose scores are not comparable to the reference judge's (--grader local) says
    # so in results.json and in the report.
    validity = grader_validity(job.grader)
    if validity is not None:
        results = results.model_copy(update={"grader_validity": validity})
    paths = write_outputs(
        job.run_dir,
        results,
        per_example,
        title=f"HealthBench: {Path(job.data).name}",
        sections=[report_section(validity)] if validity else (),
    )
    return JobOutcome(
        results=results,
        paths=paths,
        n_examples=len(examples),
        skipped_lines=loaded.skipped,
        resumed=resumed,
    )
