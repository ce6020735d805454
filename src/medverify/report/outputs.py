"""The files of an evaluation run: ``results.json``, ``examples.jsonl`` and ``report.html``.

Shared by HealthBench runs and the consultation benchmark, so both write the same files the same
way (the report reads ``examples.jsonl``'s records; tools parse ``results.json``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from medverify.grading.results import ExampleResult, RunResults
from medverify.report.html import write_report
from medverify.secrets import redact_url


def write_outputs(
    run_dir: Path,
    results: RunResults,
    examples: Sequence[ExampleResult],
    *,
    title: str,
    groups: Mapping[str, str] | None = None,
    sections: Sequence[str] = (),
) -> dict[str, Path]:
    """Write the run's files and return their paths by name (results, examples, report).

    Args:
        run_dir: The run directory (created if missing).
        results: The aggregate, written as ``results.json``.
        examples: Every graded example, one JSON line each in ``examples.jsonl``.
        title: The report's heading.
        groups: Chart title -> tag prefix for the report (default: themes and axes).
        sections: Extra report cards (escaped HTML), shown after the overall score.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": run_dir / "results.json",
        "examples": run_dir / "examples.jsonl",
        "report": run_dir / "report.html",
    }
    # Credentials in a URL (an endpoint in an error message) are masked in every file.
    paths["results"].write_text(
        redact_url(results.model_dump_json(indent=2)) + "\n", encoding="utf-8"
    )
    with paths["examples"].open("w", encoding="utf-8") as handle:
        for example in examples:
            line = json.dumps(example.model_dump(mode="json"), ensure_ascii=False)
            handle.write(redact_url(line) + "\n")
    write_report(
        paths["report"], results, list(examples), title=title, groups=groups, sections=sections
    )
    return paths
