"""The offline HTML report (``report.html``) of an evaluation run.

Why it exists: ``results.json`` is for tools; a person deciding whether a model is good enough
wants the overall score with its uncertainty, where the model is weak (themes, axes, consultation
dimensions), and above all the worst responses with each rubric verdict, to see *why* they
scored low and whether the grader was right. The page is one self-contained file: inline CSS and
SVG, no JavaScript, no external resources, so it opens offline from a copied run directory and
never leaks a prompt to a CDN. Every piece of model, user and grader text is HTML-escaped.

Written by ``medverify healthbench`` (via ``medverify.report.outputs.write_outputs``) and
by the consultation benchmark, next to ``results.json`` in the run directory.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt

from medverify.grading.results import CriterionVerdict, ExampleResult, RunResults
from medverify.report.charts import bar_chart
from medverify.secrets import redact_url

log = logging.getLogger(__name__)

#: Charts drawn by default: chart title -> tag prefix.
DEFAULT_GROUPS: dict[str, str] = {"Themes": "theme:", "Axes": "axis:"}

_CSS = """
:root {
  --text: #1f2933; --muted: #616e7c; --line: #e4e7eb; --bg: #f7f8fa; --card: #ffffff;
  --accent: #4f7cac; --good: #1f7a4d; --good-bg: #e6f4ec; --bad: #b42318; --bad-bg: #fdecea;
  --warn: #8a5a00; --warn-bg: #fff4de;
}
* { box-sizing: border-box; }
html { background: var(--bg); }
body {
  margin: 0; color: var(--text); font-size: 15px; line-height: 1.5;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    "Noto Sans", sans-serif;
}
main { max-width: 1040px; margin: 0 auto; padding: 32px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 18px; margin: 0 0 12px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 0.9em; }
.sub { color: var(--muted); margin: 0 0 20px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 20px 24px; margin: 0 0 20px; }
.meta { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr));
  gap: 12px 24px; margin: 0; }
