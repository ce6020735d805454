"""Two doctors on the same consultations, side by side: the table and the report page.

``medverify demo`` runs the embedded model and the trained doctor (``local:doctor``) on the same
cases with the same simulator, rubric and grader. Whether training helped is a difference, so
it is printed as one: every measure of both runs in one row, with the change; and the page
``compare.html`` puts the two transcripts of each case next to each other, so a reader can see
*what* changed, not only the number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from rich.table import Table

from medverify.consult.records import DIMENSIONS, ConsultResults
from medverify.grading.results import ExampleResult


def measures(results: ConsultResults) -> dict[str, float | None]:
    """The compared measures of one run, in display order."""
    row: dict[str, float | None] = {"overall": results.overall.score}
    for dim in DIMENSIONS:
        stat = results.dimensions.get(dim)
        row[dim.replace("_", " ")] = stat.score if stat is not None else None
    s, p = results.scan, results.process
    row.update(
        {
            "inquiry (checklist recall)": s.get("inquiry"),
            "exams and tests: recall": s.get("exam_tests_recall"),
            "exams and tests: precision": s.get("exam_tests_precision"),
            "facts elicited (mean share)": p.mean_fact_recall,
            "diagnosis named (rate)": p.diagnosis_given_rate,
            "diagnosis correct (rate)": p.diagnosis_correct_rate,
            "doctor turns (mean)": p.mean_doctor_turns,
            "repeated doctor turns (mean)": p.mean_repeated_turns,
        }
    )
    return row


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def compare_table(runs: Mapping[str, ConsultResults]) -> Table:
    """One row per measure, one column per run, and the change from the first run to the last."""
    names = list(runs)
    rows = {name: measures(r) for name, r in runs.items()}
    first, last = names[0], names[-1]
    grader = runs[first].grader
    table = Table(title=f"{' vs '.join(names)} on the same consultations — graded by {grader}")
    table.add_column("measure")
    for name in names:
        table.add_column(name, justify="right")
    if len(names) > 1:
        table.add_column("change", justify="right")
    for measure in rows[first]:
        values = [rows[n][measure] for n in names]
        cells = [_fmt(v) for v in values]
        if len(names) > 1:
            a, b = rows[first][measure], rows[last][measure]
            cells.append("–" if a is None or b is None else f"{b - a:+.3f}")
        table.add_row(measure, *cells, style="bold" if measure == "overall" else None)
    return table


def _column(example: ExampleResult | None) -> str:
    if example is None:
        return '<td class="muted">not run</td>'
    score = "–" if example.score is None else f"{example.score:.3f}"
    return (
        f'<td><div class="label">score {escape(score)}</div>'
        f'<div class="text">{escape(example.completion)}</div></td>'
    )


def render_compare(runs: Mapping[str, Sequence[ExampleResult]], *, title: str) -> str:
    """A self-contained page: per consultation, each doctor's transcript in its own column."""
    names = list(runs)
    by_name = {n: {e.prompt_id: e for e in runs[n]} for n in names}
    keys = list(dict.fromkeys(k for n in names for k in by_name[n]))
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    body = "".join(
        f"<h2>{escape(key)}</h2><table><tr>{head}</tr><tr>"
        + "".join(_column(by_name[n].get(key)) for n in names)
        + "</tr></table>"
        for key in keys
    )
    style = (
        "body{font-family:system-ui,sans-serif;margin:24px;color:#1f2933}"
        "table{border-collapse:collapse;width:100%;table-layout:fixed;margin-bottom:24px}"
        "td,th{border:1px solid #e4e7eb;padding:8px;vertical-align:top;text-align:left}"
        ".text{white-space:pre-wrap;overflow-wrap:anywhere;font-size:14px}"
        ".label,.muted{color:#616e7c;font-size:12px}"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{style}</style></head><body>"
        f"<h1>{escape(title)}</h1>{body}</body></html>\n"
    )


def write_compare(path: Path, runs: Mapping[str, Sequence[ExampleResult]], *, title: str) -> Path:
    """Write :func:`render_compare` to ``path`` (through a temporary file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(render_compare(runs, title=title), encoding="utf-8")
    tmp.replace(path)
    return path
