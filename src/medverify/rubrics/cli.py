"""``medverify rubrics``: the rubric of a case (and of one consultation), printed and saved.

A thin typer layer over :func:`medverify.rubrics.generate_rubric`. Examples::

    medverify rubrics --case agentclinic-medqa-001                       # deterministic core
    medverify rubrics --case my_case.yaml --transcript t.json --out r.json
    medverify rubrics --case agentclinic-medqa-001 --writer openai:gpt-4.1 --seed 1

The JSON written by ``--out`` is the whole :class:`~medverify.rubrics.Rubric` record (case id,
generator and version, writer, seed, warnings, where each item came from) because a rubric
without its provenance cannot be reproduced; its ``items`` field is the plain HealthBench list
(``jq .items r.json``), or pass ``--items-only`` to write just that list.
"""

from __future__ import annotations

import asyncio
import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table
from rich.text import Text

from medverify.backends.registry import make_backend
from medverify.cases.loading import load_case_arg
from medverify.cases.records import Transcript
from medverify.cli_common import (
    ApiKeyOpt,
    BaseUrlOpt,
    NoCacheOpt,
    TimeoutOpt,
    console,
    options_from,
    print_table,
    writable_file,
)
from medverify.errors import InputError
from medverify.rubrics.generate import generate_rubric
from medverify.rubrics.records import Rubric, dimension_of
from medverify.rubrics.validate import check_case

HELP = (
    "Generate a clinical rubric for a case: weighted criteria across diagnostic accuracy, "
    "consultation logic, treatment, communication and ethics, in HealthBench format.\n\n"
    "Offline and deterministic by default (from the case record alone); --transcript adds items "
    "about that consultation; --writer SPEC adds case-specific criteria from a model, "
    "validated, falling back to the core with a warning if the model fails."
)


class DedupeChoice(str, Enum):
    """How ``--dedupe`` finds near duplicates."""

    auto = "auto"
    embeddings = "embeddings"
    tokens = "tokens"


def load_transcript(path: Path) -> Transcript:
    """A consultation transcript from JSON (as ``medverify simulate --out`` writes it).

    Raises:
        InputError: missing, not JSON, or not a transcript (names the file and the field).
    """
    if not path.is_file():
        raise InputError("no such transcript file", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    except RecursionError:
        raise InputError("not valid JSON (nested too deeply)", path=path) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=path) from None
    try:
        return Transcript.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise InputError(first["msg"], path=path, field=field) from None


def rubric_table(rubric: Rubric) -> Table:
    """The rubric as a table: points, dimension, axis, origin, criterion."""
    table = Table(
        title=f"Rubric for {rubric.case_id} ({rubric.generator}, v{rubric.version}): "
        f"{len(rubric.items)} criteria, +{rubric.positive_points} / {rubric.negative_points} points"
    )
    table.add_column("pts", justify="right")
    table.add_column("dimension")
    table.add_column("axis")
    table.add_column("from")
    table.add_column("criterion", overflow="fold")
    for item, origin in zip(rubric.items, rubric.origins, strict=True):
        axis = next((t.removeprefix("axis:") for t in item.tags if t.startswith("axis:")), "")
        style = "red" if item.points < 0 else "green"
        table.add_row(
            Text(f"{item.points:+d}", style=style),
            Text(dimension_of(item) or ""),
            Text(axis),
            Text(origin),
            Text(item.criterion),
        )
    return table


def rubrics(
    case: Annotated[
        str,
        typer.Option(
            "--case",
            help="A case file (JSON/YAML) or a bundled case id (see 'medverify cases list').",
            show_default=False,
        ),
    ],
    transcript: Annotated[
        Path | None,
        typer.Option("--transcript", "-t", help="A consultation transcript JSON of this case."),
    ] = None,
    writer: Annotated[
        str | None,
        typer.Option(
            "--writer",
            "-w",
            help="Backend spec of an LLM rubric writer (default: none, the deterministic core).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the rubric JSON here.", callback=writable_file),
    ] = None,
    items_only: Annotated[
        bool,
        typer.Option("--items-only", help="Write only the list of rubric items (HealthBench)."),
    ] = False,
    seed: Annotated[int, typer.Option(help="The writer's sampling seed.")] = 0,
    dedupe: Annotated[
        DedupeChoice,
        typer.Option(
            help="Near-duplicate removal: auto (MiniLM when a writer added items, else word "
            "overlap), embeddings, or tokens.",
        ),
    ] = DedupeChoice.auto,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    timeout: TimeoutOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Generate a clinical rubric for a case (and optionally a consultation); print and save it."""
    record = load_case_arg(case)
    if Path(case).exists():
        check_case(record, path=case)
    consultation = load_transcript(transcript) if transcript is not None else None
    if consultation is not None and consultation.case_id != record.id:
        raise InputError(
            f"the transcript is of case {consultation.case_id!r}, not {record.id!r}",
            path=transcript,
            field="case_id",
        )

    async def run() -> Rubric:
        backend = (
            make_backend(writer, options_from(base_url, api_key, no_cache, timeout))
            if (writer)
            else None
        )
        try:
            return await generate_rubric(
                record, consultation, writer=backend, seed=seed, dedupe=dedupe.value
            )
        finally:
            if backend is not None:
                await backend.aclose()

    rubric = asyncio.run(run())
    print_table(rubric_table(rubric))
    for warning in rubric.warnings:
        console.print(f"warning: {warning}", markup=False, style="yellow")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        if items_only:
            payload = json.dumps([i.model_dump() for i in rubric.items], indent=2)
        else:
            payload = rubric.model_dump_json(indent=2)
        out.write_text(payload + "\n", encoding="utf-8")
        console.print(f"rubric: {out}", markup=False)
