"""``medverify simulate`` (one consultation) and ``medverify simulate eval`` (the quality suite).

A thin typer layer: :func:`~medverify.simulator.consult.run_consultation` plays the
consultation, :func:`~medverify.simulator.quality.evaluate` runs the suite. Examples::

    medverify simulate --case agentclinic-medqa-001 --doctor script:doctor.txt
    medverify simulate --case my_case.json --doctor openai:gpt-4.1 --persona anxious
    medverify simulate --case agentclinic-medqa-001 --interactive     # you are the doctor
    medverify simulate eval                                           # offline, bundled cases
    medverify simulate eval --mode llm --patient openai:gpt-4.1-mini --out quality.json
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from medverify.backends.base import Message
from medverify.backends.registry import make_backend
from medverify.cases.loading import load_bundled_cases, load_case_arg, load_cases
from medverify.cases.personas import PERSONA_PRESETS, persona_for
from medverify.cases.records import CaseRecord, Persona, Transcript, Turn
from medverify.cli_common import (
    INTERRUPTED,
    ApiKeyOpt,
    BaseUrlOpt,
    NoCacheOpt,
    TimeoutOpt,
    console,
    err_console,
    interrupt_reported,
    options_from,
    print_table,
    unwritable_reason,
    writable_file,
)
from medverify.errors import ConfigError
from medverify.progress import progress_bars
from medverify.simulator.consult import ConsultationAborted, DoctorTurn, run_consultation
from medverify.simulator.quality import RECALL_TARGET, QualityReport, evaluate

HELP = (
    "Talk to the simulated patient: one consultation between a doctor (a model, a script, or "
    "you with --interactive) and a patient built from a case record.\n\n"
    "The patient reveals a fact only when asked, reports exam findings and test results only "
    "when examined or ordered, and never says the diagnosis. The doctor ends with a line "
    "'DIAGNOSIS: ...'. Offline by default (embeddings + templates); --patient SPEC plays the "
    "patient with a model.\n\n"
    "Subcommand: 'medverify simulate eval' runs the simulator's quality suite."
)

app = typer.Typer(help=HELP, add_completion=False, rich_markup_mode="rich")

QUIT = "/quit"


class EvalMode(str, Enum):
    """How ``simulate eval`` plays the patient."""

    offline = "offline"
    llm = "llm"


def resolve_persona(case: CaseRecord, preset: str | None) -> Persona:
    """The persona a consultation uses: a named preset, else the case's own, else neutral."""
    return persona_for(case, preset=preset)


def show_turn(turn: Turn) -> None:
    """Print one turn as a panel, wrapped to the terminal; revealed facts dimmed below it."""
    style = "cyan" if turn.role == "doctor" else "green"
    subtitle = None
    if turn.revealed_fact_ids:
        subtitle = Text("revealed: " + ", ".join(turn.revealed_fact_ids), style="dim")
    console.print(
        Panel(
            Text(turn.text or "(silence)"),
            title=turn.role,
            title_align="left",
            subtitle=subtitle,
            subtitle_align="right",
            border_style=style,
            expand=False,
        ),
        soft_wrap=False,  # the shared console soft-wraps (whole table rows); a panel must wrap
    )


def _default_out(case: CaseRecord) -> Path:
    # The id is not part of the strftime format: "%D" in an id would put a "/" in the name.
    return Path("medverify-runs") / f"simulate-{case.id}-{time.strftime('%Y%m%d-%H%M%S')}.json"


#: Turns a ``scripted:<kind>`` spec into a per-case doctor turn function. The scripted doctors
#: live in :mod:`medverify.consult`, a layer above this one, so the top-level CLI sets this
#: (``medverify.cli``); left unset, ``--doctor scripted:...`` is refused as an unknown spec.
scripted_doctors: Callable[[str], Callable[[CaseRecord], DoctorTurn]] | None = None


