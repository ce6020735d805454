"""Scores and files of a consultation benchmark run: verdicts -> scores -> results and report.

Scoring is HealthBench's, unchanged (``medverify.grading.scoring``): a consultation's score is
the points of its met criteria over its positive points, clipped to [0, 1] in the mean, with a
seeded bootstrap std; per-dimension and per-axis scores are the same computation over the items
with that tag. A consultation with a failed verdict is not scored (as in HealthBench runs) and
counts in ``n_grading_failures``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from medverify.backends.base import UsageMeter
from medverify.consult.process import summarize_process
from medverify.consult.records import CaseSummary, ConsultResults, ConsultUnit, UnitOutcome
from medverify.consult.render import grader_input
from medverify.consult.task import DIMENSION_PREFIX
from medverify.grading.results import ExampleResult, summarize
from medverify.report.outputs import write_outputs

REPORT_GROUPS = {"Dimensions": DIMENSION_PREFIX, "Axes": "axis:"}


def example_result(unit: ConsultUnit, outcome: UnitOutcome) -> ExampleResult:
    """A consultation as a graded example (what HealthBench's report and scoring take)."""
    conversation, response = grader_input(unit.case, outcome.transcript)
    return ExampleResult(
        prompt_id=unit.key,
        conversation=conversation,
        completion=response,
        example_tags=[f"persona:{unit.persona_name}"],
        verdicts=outcome.scored.verdicts,
        score=outcome.scored.score,
        metrics=outcome.scored.metrics,
    )


def case_summary(unit: ConsultUnit, outcome: UnitOutcome, example: ExampleResult) -> CaseSummary:
    """One row of the per-consultation table."""
    p = outcome.process
    return CaseSummary(
        key=unit.key,
        case_id=unit.case.id,
        persona=unit.persona_name,
        score=example.score,
        record_diagnosis=unit.case.diagnosis,
        stated_diagnosis=outcome.transcript.final_diagnosis,
        diagnosis_correct=p.diagnosis_correct,
        facts_elicited=p.facts_elicited,
        facts_total=p.facts_total,
        doctor_turns=p.doctor_turns,
        termination_reason=p.termination_reason,
        n_criteria=len(outcome.rubric),
        n_grading_failures=example.n_failures,
        scan=outcome.scored.scan,
        n_evidence_checked=outcome.scored.evidence_checked,
        n_not_measured=len(outcome.scored.not_measured),
    )


def summarize_scan(outcomes: Sequence[UnitOutcome]) -> dict[str, float | None]:
    """Mean SCAN-style sub-scores over consultations (each over those where it applies)."""
    scans = [o.scored.scan for o in outcomes]
    out: dict[str, float | None] = {}
    for name in ("inquiry", "exam_tests_recall", "exam_tests_precision"):
        values = [v for s in scans if (v := getattr(s, name)) is not None]
        out[name] = sum(values) / len(values) if values else None
    for name in ("diagnosis_final", "diagnosis_in_differential"):
        out[name] = sum(float(getattr(s, name)) for s in scans) / len(scans) if scans else None
    agreement = [a for o in outcomes if (a := o.scored.judge_agreement) is not None]
    out["judge_evidence_agreement"] = sum(agreement) / len(agreement) if agreement else None
    return out


def summarize_consult(
    units: Sequence[ConsultUnit],
    outcomes: Sequence[UnitOutcome],
    *,
    doctor: str,
    patient: str,
    grader: str,
    writer: str | None,
    usage: Mapping[str, UsageMeter],
    cost_estimate_usd: float | None,
    data_sha256: str,
    failed_units: Mapping[str, str] | None = None,
) -> tuple[ConsultResults, list[ExampleResult]]:
    """The run's aggregate and the per-consultation examples (for ``examples.jsonl``)."""
    by_key = {u.key: u for u in units}
    examples = [example_result(by_key[o.key], o) for o in outcomes]
    # HealthBench's aggregate, unchanged; a consultation run adds its own fields to it.
    base = summarize(
        examples,
        model=doctor,
        grader=grader,
        usage=dict(usage),
        cost_estimate_usd=cost_estimate_usd,
        data_sha256=data_sha256,
    )
    results = ConsultResults(
        **dict(base),
        patient=patient,
        rubric_writer=writer,
        dimensions={
            tag.removeprefix(DIMENSION_PREFIX): stat
            for tag, stat in base.tags.items()
            if tag.startswith(DIMENSION_PREFIX)
        },
        process=summarize_process([o.process for o in outcomes]),
        scan=summarize_scan(outcomes),
        cases=[case_summary(by_key[o.key], o, e) for o, e in zip(outcomes, examples, strict=True)],
        failed_units=dict(failed_units or {}),
    )
    return results, examples


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def process_section(results: ConsultResults) -> str:
    """The report's card of process measures and the per-consultation table (escaped HTML)."""
    p = results.process
    rows = [
        ("Consultations", f"{p.n}"),
        ("Mean doctor turns", f"{p.mean_doctor_turns:.1f}"),
        ("Mean questions asked", f"{p.mean_questions_asked:.1f}"),
        (
            "Mean repeated doctor turns",
            "–" if p.mean_repeated_turns is None else f"{p.mean_repeated_turns:.1f}",
        ),
        ("Facts elicited (mean share of the record's history)", _pct(p.mean_fact_recall)),
        ("Exam findings / test results obtained (mean share)", _pct(p.mean_finding_recall)),
        ("Gave a diagnosis", _pct(p.diagnosis_given_rate)),
        ("Named the record's diagnosis", _pct(p.diagnosis_correct_rate)),
        ("Red flags addressed", _pct(p.red_flags_addressed_rate)),
        ("Endings", ", ".join(f"{k}: {v}" for k, v in p.terminations.items())),
    ]
    summary = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows)
    cases = "".join(
        "<tr>"
        f"<td class='mono'>{escape(c.key)}</td>"
        f"<td>{'–' if c.score is None else f'{c.score:.2f}'}</td>"
        f"<td>{escape(c.stated_diagnosis or '(none)')}</td>"
        f"<td>{escape(c.record_diagnosis)}</td>"
        f"<td>{c.facts_elicited}/{c.facts_total}</td>"
        f"<td>{c.doctor_turns}</td>"
        f"<td>{escape(c.termination_reason or 'stopped')}</td>"
        "</tr>"
        for c in results.cases
    )
    failed = ""
    if results.failed_units:
        items = "".join(
            f"<li><code>{escape(k)}</code>: {escape(v)}</li>"
            for k, v in results.failed_units.items()
        )
        failed = (
            f"<p>Consultations that failed (retried when the run is resumed):</p><ul>{items}</ul>"
        )
    return (
        '<section class="card" id="process"><h2>What the doctor did</h2>'
        '<p class="muted">Measured from the transcripts, without a grader.</p>'
        f"<table><tbody>{summary}</tbody></table>{failed}</section>"
        '<section class="card" id="consultations"><h2>Consultations</h2><table><thead><tr>'
        "<th>consultation</th><th>score</th><th>stated diagnosis</th><th>record</th>"
        "<th>facts</th><th>turns</th><th>ended</th></tr></thead>"
        f"<tbody>{cases}</tbody></table></section>"
    )


def write_consult_outputs(
    run_dir: Path, results: ConsultResults, examples: Sequence[ExampleResult], *, title: str
) -> dict[str, Path]:
    """``results.json``, ``examples.jsonl`` and ``report.html`` (with per-dimension charts)."""
    return write_outputs(
        run_dir,
        results,
        examples,
        title=title,
        groups=REPORT_GROUPS,
        sections=[process_section(results)],
    )
