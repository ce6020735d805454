"""``medverify healthbench run|grade|meta-eval`` — flags in, :mod:`pipeline` functions out."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medverify.cli_common import (
    ApiKeyOpt,
    BaseUrlOpt,
    GraderApiKeyOpt,
    GraderBaseUrlOpt,
    NoCacheOpt,
    TimeoutOpt,
    console,
    err_console,
    grader_options_from,
    options_from,
    print_table,
    writable_dir,
)
from medverify.errors import ConfigError
from medverify.grading import make_grader
from medverify.grading.agreement import load_labelled
from medverify.healthbench.data import Subset, resolve_data
from medverify.healthbench.evaluate import PhysicianMode
from medverify.healthbench.meta_eval import exclude_trained, grade_labelled, score_meta_eval
from medverify.healthbench.pipeline import HealthBenchJob, JobOutcome, run_job
from medverify.healthbench.validity import grader_validity, warning_line
from medverify.progress import progress_bars
from medverify.runs.store import RunStore
from medverify.secrets import redact

app = typer.Typer(
    help="HealthBench: sample, grade and score exactly as the reference does; resumable.",
    no_args_is_help=True,
)

DataOpt = Annotated[Path | None, typer.Option("--data", help="A HealthBench-format JSONL file.")]
SubsetOpt = Annotated[
    Subset | None,
    typer.Option(help="all | hard | consensus: the official file in --data-dir."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(help="Directory with the official files (default $MEDVERIFY_DATA)."),
]
GraderOpt = Annotated[
    str, typer.Option("--grader", "-g", help="Backend spec of the judge (e.g. openai:gpt-4.1).")
]
RunDirOpt = Annotated[
    Path,
    typer.Option(
        "--run-dir", help="Progress and results; rerun with it to resume.", callback=writable_dir
    ),
]
LimitOpt = Annotated[int | None, typer.Option(min=1, help="Only the first N examples.")]
SkipInvalidOpt = Annotated[
    bool, typer.Option("--skip-invalid", help="Skip malformed lines (counted) instead of stopping.")
]
GraderConcurrencyOpt = Annotated[
    int, typer.Option("--grader-concurrency", min=1, help="Grader calls in flight.")
]


def _print_outcome(outcome: JobOutcome) -> None:
    results = outcome.results
    table = Table(title=f"HealthBench — {results.model} graded by {results.grader}")
    table.add_column("metric")
    table.add_column("score", justify="right")
    table.add_column("± std", justify="right")
    table.add_column("n", justify="right")
    table.add_row(
        "overall",
        f"{results.overall.score:.3f}",
        f"{results.overall.std:.3f}",
        str(results.overall.n),
        style="bold",
    )
    for tag, stat in results.tags.items():
        if tag.startswith(("theme:", "axis:")):
            table.add_row(tag, f"{stat.score:.3f}", f"{stat.std:.3f}", str(stat.n))
    print_table(table)
    if outcome.skipped_lines:
        err_console.print(
            f"skipped {len(outcome.skipped_lines)} invalid line(s), first: "
            f"{outcome.skipped_lines[0]}",
            markup=False,
        )
    if results.n_model_failures:
        first = " ".join(redact(next(iter(outcome.model_errors.values()), "")).split())
        err_console.print(
            f"{results.n_model_failures} completion(s) could not be sampled from "
            f"{results.model}; their examples are not scored. Rerun the same command to retry "
            f"them. First error: {first}",
            style="yellow",
            markup=False,
        )
    if results.n_grading_failures:
        err_console.print(
            f"[yellow]{results.n_grading_failures} criteria could not be graded; "
            "their examples are not scored. Rerun the same command to retry them."
            "[/yellow]"
        )
    cost = results.cost_estimate_usd
    console.print(f"estimated cost: {'unknown' if cost is None else f'${cost:.4f}'}")
    for name, path in outcome.paths.items():
        console.print(f"{name}: {path}", markup=False)


def _run(job: HealthBenchJob) -> None:
    validity = grader_validity(job.grader)
    if validity is not None:
        err_console.print(warning_line(validity), style="yellow", markup=False)

    async def go() -> JobOutcome:
        with progress_bars() as add:
            return await run_job(job, progress=add)

    outcome = asyncio.run(go())
    _print_outcome(outcome)
    if outcome.nothing_scored:
        results = outcome.results
        print(
            f"error: nothing could be scored ({results.n_model_failures} model failure(s), "
            f"{results.n_grading_failures} grading failure(s)); see {outcome.paths['report']}",
            file=sys.stderr,
        )
        raise typer.Exit(1)


@app.command()
def run(
    model: Annotated[str, typer.Option("--model", "-m", help="Backend spec of the model.")],
    grader: GraderOpt,
    run_dir: RunDirOpt,
    data: DataOpt = None,
    subset: SubsetOpt = None,
    data_dir: DataDirOpt = None,
    limit: LimitOpt = None,
    n_repeats: Annotated[int, typer.Option(min=1, help="Completions per prompt.")] = 1,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Model calls in flight.")
    ] = 16,
    grader_concurrency: GraderConcurrencyOpt = 64,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.0,
    max_tokens: Annotated[int, typer.Option(help="Most tokens per completion.")] = 2048,
    skip_invalid: SkipInvalidOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    grader_base_url: GraderBaseUrlOpt = None,
    grader_api_key: GraderApiKeyOpt = None,
    timeout: TimeoutOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Sample a completion per prompt from a model, grade every criterion, score and report."""
    _run(
        HealthBenchJob(
            data=resolve_data(data, subset, data_dir),
            model=model,
            grader=grader,
            run_dir=run_dir,
            limit=limit,
            n_repeats=n_repeats,
            concurrency=concurrency,
            grader_concurrency=grader_concurrency,
            temperature=temperature,
            max_tokens=max_tokens,
            skip_invalid=skip_invalid,
            model_options=options_from(base_url, api_key, no_cache, timeout, concurrency),
            grader_options=grader_options_from(
                grader_base_url,
                grader_api_key,
                base_url,
                api_key,
                no_cache,
                timeout,
                grader_concurrency,
            ),
        )
    )