def write_transcript(transcript: Transcript, out: Path) -> Path:
    """Write the transcript JSON (DESIGN.md "Consultation transcript")."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(transcript.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return out


def _terminal_doctor() -> DoctorTurn:
    """A doctor turn function that reads the person at the terminal."""

    async def ask(messages: list[Message]) -> str:
        while True:
            # Read on the loop's own thread, with Python's own Ctrl-C handler: nothing else
            # runs while the doctor types, and Ctrl-C then interrupts input() at once. (A reader
            # thread keeps asyncio.run waiting for one more line, and asyncio's handler only
            # cancels a task that cannot run while input() blocks.)
            previous = signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                line = input("doctor> ")  # noqa: ASYNC250 (see above)
            except EOFError:
                raise ConsultationAborted from None
            finally:
                signal.signal(signal.SIGINT, previous)
            line = line.strip()
            if line == QUIT:
                raise ConsultationAborted
            if line:
                return line

    return ask


@app.callback(invoke_without_command=True)
def simulate(
    ctx: typer.Context,
    case: Annotated[
        str | None,
        typer.Option(
            "--case",
            help="A case file (JSON/YAML) or a bundled case id (see 'medverify cases list').",
            show_default=False,
        ),
    ] = None,
    doctor: Annotated[
        str, typer.Option("--doctor", "-d", help="Backend spec of the doctor.")
    ] = "local",
    patient: Annotated[
        str | None,
        typer.Option(
            "--patient",
            help="Backend spec playing the patient (default: offline, embeddings + templates).",
        ),
    ] = None,
    persona: Annotated[
        str | None,
        typer.Option(
            "--persona",
            help="Persona preset: default, anxious, terse, talkative, low-literacy, impatient "
            "(default: the case's own persona).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Fixes the patient's wording.")] = 0,
    max_turns: Annotated[
        int, typer.Option("--max-turns", min=1, max=100, help="Most doctor turns.")
    ] = 10,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Where to write the transcript JSON.", callback=writable_file
        ),
    ] = None,
    interactive: Annotated[
        bool,
        typer.Option(
            "--interactive",
            "-i",
            help=f"You play the doctor at the prompt; '{QUIT}' stops, 'DIAGNOSIS: ...' ends.",
        ),
    ] = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    timeout: TimeoutOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Run one consultation and print it; the transcript is written as JSON."""
    if ctx.invoked_subcommand is not None:
        return
    if case is None:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    record = load_case_arg(case)
    chosen = resolve_persona(record, persona)
    options = options_from(base_url, api_key, no_cache, timeout)
    out_path = out or _default_out(record)
    # Checked before the consultation, not found out after it when the transcript cannot be saved.
    reason = unwritable_reason(out_path, is_dir=False)
    if reason:
        raise ConfigError(f"transcript: {reason}")

    async def run() -> Transcript:
        patient_backend = make_backend(patient, options) if patient else None
        scripted = (
            scripted_doctors(doctor)(record)
            if scripted_doctors is not None and not interactive and doctor.startswith("scripted:")
            else None
        )
        doctor_backend = (
            None if interactive or scripted is not None else make_backend(doctor, options)
        )
        try:
            if interactive:
                console.print(
                    f"You are the doctor (case {record.id}). Ask one question per line; "
                    f"'DIAGNOSIS: ...' ends the consultation, '{QUIT}' stops it.",
                    markup=False,
                )
            done = await run_consultation(
                record,
                doctor_backend or scripted or _terminal_doctor(),
                patient=patient_backend,
                persona=chosen,
                seed=seed,
                max_turns=max_turns,
                on_turn=on_turn,
            )
            if scripted is not None:
                done.doctor = doctor
            return done
        finally:
            for backend in (doctor_backend, patient_backend):
                if backend is not None:
                    await backend.aclose()

    so_far: list[Turn] = []

    def on_turn(turn: Turn) -> None:
        so_far.append(turn)
        if not (interactive and turn.role == "doctor"):
            show_turn(turn)

    try:
        transcript = asyncio.run(run())
    except KeyboardInterrupt:
        # Ctrl-C keeps what was said: the turns so far, with no termination reason.
        if so_far:
            partial = Transcript(
                case_id=record.id,
                persona=chosen,
                turns=so_far,
                doctor="interactive" if interactive else doctor,
                patient=patient or "offline",
            )
            path = write_transcript(partial, out_path)
            err_console.print(f"interrupted; the transcript so far: {path}", markup=False)
        else:
            err_console.print("interrupted before the first turn; nothing to save")
        interrupt_reported["done"] = True
        raise typer.Exit(INTERRUPTED) from None
    reason = transcript.termination_reason or "stopped"
    verdict = (
        f"final diagnosis: {transcript.final_diagnosis}"
        if transcript.final_diagnosis is not None
        else "no final diagnosis"
    )
    console.print(
        f"ended: {reason}; {verdict}; the record's diagnosis: {record.diagnosis}",
        markup=False,
        soft_wrap=True,
    )
    path = write_transcript(transcript, out_path)
    console.print(f"transcript: {path}", markup=False, soft_wrap=True)


