"""``medverify train rs-sft|grpo|pipeline --config FILE`` -- a thin layer over :mod:`pipeline`.

All three read the same config format (:mod:`medverify.train.config`): ``pipeline`` runs every
stage in order, ``rs-sft`` and ``grpo`` only the stages of that kind. The config is validated
before any model loads; a rerun with the same ``--run-dir`` resumes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from medverify.cli_common import console, print_table, writable_dir
from medverify.errors import ConfigError
from medverify.train.config import PipelineConfig, load_config
from medverify.train.export import export_doctor
from medverify.train.pipeline import run_pipeline
from medverify.train.round_validation import RoundValidation, validate_rounds

app = typer.Typer(
    help="Training against the verifier on TRL: rejection-sampling SFT, GRPO, staged pipeline.",
    no_args_is_help=True,
)

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="Training config (YAML).")]
RunDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--run-dir",
        help="Checkpoints, evals, curves; rerun with it to resume.",
        callback=writable_dir,
    ),
]
CheckOpt = Annotated[
    bool, typer.Option("--check", help="Validate the config and print the stages; train nothing.")
]


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("-" if value is None else str(value))


def _run(config: Path, run_dir: Path | None, kinds: set[str] | None, check: bool) -> None:
    cfg = load_config(config)
    if check:
        for stage in cfg.stages:
            if kinds is None or stage.kind in kinds:
                console.print(f"{stage.name}: {stage.kind} {stage.task or ''}".rstrip())
        return
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run = run_dir or Path(cfg.run_dir or f"medverify-runs/train-{stamp}")
    outcome = run_pipeline(cfg, run, kinds=kinds)
    table = Table(title="evaluation (held-out)")
    keys = ["mcq_accuracy", "healthbench_score", "consult_rubric_score", "consult_process_score"]
    table.add_column("after")
    for key in keys:
        table.add_column(key)
    for name, scores in outcome.evals.items():
        table.add_row(name, *[_fmt(scores.get(k)) for k in keys])
    print_table(table)
    console.print(f"run directory: {outcome.run_dir} (summary.json, curves.png, stages/)")


@app.command("pipeline")
def pipeline(config: ConfigOpt, run_dir: RunDirOpt = None, check: CheckOpt = False) -> None:
    """Run every stage of the config in order, evaluating before and after each."""
    _run(config, run_dir, None, check)


@app.command("rs-sft")
def rs_sft(config: ConfigOpt, run_dir: RunDirOpt = None, check: CheckOpt = False) -> None:
    """Rejection-sampling SFT: the config's rs_sft stages (sample k, grade, keep the best)."""
    _run(config, run_dir, {"rs_sft"}, check)


@app.command("grpo")
def grpo(config: ConfigOpt, run_dir: RunDirOpt = None, check: CheckOpt = False) -> None:
    """GRPO with verifier rewards: the config's grpo stages."""
    _run(config, run_dir, {"grpo"}, check)


def _validate(
    cfg: PipelineConfig, config: Path, run_dir: Path, stage: str, n_cases: int
) -> RoundValidation:
    """Every round's adapter on the validation cases, with a table of what each did."""
    stages = {s.name: s for s in cfg.stages}
    if stage not in stages or stages[stage].ei is None:
        raise ConfigError(f"{config}: no expert_iteration stage named {stage!r}")
    stage_dir = run_dir / "stages" / stage
    validation = asyncio.run(
        validate_rounds(
            stages[stage],
            stage_dir,
            n_cases=n_cases,
            work_dir=stage_dir / "validation",
            on_policy=lambda label: console.print(f"validating {label} ...", markup=False),
        )
    )
    table = Table(title=f"validation ({len(validation.case_ids)} training cases no round drew)")
    for column in ("policy", "mean score", "diagnosis named", "facts elicited"):
        table.add_column(column)
    for label, p in validation.policies.items():
        mark = " (chosen)" if label == str(validation.chosen) else ""
        table.add_row(
            label + mark, _fmt(p.mean_score), _fmt(p.diagnosis_named), _fmt(p.facts_elicited)
        )
    print_table(table)
    return validation


@app.command("export-doctor")
def export_doctor_cmd(
    config: ConfigOpt,
    run_dir: Annotated[Path, typer.Option("--run-dir", help="The finished training run.")],
    stage: Annotated[str, typer.Option(help="The expert_iteration stage.")] = "doctor",
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write the adapter (default: the package's, for local:doctor)."),
    ] = None,
    heldout: Annotated[
        Path | None,
        typer.Option(help="benchmarks/results/train_doctor.json, recorded beside the adapter."),
    ] = None,
    round_: Annotated[
        str,
        typer.Option(
            "--round",
            help="Which round's adapter: validated (each adapter played on training cases no "
            "round drew; the best verifier score), best (best reward on the training cases' "
            "searched consultations), last, or a number.",
        ),
    ] = "validated",
    validation_cases: Annotated[
        int, typer.Option(min=1, help="With --round validated: how many validation cases.")
    ] = 12,
) -> None:
    """Ship a trained doctor: the stage's adapter where local:doctor loads it, with doctor.json.

    doctor.json says how it was made: recipe, training cases, commit, rounds, held-out scores.
    """
    cfg = load_config(config)
    summary = None
    if heldout is not None:
        try:
            data = json.loads(heldout.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise ConfigError(f"{heldout}: cannot read the benchmark result ({exc})") from None
        summary = {k: data.get(k) for k in ("date", "machine", "settings", "cases", "all")}
    kwargs = {"out": out} if out is not None else {}
    validation = None
    if round_ == "validated":
        validation = _validate(cfg, config, run_dir, stage, validation_cases)
    path = export_doctor(
        cfg,
        config,
        run_dir,
        stage=stage,
        heldout=summary,
        round_choice=round_,
        validation=validation,
        **kwargs,
    )
    console.print(f"adapter and doctor.json written to {path}", markup=False, soft_wrap=True)