@app.command()
def grade(
    grader: GraderOpt,
    run_dir: RunDirOpt,
    data: DataOpt = None,
    subset: SubsetOpt = None,
    data_dir: DataDirOpt = None,
    completions: Annotated[
        Path | None,
        typer.Option(help="JSONL of prompt_id, completion (optional repeat) made elsewhere."),
    ] = None,
    physician_mode: Annotated[
        PhysicianMode | None,
        typer.Option(help="Grade the physicians' own completions of this group instead."),
    ] = None,
    reference_completions: Annotated[
        bool,
        typer.Option(
            "--reference-completions",
            help="With --physician-mode: grade the model references shown to them.",
        ),
    ] = False,
    limit: LimitOpt = None,
    grader_concurrency: GraderConcurrencyOpt = 64,
    skip_invalid: SkipInvalidOpt = False,
    grader_base_url: GraderBaseUrlOpt = None,
    grader_api_key: GraderApiKeyOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    timeout: TimeoutOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Grade completions produced elsewhere, or the physician-completion modes of the original."""
    if (completions is None) == (physician_mode is None):
        raise ConfigError("give exactly one of --completions FILE or --physician-mode GROUP")
    if reference_completions and physician_mode is None:
        raise ConfigError("--reference-completions needs --physician-mode")
    mode = "completions" if completions else "reference" if reference_completions else "physician"
    _run(
        HealthBenchJob(
            data=resolve_data(data, subset, data_dir),
            grader=grader,
            run_dir=run_dir,
            mode=mode,
            completions=completions,
            physician_mode=physician_mode or "apr_2025_reference",
            limit=limit,
            grader_concurrency=grader_concurrency,
            skip_invalid=skip_invalid,
            # `grade` calls only the grader: --base-url/--api-key are its endpoint and key too.
            grader_options=grader_options_from(
                grader_base_url,
                grader_api_key,
                base_url,
                api_key,
                no_cache,
                timeout,
                grader_concurrency,
            ),
        )
    )


@app.command("meta-eval")
def meta_eval(
    data: Annotated[
        Path, typer.Option("--data", help="Meta-eval file or graded HealthBench rows.")
    ],
    grader: GraderOpt,
    run_dir: RunDirOpt,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N criteria.")] = None,
    grader_concurrency: GraderConcurrencyOpt = 64,
    grader_base_url: GraderBaseUrlOpt = None,
    grader_api_key: GraderApiKeyOpt = None,
    timeout: TimeoutOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Agreement of a grader with physician labels: macro F1 and balanced accuracy."""
    every = load_labelled(data, limit=limit)
    sha = hashlib.sha256(Path(data).read_bytes()).hexdigest()
    options = options_from(grader_base_url, grader_api_key, no_cache, timeout, grader_concurrency)

    async def go():
        config = {"data_sha256": sha, "grader": grader, "limit": limit}
        with RunStore(run_dir, job="healthbench-meta-eval", config=config) as store:
            judge = make_grader(grader, options)
            # A trained grader (--grader local) is not measured on its own training prompts.
            items, excluded = exclude_trained(every, judge)
            try:
                with progress_bars() as add:
                    verdicts, failures = await grade_labelled(
                        items, judge, store, concurrency=grader_concurrency, progress=add
                    )
            finally:
                await judge.aclose()
        return score_meta_eval(
            items,
            verdicts,
            grader=grader,
            data_sha256=sha,
            n_failures=failures,
            n_excluded_trained=excluded,
        )

    result = asyncio.run(go())
    out = run_dir / "meta_eval.json"
    out.write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    table = Table(title=f"Grader agreement — {grader}")
    for column in ("category", "macro F1", "balanced acc.", "pairs", "labellers' macro F1"):
        table.add_column(column, justify="left" if column == "category" else "right")
    rows = [("overall", result.overall, result.labellers_overall)]
    rows += [(c, a, result.labellers_by_category.get(c)) for c, a in result.by_category.items()]
    for name, ours, theirs in rows:
        table.add_row(
            name,
            f"{ours.macro_f1:.3f}",
            f"{ours.balanced_accuracy:.3f}",
            str(ours.n_pairs),
            f"{theirs.macro_f1:.3f}" if theirs else "—",
        )
    print_table(table)
    if result.n_excluded_trained:
        console.print(
            f"{result.n_excluded_trained} criteria left out: their prompts are in the grader's "
            "training data"
        )
    if result.n_grading_failures:
        err_console.print(f"{result.n_grading_failures} criteria could not be graded")
    console.print(f"results: {out}", markup=False)
