"""``medverify consult-bench`` (and the table ``medverify demo`` prints): flags in, a job out."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medverify.cases.loading import load_bundled_cases, load_case_arg, load_cases
from medverify.cases.records import CaseRecord, Turn
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
from medverify.consult.compare import compare_table, write_compare
from medverify.consult.pipeline import ConsultJob, ConsultOutcome, run_consult_job
from medverify.consult.records import DIMENSIONS, ConsultResults
from medverify.errors import ConfigError
from medverify.progress import progress_bars

PatientOpt = Annotated[
    str | None,
    typer.Option(help="Backend spec for an LLM patient (default: the offline simulator)."),
]
GraderSpecOpt = Annotated[
    str, typer.Option(help="local (offline grader) or a backend spec for an LLM judge.")
]
WriterOpt = Annotated[
    str | None,
    typer.Option(help="Backend spec of an LLM rubric writer (default: deterministic core)."),
]
ShowTurnsOpt = Annotated[bool, typer.Option(help="Print every turn as it happens.")]

DOCTOR_HELP = (
    "Backend spec of the doctor under test, or a scripted reference doctor to check a grader: "
    "scripted:careful (asks in plain words) or scripted:careful-<fault> (wrong_dx, hedged, "
    "no_history, unsafe_plan, rude, fabricated, no_consent), or the older "
    "scripted:good|guess|wrong|unsafe."
)


def select_cases(
    cases_path: Path | None, case_ids: list[str] | None, limit: int | None
) -> list[CaseRecord]:
    """Cases from a file or folder (default: the bundled ones), filtered by id, capped."""
    if cases_path is None and case_ids:
        cases = [load_case_arg(c) for c in case_ids]
    else:
        cases = load_cases(cases_path) if cases_path is not None else load_bundled_cases()
        if case_ids:
            by_id = {c.id: c for c in cases}
            missing = [c for c in case_ids if c not in by_id]
            if missing:
                where = cases_path or "the bundled cases"
                raise ConfigError(f"no case {', '.join(map(repr, missing))} in {where}")
            cases = [by_id[c] for c in case_ids]
    return cases[:limit] if limit else cases


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def results_table(results: ConsultResults) -> Table:
    """Overall and per-dimension scores with their bootstrap std and n."""
    table = Table(title=f"{results.model} — graded by {results.grader}")
    table.add_column("score")
    table.add_column("value", justify="right")
    table.add_column("std", justify="right")
    table.add_column("n", justify="right")
    o = results.overall
    table.add_row("overall", _fmt(o.score), _fmt(o.std), str(o.n), style="bold")
    missing = "not measured offline" if results.grader.strip() == "local" else "–"
    for dim in DIMENSIONS:
        stat = results.dimensions.get(dim)
        if stat is None:
            table.add_row(dim.replace("_", " "), missing, "", "0")
        else:
            table.add_row(dim.replace("_", " "), _fmt(stat.score), _fmt(stat.std), str(stat.n))
    s = results.scan
    table.add_section()
    table.add_row("inquiry (checklist recall)", _fmt(s.get("inquiry")), "", "")
    table.add_row("exams and tests: recall", _fmt(s.get("exam_tests_recall")), "", "")
    table.add_row("exams and tests: precision", _fmt(s.get("exam_tests_precision")), "", "")
    table.add_row("diagnosis: final correct", _fmt(s.get("diagnosis_final")), "", "")
    table.add_row("diagnosis: in differential", _fmt(s.get("diagnosis_in_differential")), "", "")
    p = results.process
    table.add_section()
    table.add_row("diagnosis named (rate)", _fmt(p.diagnosis_given_rate), "", str(p.n))
    table.add_row("diagnosis correct (rate)", _fmt(p.diagnosis_correct_rate), "", str(p.n))
    table.add_row("facts elicited (mean share)", _fmt(p.mean_fact_recall), "", str(p.n))
    table.add_row("doctor turns (mean)", f"{p.mean_doctor_turns:.1f}", "", str(p.n))
    table.add_row("repeated doctor turns (mean)", _fmt(p.mean_repeated_turns), "", str(p.n))
    return table


def warn_failures(results: ConsultResults, *, name: str = "") -> None:
    """One warning per thing a run could not do (prefixed by ``name`` when several ran)."""
    who = f"{name}: " if name else ""
    if results.n_grading_failures:
        err_console.print(
            f"[yellow]{who}{results.n_grading_failures} criteria could not be graded; their "
            "consultations are not scored (rerun with the same --run-dir to retry)[/yellow]"
        )
    for key, error in results.failed_units.items():
        err_console.print(f"[yellow]{who}{key} failed: {error}[/yellow]", markup=True)


def print_outcome(outcome: ConsultOutcome) -> None:
    """The table, failures, and where the files went."""
    results = outcome.results
    print_table(results_table(results))
    warn_failures(results)
    console.print(f"results: {outcome.paths['results']}", markup=False, soft_wrap=True)
    console.print(f"report:  {outcome.paths['report']}", markup=False, soft_wrap=True)


def show_turn_of(key: str, turn: Turn) -> None:
    """Print one turn of a consultation, prefixed by its unit."""
    console.print(f"[dim]{key}[/dim] [bold]{turn.role}[/bold]: ", end="")
    console.print(turn.text, markup=False, highlight=False)


def run_and_print(job: ConsultJob, *, show_turns: bool = False) -> ConsultOutcome:
    """Run a job with progress bars (or every turn printed) and print its outcome."""
    with progress_bars(enabled=not show_turns) as bars:
        outcome = asyncio.run(
            run_consult_job(job, progress=bars, on_turn=show_turn_of if show_turns else None)
        )
    if outcome.resumed:
        err_console.print("[dim]resumed: finished consultations were not redone[/dim]")
    print_outcome(outcome)
    return outcome


def run_and_compare(
    jobs: dict[str, ConsultJob], root: Path, *, show_turns: bool = False
) -> dict[str, ConsultOutcome]:
    """Run several doctors' jobs on the same cases; print one side-by-side table and the pages.

    ``compare.html`` under ``root`` shows each case's transcripts next to each other.
    """
    outcomes: dict[str, ConsultOutcome] = {}
    with progress_bars(enabled=not show_turns) as bars:
        for name, job in jobs.items():
            outcomes[name] = asyncio.run(
                run_consult_job(job, progress=bars, on_turn=show_turn_of if show_turns else None)
            )
    if any(o.resumed for o in outcomes.values()):
        err_console.print("[dim]resumed: finished consultations were not redone[/dim]")
    print_table(compare_table({n: o.results for n, o in outcomes.items()}))
    for name, outcome in outcomes.items():
        warn_failures(outcome.results, name=name)
        console.print(f"{name} report: {outcome.paths['report']}", markup=False, soft_wrap=True)
    if len(outcomes) > 1:
        page = write_compare(
            root / "compare.html",
            {n: o.examples for n, o in outcomes.items()},
            title="medverify demo: " + " vs ".join(outcomes),
        )
        console.print(f"side by side: {page}", markup=False, soft_wrap=True)
    return outcomes


def consult_bench(
    doctor: Annotated[str, typer.Option(help=DOCTOR_HELP)] = "local",
    cases: Annotated[
        Path | None,
        typer.Option(help="Case file (JSON/YAML/JSONL) or folder (default: the bundled cases)."),
    ] = None,
    case: Annotated[
        list[str] | None, typer.Option("--case", help="Only this case id (repeatable).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many cases.")] = None,
    persona: Annotated[
        list[str] | None,
        typer.Option(
            "--persona",
            help="case (the case's own), sampled (seeded by case id) or a preset name; "
            "repeatable: every case runs with each.",
        ),
    ] = None,
    patient: PatientOpt = None,
    grader: GraderSpecOpt = "local",
    writer: WriterOpt = None,
    max_turns: Annotated[int, typer.Option(min=1, max=50, help="Most doctor turns.")] = 10,
    doctor_max_tokens: Annotated[
        int, typer.Option(min=8, help="Most tokens per doctor turn.")
    ] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the simulator, doctor and writer.")] = 0,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Consultations at once.")
    ] = 4,
    run_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where to keep progress and results (rerun to resume).", callback=writable_dir
        ),
    ] = None,
    show_turns: ShowTurnsOpt = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    grader_base_url: GraderBaseUrlOpt = None,
    grader_api_key: GraderApiKeyOpt = None,
    timeout: TimeoutOpt = None,
    no_cache: NoCacheOpt = False,
    judge_checked: Annotated[
        bool,
        typer.Option(
            help="Also ask the LLM judge about the evidence-checked items and report how often "
            "it agrees with the evidence (the evidence verdict is still the one scored)."
        ),
    ] = False,
) -> None:
    """The dynamic consultation benchmark: simulate, generate rubrics, grade, score.

    For every case x persona the doctor interviews the patient simulator; the rubric generator
    turns the case and the transcript into weighted criteria (five clinical dimensions); the
    grader judges each; scores follow HealthBench. Writes results.json, examples.jsonl and
    report.html to the run directory; rerun with the same --run-dir to resume.
    """
    job = ConsultJob(
        cases=select_cases(cases, case, limit),
        run_dir=run_dir or Path("medverify-runs") / time.strftime("consult-%Y%m%d-%H%M%S"),
        doctor=doctor,
        patient=patient,
        grader=grader,
        writer=writer,
        personas=persona or ["case"],
        max_turns=max_turns,
        doctor_max_tokens=doctor_max_tokens,
        seed=seed,
        concurrency=concurrency,
        judge_checked=judge_checked,
        doctor_options=options_from(base_url, api_key, no_cache, timeout),
        grader_options=grader_options_from(
            grader_base_url, grader_api_key, base_url, api_key, no_cache, timeout
        ),
    )
    run_and_print(job, show_turns=show_turns)