.meta div { min-width: 0; }
.meta dt { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: 0.04em; }
.meta dd { margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th { text-align: left; font-weight: 600; color: var(--muted); font-size: 12px;
  text-transform: uppercase; letter-spacing: 0.04em; }
th, td { padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.usage { margin-top: 16px; }
.headline { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; margin: 0 0 4px; }
.big { font-size: 48px; font-weight: 700; line-height: 1.1; font-variant-numeric: tabular-nums; }
.pm { font-size: 20px; color: var(--muted); font-variant-numeric: tabular-nums; }
.label { color: var(--muted); font-size: 13px; text-transform: uppercase;
  letter-spacing: 0.04em; }
.charts { display: grid; gap: 8px; }
svg.chart { display: block; max-width: 100%; height: auto; }
.failures { font-weight: 600; }
.failures.ok { color: var(--good); background: var(--good-bg); border-color: #b7dfc8; }
.failures.bad { color: var(--bad); background: var(--bad-bg); border-color: #f3b8b2; }
.failures p { margin: 4px 0 0; font-weight: 400; color: var(--text); }
details.example { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  margin: 0 0 10px; }
details.example > summary { cursor: pointer; padding: 12px 16px; display: flex; gap: 10px;
  align-items: center; flex-wrap: wrap; list-style: none; }
details.example > summary::-webkit-details-marker { display: none; }
details.example > summary::before { content: "▸"; color: var(--muted); width: 10px; }
details.example[open] > summary::before { content: "▾"; }
details.example[open] > summary { border-bottom: 1px solid var(--line); }
.ex-body h3 .tally { text-transform: none; letter-spacing: 0; font-weight: 400;
  margin-left: 6px; }
.ex-body { padding: 12px 16px 16px; }
.ex-body h3 { font-size: 13px; color: var(--muted); text-transform: uppercase;
  letter-spacing: 0.04em; margin: 16px 0 6px; }
.score { display: inline-block; min-width: 64px; text-align: center; border-radius: 6px;
  padding: 1px 8px; font-weight: 600; font-variant-numeric: tabular-nums; }
.score.low { background: var(--bad-bg); color: var(--bad); }
.score.mid { background: var(--warn-bg); color: var(--warn); }
.score.high { background: var(--good-bg); color: var(--good); }
.score.none { background: #eceff3; color: var(--muted); font-weight: 400; font-style: italic; }
.chip { display: inline-block; background: #eef1f5; color: #3e4c59; border-radius: 999px;
  padding: 0 8px; font-size: 12px; margin: 1px 2px; }
.warn-chip { background: var(--bad-bg); color: var(--bad); }
.turn { border-left: 3px solid var(--line); padding: 2px 0 2px 12px; margin: 0 0 8px; }
.turn.user { border-left-color: #9fb3c8; }
.turn.assistant { border-left-color: var(--accent); }
.role { font-size: 12px; font-weight: 600; color: var(--muted); text-transform: uppercase;
  letter-spacing: 0.04em; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
.completion.md p, .completion.md ul, .completion.md ol { margin: 0 0 8px; }
.completion.md table { width: auto; margin: 0 0 8px; }
.completion { background: #f4f7fb; border: 1px solid #dbe4ee; border-radius: 8px;
  padding: 10px 14px; }
.crit td.pts { font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
.crit td.pts.neg { color: var(--bad); }
.crit tr.neg td { background: #fffafa; }
.crit .tags { margin-top: 2px; }
.verdict { white-space: nowrap; font-weight: 600; }
.verdict.good { color: var(--good); }
.verdict.bad { color: var(--bad); }
.verdict.fail { color: var(--warn); }
.verdict.na { color: var(--muted); }
.error { color: var(--warn); font-size: 13px; overflow-wrap: anywhere; }
.explanation { color: #3e4c59; font-size: 13px; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
footer { color: var(--muted); font-size: 12px; margin-top: 32px; text-align: center; }
"""


def _e(value: object) -> str:
    """HTML-escape any value for text or a quoted attribute."""
    return escape(str(value), quote=True)


def _num(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return str(value)


def _cost(value: float | None) -> str:
    if value is None:
        return "not estimated"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def _usage_html(usage: Mapping[str, Any]) -> str:
    """Usage as a table when it maps backend names to counters, else as a list."""
    if not usage:
        return ""
    if all(isinstance(v, Mapping) for v in usage.values()):
        columns: list[str] = []
        for counters in usage.values():
            columns.extend(k for k in counters if k not in columns)
        head = "".join(f'<th class="num">{_e(c.replace("_", " "))}</th>' for c in columns)
        rows = "".join(
            f"<tr><td>{_e(name)}</td>"
            + "".join(
                f'<td class="num">{_e(_num(counters[c])) if c in counters else ""}</td>'
                for c in columns
            )
            + "</tr>"
            for name, counters in usage.items()
        )
        return (
            f'<div class="usage"><table><thead><tr><th>usage</th>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>"
        )
    items = "".join(f"<tr><td>{_e(k)}</td><td>{_e(_num(v))}</td></tr>" for k, v in usage.items())
    return f'<div class="usage"><table><tbody>{items}</tbody></table></div>'


def _header(results: RunResults, n_examples: int, title: str) -> str:
    sha = results.data_sha256
    scored = f"{results.overall.n:,} scored"
    if n_examples != results.overall.n:
        scored += f" of {n_examples:,} in this report"
    meta = [
        ("Model", f"<code>{_e(results.model)}</code>"),
        ("Grader", f"<code>{_e(results.grader)}</code>"),
        ("Examples", _e(scored)),
        ("medverify", _e(results.medverify_version)),
        (
            "Data sha256",
            f'<code title="{_e(sha)}">{_e(sha[:12])}{"…" if len(sha) > 12 else ""}</code>'
            if sha
            else '<span class="muted">unknown</span>',
        ),
        ("Estimated cost", _e(_cost(results.cost_estimate_usd))),
    ]
    items = "".join(f"<div><dt>{label}</dt><dd>{value}</dd></div>" for label, value in meta)
    return (
        f"<header><h1>{_e(title)}</h1>"
        '<p class="sub">medverify evaluation report</p>'
        f'<section class="card"><dl class="meta">{items}</dl>'
        f"{_usage_html(results.usage)}</section></header>"
    )


def _overall(results: RunResults) -> str:
    stat = results.overall
    return (
        '<section class="card" id="overall">'
        '<div class="label">Overall score</div>'
        f'<div class="headline"><span class="big">{stat.score:.3f}</span>'
        f'<span class="pm">± {stat.std:.3f}</span>'
        f'<span class="muted">n = {stat.n:,} examples · ± is the bootstrap std</span></div>'
        f"{bar_chart([('overall', stat)], title='')}"
        "</section>"
    )


def _failures(results: RunResults) -> str:
    """The failures card: green only when nothing failed and something was scored."""
    n = results.n_grading_failures
    # Failures the subclasses add: HealthBench's model failures, the consultation benchmark's
    # failed units (consultations that could not run).
    n_model = int(getattr(results, "n_model_failures", 0) or 0)
    n_units = len(getattr(results, "failed_units", None) or {})
    if n == 0 and n_model == 0 and n_units == 0 and results.overall.n > 0:
        return '<section class="card failures ok" id="failures">No grading failures.</section>'
    counts = []
    notes = []
    if n_units:
        counts.append(f"{n_units:,} failed unit{'s' if n_units != 1 else ''}")
        notes.append(
            "<p>Units of work (consultations) that failed to run; they are not scored. "
            "Rerunning the same command with the same run directory retries them.</p>"
        )
    if n_model:
        counts.append(f"{n_model:,} model failure{'s' if n_model != 1 else ''}")
        notes.append(
            "<p>Completions the model under test could not produce (after retries); their "
            "examples are not scored. Rerunning the same command with the same run directory "
            "retries them.</p>"
        )
    if n:
        counts.append(f"{n:,} grading failure{'s' if n != 1 else ''}")
        notes.append(
            "<p>Criteria the grader could not judge (after retries). They are marked "
            "<em>grading failed</em> with the error in the examples below; rerunning the same "
            "command with the same run directory retries them.</p>"
        )
    if results.overall.n == 0:
        counts.append("nothing was scored")
        if not notes:
            notes.append("<p>No example has a score, so the overall score means nothing.</p>")
    summary = "; ".join(counts)
    return (
        '<section class="card failures bad" id="failures">'
        f"{summary[:1].upper()}{summary[1:]}{''.join(notes)}</section>"
    )


def _group_charts(results: RunResults, groups: Mapping[str, str]) -> str:
    charts = []
    for chart_title, prefix in groups.items():
        rows = sorted(
            ((tag, stat) for tag, stat in results.tags.items() if tag.startswith(prefix)),
            key=lambda row: (-row[1].score, row[0]),
        )
        charts.append(bar_chart(rows, title=chart_title))
    if not charts:
        return ""
    return (
        '<section class="card" id="breakdown"><h2>Scores by tag</h2>'
        f'<div class="charts">{"".join(charts)}</div></section>'
    )


def _all_tags(results: RunResults) -> str:
    if not results.tags:
        return ""
    rows = "".join(
        f"<tr><td><code>{_e(tag)}</code></td><td class='num'>{stat.score:.3f}</td>"
        f"<td class='num'>{stat.std:.3f}</td><td class='num'>{stat.n:,}</td></tr>"
        for tag, stat in sorted(results.tags.items())
    )
    return (
        '<section class="card" id="all-tags"><details>'
        f"<summary><strong>All tag scores</strong> "
        f'<span class="muted">({len(results.tags):,} tags)</span></summary>'
        "<table><thead><tr><th>tag</th><th class='num'>score</th><th class='num'>std</th>"
        f"<th class='num'>n</th></tr></thead><tbody>{rows}</tbody></table>"
        "</details></section>"
    )


def _score_badge(score: float | None) -> str:
    if score is None:
        return '<span class="score none">not scored</span>'
    tier = "low" if score < 0.25 else "mid" if score < 0.6 else "high"
    return f'<span class="score {tier}">{score:.3f}</span>'


_HINTS = {  # (met, negative criterion) -> what the verdict did to the score
    (True, False): "points awarded",
    (False, False): "points missed",
    (True, True): "penalty applied",
    (False, True): "penalty avoided",
}


def _verdict_cell(v: CriterionVerdict) -> str:
    if not v.measured:
        return (
            f'<td><span class="verdict na" title="{_e(v.explanation)}">not measured offline'
            "</span></td>"
        )
    if v.met is None:
        error = f'<div class="error">{_e(v.error)}</div>' if v.error else ""
        return f'<td><span class="verdict fail">grading failed</span>{error}</td>'
    # Meeting a negative criterion is bad; avoiding it is good.
    good = v.met == (v.points >= 0)
    text = "met" if v.met else "not met"
    hint = _HINTS[(v.met, v.points < 0)]
    return (
        f'<td><span class="verdict {"good" if good else "bad"}" title="{hint}">'
        f"{'✓' if v.met else '✗'} {text}</span></td>"
    )


def _criteria_table(verdicts: Sequence[CriterionVerdict]) -> str:
    if not verdicts:
        return '<p class="muted">No criteria.</p>'
    rows = []
    for v in verdicts:
        neg = v.points < 0
        tags = (
            '<div class="tags">'
            + "".join(f'<span class="chip">{_e(t)}</span>' for t in v.tags)
            + "</div>"
            if v.tags
            else ""
        )
        explanation = f'<div class="explanation text">{_e(v.explanation)}</div>'
        rows.append(
            f'<tr class="{"neg" if neg else "pos"}">'
            f'<td class="pts{" neg" if neg else ""}">{"−" if neg else "+"}{abs(v.points)}</td>'
            f'<td><div class="text">{_e(v.criterion)}</div>{tags}</td>'
            f"{_verdict_cell(v)}<td>{explanation}</td></tr>"
        )
    return (
        '<table class="crit"><thead><tr><th>points</th><th>criterion</th><th>verdict</th>'
        f"<th>explanation</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


_MARKDOWN = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable("table")


def _image_as_text(_self: Any, tokens: Any, idx: int, _options: Any, _env: Any) -> str:
    """An image stays text (its alt and address): the page never fetches anything."""
    token = tokens[idx]
    return escape(f"[image: {token.content} {token.attrGet('src') or ''}]".replace("  ", " "))


_MARKDOWN.add_render_rule("image", _image_as_text)


def render_markdown(text: str) -> str:
    """A model's completion as HTML: its Markdown rendered, its raw HTML escaped.

    Models answer in Markdown (lists, bold, tables); shown raw, a reader wades through the
    asterisks. Raw HTML in the completion is escaped (``html: False``), unsafe link targets
    such as ``javascript:`` are refused by markdown-it's link validation, and images are not
    shown as text, so the page still loads nothing from elsewhere.
    """
    return _MARKDOWN.render(text)


def _example(ex: ExampleResult, *, expanded: bool = False) -> str:
    ident = ex.prompt_id + (f" · repeat {ex.repeat}" if ex.repeat else "")
    chips = "".join(f'<span class="chip">{_e(t)}</span>' for t in ex.example_tags)
    n_fail = ex.n_failures
    fail_chip = (
        f'<span class="chip warn-chip">{n_fail} grading failure{"s" if n_fail != 1 else ""}</span>'
        if n_fail
        else ""
    )
    turns = "".join(
        f'<div class="turn {_e(turn.get("role", ""))}">'
        f'<div class="role">{_e(turn.get("role", "?"))}</div>'
        f'<div class="text">{_e(turn.get("content", ""))}</div></div>'
        for turn in ex.conversation
    )
    met = sum(1 for v in ex.verdicts if v.met)
    possible = sum(v.points for v in ex.verdicts if v.points > 0)
    achieved = sum(v.points for v in ex.verdicts if v.met)
    tally = (
        f"{met} of {len(ex.verdicts)} met · {achieved:g} of {possible:g} points".replace("-", "−")
        if ex.verdicts
        else ""
    )
    return (
        f'<details class="example"{" open" if expanded else ""}>'
        f"<summary>{_score_badge(ex.score)} <code>{_e(ident)}</code>{fail_chip}"
        f'<span class="tags">{chips}</span></summary>'
        '<div class="ex-body">'
        f"<h3>Conversation</h3>{turns or '<p class=muted>(empty)</p>'}"
        f'<h3>Completion</h3><div class="completion md">{render_markdown(ex.completion)}</div>'
        f'<h3>Criteria<span class="tally muted">{_e(tally)}</span></h3>'
        f"{_criteria_table(ex.verdicts)}</div></details>"
    )


def worst_examples(examples: Sequence[ExampleResult], n: int) -> list[ExampleResult]:
    """The ``n`` lowest-scoring examples, lowest first; unscored ones (``None``) come last."""
    ranked = sorted(
        examples,
        key=lambda ex: (ex.score is None, ex.score if ex.score is not None else 0.0),
    )
    return ranked[: max(0, n)]


def _worst(examples: Sequence[ExampleResult], worst_n: int) -> str:
    chosen = worst_examples(examples, worst_n)
    if not chosen:
        body = '<p class="muted">No examples.</p>'
    else:
        # The very worst is expanded, so the page opens on one full example.
        body = "".join(_example(ex, expanded=i == 0) for i, ex in enumerate(chosen))
    note = (
        f"The {len(chosen):,} lowest-scoring of {len(examples):,} examples, lowest first; "
        "examples without a score (a grading failure, or no positive criteria) come last. "
        "Open one to see the conversation, the completion and every verdict."
    )
    return (
        f'<section id="worst"><h2>Worst examples</h2><p class="muted">{_e(note)}</p>'
        f"{body}</section>"
    )


def render_report(
    results: RunResults,
    examples: Sequence[ExampleResult],
    *,
    title: str,
    worst_n: int = 10,
    groups: Mapping[str, str] | None = None,
    sections: Sequence[str] = (),
) -> str:
    """The whole report as one self-contained HTML page.

    Args:
        results: The run's aggregate (``results.json``).
        examples: Every graded example of the run (``examples.jsonl``).
        title: The page heading, e.g. ``"HealthBench (hard) — gpt-4.1-mini"``.
        worst_n: How many of the lowest-scoring examples to show in full.
        groups: Chart title -> tag prefix; one bar chart per entry over the tags of
            ``results.tags`` with that prefix. Defaults to :data:`DEFAULT_GROUPS`.
        sections: Extra cards of already-escaped HTML (the consultation benchmark's process
            measures), placed after the overall score.

    Returns:
        The HTML document: inline CSS and SVG, no scripts, no external resources.
    """
    groups = DEFAULT_GROUPS if groups is None else groups
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
        f"{_header(results, len(examples), title)}"
        f"{_overall(results)}"
        f"{_failures(results)}"
        f"{''.join(sections)}"
        f"{_group_charts(results, groups)}"
        f"{_all_tags(results)}"
        f"{_worst(examples, worst_n)}"
        f"<footer>medverify {_e(results.medverify_version)} · a self-contained page: "
        "no scripts, no external resources</footer>"
        "</main></body></html>\n"
    )


def write_report(
    path: str | os.PathLike[str],
    results: RunResults,
    examples: Sequence[ExampleResult],
    *,
    title: str,
    worst_n: int = 10,
    groups: Mapping[str, str] | None = None,
    sections: Sequence[str] = (),
) -> Path:
    """Render the report and write it atomically (a temporary file, then ``os.replace``).

    A reader never sees a half-written page, and a crash leaves the previous report intact.

    Args:
        path: Where to write, usually ``<run-dir>/report.html``; parent folders are created.
        results: The run's aggregate.
        examples: Every graded example of the run.
        title: The page heading.
        worst_n: How many of the lowest-scoring examples to show in full.
        groups: Chart title -> tag prefix, see :func:`render_report`.
        sections: Extra cards of escaped HTML, see :func:`render_report`.

    Returns:
        The path written.
    """
    target = Path(path)
    # Credentials in a URL (an endpoint named in an error) are masked in the page.
    page = redact_url(
        render_report(
            results, examples, title=title, worst_n=worst_n, groups=groups, sections=sections
        )
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(page)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a report is meant to be shared
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("wrote %s (%d examples, %d kB)", target, len(examples), len(page) // 1024)
    return target