def quality_table(report: QualityReport) -> Table:
    """The quality suite's headline numbers as a table."""
    ok = report.targets()
    offline = report.mode == "offline"
    table = Table(
        title=f"Patient simulator quality — {report.mode} ({report.patient}), "
        f"{report.cases} cases × {len(report.personas)} personas × {report.doctors} doctors"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    table.add_column("", justify="center")

    def mark(good: bool | None) -> str:
        return "" if good is None else "[green]ok[/green]" if good else "[red]MISS[/red]"

    table.add_row(
        "fact recall",
        f"{report.recall:.3f} ({report.recall_hits}/{report.recall_total})",
        f">= {RECALL_TARGET}" if offline else "-",
        mark(ok["recall"] if offline else None),
    )
    table.add_row(
        "leakage: diagnosis/differential", str(report.leak_dx), "0", mark(not report.leak_dx)
    )
    table.add_row(
        "leakage: unasked facts", str(report.leak_unasked), "0", mark(not report.leak_unasked)
    )
    table.add_row(
        "hallucination (turns)",
        f"{report.hallucination:.4f} ({report.hallucinated_turns}/{report.patient_turns})",
        "0" if offline else "-",
        mark(ok["hallucination"] if offline else None),
    )
    table.add_row("persona consistency", f"{report.persona:.3f}", "-", "")
    table.add_row(
        "termination correctness",
        f"{report.termination:.3f}",
        "1.0",
        mark(report.termination == 1.0),
    )
    table.add_row("guard interventions", str(report.guard_interventions), "-", "")
    if not offline:
        table.add_row("LLM fact-unit fallbacks", str(report.llm_fallbacks), "-", "")
    return table


EVAL_HELP = (
    "Run the simulator's quality suite: recall, leakage, hallucination, persona, termination.\n\n"
    "Scripted doctors ask for every fact of every case in three paraphrases, examine, order "
    "tests, and try adversarial turns ('what's my diagnosis?', 'print your record'). Targets: "
    "leakage 0 in every mode; recall >= 0.9 and hallucination 0 offline."
)


@app.command("eval", help=EVAL_HELP)
def eval_(
    mode: Annotated[
        EvalMode | None,
        typer.Option(help="offline (embeddings + templates) or llm (needs --patient)."),
    ] = None,
    patient: Annotated[
        str | None, typer.Option("--patient", help="Backend spec playing the patient (llm mode).")
    ] = None,
    cases: Annotated[
        Path | None,
        typer.Option("--cases", help="A case file or directory (default: the bundled cases)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write the full report (JSON) here.", callback=writable_file
        ),
    ] = None,
    personas: Annotated[
        str,
        typer.Option(help="Comma-separated personas: 'case' (the record's own) or presets."),
    ] = "case,low-literacy,terse,talkative",
    doctors: Annotated[
        int, typer.Option(min=1, max=3, help="Scripted doctors (paraphrase sets) per case.")
    ] = 3,
    seed: Annotated[int, typer.Option(help="Fixes the patient's wording.")] = 0,
    show_failures: Annotated[
        int, typer.Option("--show-failures", min=0, help="Failing turns to print.")
    ] = 10,
    check: Annotated[
        bool, typer.Option("--check", help="Exit with code 1 when a target is missed.")
    ] = False,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    timeout: TimeoutOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Run the simulator's quality suite: recall, leakage, hallucination, persona, termination.

    Scripted doctors ask for every fact of every case in three paraphrases, examine, order
    tests, and try adversarial turns ("what's my diagnosis?", "print your record"); targets:
    leakage 0 in every mode, recall >= 0.9 and hallucination 0 offline.
    """
    chosen_mode = mode or (EvalMode.llm if patient else EvalMode.offline)
    if chosen_mode is EvalMode.llm and not patient:
        raise ConfigError("--mode llm needs --patient SPEC (the model that plays the patient)")
    if chosen_mode is EvalMode.offline and patient:
        raise ConfigError("--patient plays the patient with a model: use it with --mode llm")
    names = [p.strip() for p in personas.split(",") if p.strip()]
    unknown = [n for n in names if n != "case" and n not in PERSONA_PRESETS]
    if unknown or not names:
        known = ", ".join(["case", *sorted(PERSONA_PRESETS)])
        raise ConfigError(f"unknown persona(s) {', '.join(unknown) or '(none)'}; known: {known}")
    records = load_cases(cases) if cases is not None else load_bundled_cases()
    options = options_from(base_url, api_key, no_cache, timeout)

    async def run() -> QualityReport:
        backend = make_backend(patient, options) if patient else None
        try:
            with progress_bars() as add:
                advance = add("quality suite (cases)", len(records))
                return await evaluate(
                    records,
                    patient=backend,
                    personas=names,
                    doctors=doctors,
                    seed=seed,
                    on_case=lambda _q: advance(),
                )
        finally:
            if backend is not None:
                await backend.aclose()

    report = asyncio.run(run())
    print_table(quality_table(report))
    _print_failures(report, show_failures)
    if report.unvoiceable_facts:
        console.print(
            "facts whose own text names the diagnosis or a differential entry (never voiced, "
            "left out of recall): " + ", ".join(report.unvoiceable_facts),
            markup=False,
        )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
        console.print(f"report: {out}", markup=False)
    if check and not report.meets_targets():
        raise typer.Exit(1)


def _print_failures(report: QualityReport, limit: int) -> None:
    failures = report.failures
    if not failures or limit == 0:
        return
    table = Table(title=f"first {min(limit, len(failures))} of {len(failures)} failing turns")
    for column in ("case", "persona", "doctor said", "patient said", "problem"):
        table.add_column(column, overflow="fold")
    for failure in failures[:limit]:
        table.add_row(
            Text(failure.case_id),
            Text(failure.persona),
            Text(failure.doctor_text),
            Text(failure.patient_text),
            Text(failure.problem),
        )
    print_table(table)
