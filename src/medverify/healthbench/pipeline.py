"""The ``healthbench run`` and ``healthbench grade`` jobs as one importable function.

The CLI only parses flags into a :class:`HealthBenchJob`; scripts and notebooks call
:func:`run_job` directly. The job's settings that determine the results (data hash, model,
grader, repeats, sampling, mode) are the run store's config, so resuming with other settings
is refused instead of mixing two runs.

Failures are never silent: a completion the model under test could not produce (after retries)
is counted in ``n_model_failures`` and listed in ``model_failed_examples`` of ``results.json``
(its example is not scored), next to ``n_grading_failures``; the report shows both. The usage of
every session (model and judge calls) is written to the run store as it grows, so an
interrupted session's calls are still counted when a rerun finishes the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from medverify.backends.registry import BackendOptions, make_backend
from medverify.grading import make_grader
from medverify.grading.results import RunResults, summarize
from medverify.grading.usage import SessionUsage, sum_usage, total_cost
from medverify.healthbench.data import load_examples
from medverify.healthbench.evaluate import (
    MAX_REPEATS,
    PhysicianMode,
    Progress,
    completion_key,
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
    n_repeats: int = Field(default=1, ge=1, le=MAX_REPEATS)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=2048, ge=1)
    concurrency: int = Field(default=16, ge=1)
    grader_concurrency: int = Field(default=64, ge=1)
    skip_invalid: bool = False
    model_options: BackendOptions = BackendOptions()
    grader_options: BackendOptions = BackendOptions()


class HealthBenchResults(RunResults):
    """``results.json`` of a HealthBench run: the shared fields and the model's failures."""

    n_model_failures: int = 0
    model_failed_examples: list[str] = Field(default_factory=list)


class JobOutcome(BaseModel):
    """What a finished job returns: the aggregate, where files went, what was skipped."""

    results: HealthBenchResults
    paths: dict[str, Path]
    n_examples: int
    skipped_lines: list[str]
    resumed: bool
    model_errors: dict[str, str] = Field(default_factory=dict)

    @property
    def nothing_scored(self) -> bool:
        """Whether not one example could be scored (every completion or grade failed)."""
        return self.results.overall.n == 0


def _model_failure_section(failed: Sequence[str], errors: dict[str, str]) -> str:
    """The report's card listing the examples the model could not answer (escaped HTML)."""
    shown = ", ".join(escape(key) for key in failed[:50])
    more = f" and {len(failed) - 50:,} more" if len(failed) > 50 else ""
    first = errors.get(failed[0], "") if failed else ""
    return (
        '<section class="card failures bad" id="model-failures">'
        f"<h2>{len(failed):,} completion{'s' if len(failed) != 1 else ''} the model could "
        "not produce</h2>"
        f"<p>Not scored: {shown}{more}.</p>"
        + (f'<p class="error">First error: {escape(first)}</p>' if first else "")
        + "<p>Rerun the same command with the same run directory to retry them.</p></section>"
    )


async def run_job(job: HealthBenchJob, progress: Progress | None = None) -> JobOutcome:
    """Sample (or take) completions, grade them, score, and write results and report.

    Raises:
        InputError: a bad data or completions file (naming file, line and field).
        ConfigError: another process is using the run directory, or it holds other settings.
    """
    loaded = load_examples(job.data, skip_invalid=job.skip_invalid)
    examples = loaded.examples[: job.limit] if job.limit else loaded.examples
    completions: dict[str, str] | None = None
    completions_sha = None
    n_repeats = job.n_repeats
    if job.mode == "completions":
        if job.completions is None:
            raise ValueError("mode 'completions' needs a completions file")
        completions, completions_sha = load_completions(
            job.completions,
            prompt_ids={ex.prompt_id for ex in loaded.examples},
            data_name=str(job.data),
        )
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
        # A completions file is known by its content (its sha256), not by the path it was given
        # as: the same file copied elsewhere resumes, another file is refused.
        "model": "completions" if job.mode == "completions" else model_spec,
        "completions_sha256": completions_sha,
        "grader": job.grader,
        "n_repeats": n_repeats,
        "temperature": job.temperature,
        "max_tokens": job.max_tokens,
    }
    model_errors: dict[str, str] = {}
    with RunStore(job.run_dir, job="healthbench", config=config) as store:
        resumed = store.is_resumed
        session = SessionUsage(store)
        tracked = session.progress(progress)
        try:
            if completions is None:
                assert job.model is not None
                async with make_backend(job.model, job.model_options) as model:
                    session.track("model", model)
                    completions = await sample_completions(
                        examples,
                        model,
                        store,
                        n_repeats=n_repeats,
                        temperature=job.temperature,
                        max_tokens=job.max_tokens,
                        concurrency=job.concurrency,
                        progress=tracked,
                    )
                failed = store.failures("completion")
                for ex in examples:
                    for repeat in range(n_repeats):
                        key = completion_key(ex.prompt_id, repeat)
                        if key not in completions:
                            model_errors[key] = failed.get(key, "no completion")
            grader = make_grader(job.grader, job.grader_options)
            session.track("grader", getattr(grader, "backend", None))
            try:
                grades = await grade_all(
                    examples,
                    completions,
                    grader,
                    store,
                    n_repeats=n_repeats,
                    concurrency=job.grader_concurrency,
                    progress=tracked,
                )
            finally:
                await grader.aclose()
        finally:
            # Usage of every session of this run: a resumed run paid for its first part too,
            # and an interrupted session's calls count as well.
            session.save(force=True)
        usage, cost_parts = sum_usage(store.items("usage").values())
    per_example = example_results(examples, completions, grades, n_repeats=n_repeats)
    summary = summarize(
        per_example,
        model=model_spec or "",
        grader=job.grader,
        usage=usage,
        cost_estimate_usd=total_cost(cost_parts),
        data_sha256=loaded.sha256,
    )
    results = HealthBenchResults(
        **dict(summary),
        n_model_failures=len(model_errors),
        model_failed_examples=list(model_errors),
    )
    sections = []
    if model_errors:
        sections.append(_model_failure_section(list(model_errors), model_errors))
    # A grader whose scores are not comparable to the reference judge's (--grader local) says
    # so in results.json and in the report.
    validity = grader_validity(job.grader)
    if validity is not None:
        results = results.model_copy(update={"grader_validity": validity})
        sections.append(report_section(validity))
    paths = write_outputs(
        job.run_dir,
        results,
        per_example,
        title=f"HealthBench: {Path(job.data).name}",
        sections=sections,
    )
    return JobOutcome(
        results=results,
        paths=paths,
        n_examples=len(examples),
        skipped_lines=loaded.skipped,
        resumed=resumed,
        model_errors=model_errors,
    )
