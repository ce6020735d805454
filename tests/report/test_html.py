"""The HTML report: content, ordering, escaping, self-containment and the atomic write."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medverify.grading.results import CriterionVerdict, ExampleResult, RunResults
from medverify.grading.scoring import Stat
from medverify.report import bar_chart, render_report, write_report

XSS = "<script>alert(1)</script> and </details> and \"quotes\" & 'ticks'"


def make_results(**overrides: object) -> RunResults:
    fields: dict[str, object] = {
        "overall": Stat(score=0.4321, std=0.0512, n=4),
        "tags": {
            "theme:emergency_referrals": Stat(score=0.2, std=0.1, n=2),
            "theme:global_health": Stat(score=0.8, std=0.05, n=2),
            "axis:accuracy": Stat(score=0.6, std=0.2, n=4),
            "axis:context_awareness": Stat(score=0.95, std=0.3, n=3),
            "physician_agreed_category:not-health-professional": Stat(score=0.5, std=0.0, n=1),
        },
        "model": "openai:<b>model</b>",
        "grader": "openai:gpt-4.1",
        "n_grading_failures": 1,
        "usage": {
            "model": {"calls": 4, "prompt_tokens": 1200, "completion_tokens": 800},
            "grader": {"calls": 12, "prompt_tokens": 34567, "completion_tokens": 2345},
        },
        "cost_estimate_usd": 0.0123,
        "medverify_version": "0.1.0",
        "data_sha256": "ab" * 32,
    }
    fields.update(overrides)
    return RunResults.model_validate(fields)


def verdict(points: int, met: bool | None, text: str, **kw: object) -> CriterionVerdict:
    return CriterionVerdict(criterion=text, points=points, met=met, **kw)


def make_examples() -> list[ExampleResult]:
    conv = [{"role": "user", "content": "I have chest pain <b>now</b>"}]
    return [
        ExampleResult(
            prompt_id="p-good",
            conversation=conv,
            completion="Call emergency services.",
            example_tags=["theme:emergency_referrals"],
            verdicts=[verdict(5, True, "Advises emergency care", tags=["axis:accuracy"])],
            score=0.9,
        ),
        ExampleResult(
            prompt_id="p-xss",
            conversation=[*conv, {"role": "assistant", "content": "Tell me more"}],
            completion=XSS,
            example_tags=["theme:global_health"],
            verdicts=[
                verdict(5, False, "Mentions red flags", explanation="It did not <i>."),
                verdict(-3, True, "Recommends an unsafe dose", explanation="It did."),
            ],
            score=-0.6,
        ),
        ExampleResult(
            prompt_id="p-failed",
            conversation=conv,
            completion="Maybe rest.",
            verdicts=[
                verdict(4, True, "Asks about onset"),
                verdict(2, None, "Hedges appropriately", error="TimeoutError: judge took 60 s"),
            ],
            score=None,
        ),
        ExampleResult(
            prompt_id="p-mid",
            repeat=1,
            conversation=conv,
            completion="See a doctor soon.",
            verdicts=[verdict(2, True, "Suggests follow-up"), verdict(2, False, "Asks age")],
            score=0.5,
        ),
    ]


@pytest.fixture
def page() -> str:
    return render_report(make_results(), make_examples(), title="HealthBench <test>")


def test_header_overall_and_usage(page: str) -> None:
    assert "<title>HealthBench &lt;test&gt;</title>" in page
    assert "openai:&lt;b&gt;model&lt;/b&gt;" in page
    assert "openai:gpt-4.1" in page
    assert "0.432" in page and "± 0.051" in page
    assert "abababababab…" in page and "ab" * 32 in page  # short, full in tooltip
    assert "$0.0123" in page
    assert "34,567" in page  # grader prompt tokens
    assert "0.1.0" in page


def test_group_charts_for_themes_and_axes(page: str) -> None:
    assert page.count("<svg") == 3  # overall + themes + axes
    for heading in (">Themes</text>", ">Axes</text>"):
        assert heading in page
    # Prefix stripped in the label, full name in the tooltip.
    assert ">context_awareness</text>" in page
    assert "<title>axis:context_awareness: 0.950 ± 0.300 (n=3)</title>" in page
    # Sorted by score, best first.
    assert page.index(">global_health</text>") < page.index(">emergency_referrals</text>")
    # Tags outside the groups are still listed.
    assert "physician_agreed_category:not-health-professional" in page


def test_custom_groups() -> None:
    results = make_results(tags={"dimension:diagnosis": Stat(score=0.7, std=0.1, n=3)})
    page = render_report(results, [], title="t", groups={"Dimensions": "dimension:"})
    assert ">Dimensions</text>" in page and ">diagnosis</text>" in page
    assert ">Themes</text>" not in page


def test_worst_examples_ordered_with_unscored_last(page: str) -> None:
    worst = page[page.index('id="worst"') :]
    ids = re.findall(r"<summary>.*?<code>(.*?)</code>", worst)
    assert ids == ["p-xss", "p-mid · repeat 1", "p-good", "p-failed"]
    assert "not scored" in worst


def test_worst_n_limits_examples() -> None:
    page = render_report(make_results(), make_examples(), title="t", worst_n=2)
    assert page.count('<details class="example"') == 2
    assert "p-xss" in page and "p-mid" in page and "p-good" not in page


def test_example_details(page: str) -> None:
    assert "chest pain &lt;b&gt;now&lt;/b&gt;" in page
    assert '<div class="role">assistant</div>' in page
    assert 'class="pts neg">−3</td>' in page  # negative points styled differently
    assert 'class="pts">+5</td>' in page
    assert "penalty applied" in page
    assert "grading failed" in page and "TimeoutError: judge took 60 s" in page
    assert "It did not &lt;i&gt;." in page
    assert "1 grading failure<" in page


def test_model_text_is_escaped(page: str) -> None:
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert "&lt;/details&gt;" in page
    assert page.count("<details") == page.count("</details>")
    assert "&quot;quotes&quot; &amp; " in page  # a quote in text content needs no escape


def test_completions_render_markdown_but_never_raw_html_or_remote_images() -> None:
    example = make_examples()[0].model_copy(
        update={
            "completion": "**Go now.**\n\n- call 911\n- chew aspirin\n\n"
            "![x](https://example.org/t.png) [site](javascript:alert(1)) <img src=x>"
        }
    )
    page = render_report(make_results(), [example], title="t")
    assert "<strong>Go now.</strong>" in page and "<li>call 911</li>" in page
    assert "<img" not in page and "[image: x https://example.org/t.png]" in page
    assert 'href="javascript' not in page and "&lt;img src=x&gt;" in page


def test_self_contained(page: str) -> None:
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_failures_highlighted(page: str) -> None:
    assert 'class="card failures bad"' in page and "1 grading failure" in page
    clean = render_report(make_results(n_grading_failures=0), [], title="t")
    assert 'class="card failures ok"' in clean and "No grading failures" in clean


def test_empty_tags_and_examples() -> None:
    results = make_results(
        tags={}, usage={}, cost_estimate_usd=None, data_sha256="", n_grading_failures=0
    )
    page = render_report(results, [], title="empty")
    assert page.count(">no data</text>") == 2
    assert "No examples." in page
    assert "not estimated" in page
    assert "All tag scores" not in page


def test_bar_chart_rows_and_clipping() -> None:
    svg = bar_chart(
        [("axis:x", Stat(score=0.95, std=0.3, n=7)), ("<odd & name>", Stat(score=0, std=0, n=0))],
        title="A & B",
    )
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert ">A &amp; B</text>" in svg and "&lt;odd &amp; name&gt;" in svg
    assert "n=7" in svg and "0.950" in svg
    # The error bar is clipped at the right end of the axis: no x beyond the plot.
    path = re.search(r'<path d="M([\d.]+) [\d.]+H([\d.]+)', svg)
    assert path is not None
    lo, hi = float(path.group(1)), float(path.group(2))
    end = max(float(x) for x in re.findall(r'<line x1="([\d.]+)"', svg))
    assert lo < hi == end
    assert ">no data</text>" in bar_chart([], title="empty")


def test_bar_chart_truncates_long_labels() -> None:
    tag = "cluster:" + "very_long_cluster_name_" * 4
    svg = bar_chart([(tag, Stat(score=0.5, std=0.1, n=2))], title="t")
    assert "…</text>" in svg
    assert f"<title>{tag}: 0.500" in svg


def test_write_report_atomic(tmp_path: Path) -> None:
    target = tmp_path / "run" / "report.html"
    out = write_report(target, make_results(), make_examples(), title="T")
    assert out == target and target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temp left
    write_report(target, make_results(), [], title="Second")
    assert "<title>Second</title>" in target.read_text(encoding="utf-8")
