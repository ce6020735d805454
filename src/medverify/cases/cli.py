"""``medverify cases import|list|show`` — public case sets in, case records out.

A thin typer layer: :mod:`medverify.cases.importers` converts, :mod:`medverify.cases.loading`
loads and writes, :mod:`medverify.cases.personas` assigns reproducible personas.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from medverify.cases.importers import read_cases
from medverify.cases.loading import (
    bundled_cases_dir,
    case_json,
    load_case,
    load_case_arg,
    load_cases,
    write_cases,
)
from medverify.cases.personas import with_seeded_persona
from medverify.cases.records import CaseRecord
from medverify.cli_common import console, err_console, print_table, writable_dir
from medverify.errors import InputError

app = typer.Typer(
    help="Case records for the patient simulator: import public case sets, list, show.",
    no_args_is_help=True,
)


class CaseFormat(str, Enum):
    """Source formats ``cases import`` understands."""

    agentclinic = "agentclinic"
    mediq = "mediq"


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="The source file (JSONL).")],
    source_format: Annotated[
        CaseFormat, typer.Option("--format", "-f", help="agentclinic | mediq")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Directory for the case files.", callback=writable_dir),
    ],
    limit: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many converted cases.")
    ] = None,
    ids: Annotated[
        str | None,
        typer.Option(
            help="Only these case ids, comma-separated (ids come from each item's content: "
            "agentclinic-medqa-<hash8>, or the recorded ids of the bundled cases such as "
            "agentclinic-medqa-001)."
        ),
    ] = None,
    personas: Annotated[
        bool, typer.Option("--personas", help="Give each case a persona seeded by its id.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace case files that already exist.")
    ] = False,
) -> None:
    """Convert a public case set into one JSON case record per file."""
    only = {i.strip() for i in ids.split(",") if i.strip()} if ids else None
    result = read_cases(source_format.value, file, limit=limit, only=only)
    cases = [with_seeded_persona(c) for c in result.cases] if personas else result.cases
    if only is not None:
        missing = sorted(only - {c.id for c in cases} - {s.source_id for s in result.skipped})
        if missing:
            raise InputError(
                f"no such case id(s) in the file: {', '.join(missing)} (ids come from each "
                "item's content, e.g. agentclinic-medqa-<hash8>, not its line; import without "
                "--ids to see them)",
                path=file,
            )
    paths = write_cases(cases, out, overwrite=overwrite) if cases else []
    console.print(
        f"converted {len(cases)} of {result.total} {source_format.value} items; "
        f"skipped {len(result.skipped)}"
        + (f"; not diagnosis cases: {result.filtered_out}" if result.filtered_out else "")
        + (
            f"; dropped {result.dropped_findings} findings that name the diagnosis"
            if result.dropped_findings
            else ""
        ),
        markup=False,
    )
    for item in result.skipped[:5]:
        err_console.print(
            f"skipped line {item.line} ({item.source_id}): {item.reason}", markup=False
        )
    if len(result.skipped) > 5:
        err_console.print(f"... and {len(result.skipped) - 5} more skipped", markup=False)
    if paths:
        console.print(f"wrote {len(paths)} case files to {out}", markup=False)


@app.command("list")
def list_(
    path: Annotated[
        Path | None,
        typer.Argument(help="A case file or directory (default: the bundled cases)."),
    ] = None,
) -> None:
    """Show a table of cases: id, patient, chief complaint, diagnosis, fact counts."""
    source = path or bundled_cases_dir()
    cases = load_cases(source)
    table = Table(title=f"{len(cases)} cases in {source}")
    table.add_column("id", no_wrap=True)
    table.add_column("age/sex", no_wrap=True)
    table.add_column("chief complaint")
    table.add_column("diagnosis")
    table.add_column("facts/exam/tests", justify="right", no_wrap=True)
    for case in cases:
        table.add_row(*_escape(_row(case)))
    print_table(table)


@app.command()
def show(
    id_or_file: Annotated[str, typer.Argument(help="A case id or a case file.")],
    cases_path: Annotated[
        Path | None,
        typer.Option("--cases", help="Where to look the id up (default: the bundled cases)."),
    ] = None,
) -> None:
    """Print one case record as JSON (a file, else an id as ``--case`` reads it)."""
    candidate = Path(id_or_file)
    if candidate.is_file():
        case = load_case(candidate)
    elif cases_path is None:
        case = load_case_arg(id_or_file)
    else:
        matches = [c for c in load_cases(cases_path) if c.id == id_or_file]
        if not matches:
            raise InputError(f"no case with id {id_or_file!r} (and no such file)", path=cases_path)
        case = matches[0]
    typer.echo(case_json(case), nl=False)  # raw: no wrapping, so the output stays valid JSON


def _row(case: CaseRecord) -> list[str]:
    return [
        case.id,
        f"{case.demographics.age}/{case.demographics.sex[:1].upper() or '?'}",
        case.chief_complaint,
        case.diagnosis,
        f"{len(case.facts)}/{len(case.exam_findings)}/{len(case.test_results)}",
    ]


def _escape(cells: list[str]) -> list[str]:
    return [escape(cell) for cell in cells]
