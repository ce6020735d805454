"""The report renders in a real browser: headless Chromium screenshots it and dumps its DOM.

Needs the ``chromium`` binary (Debian: ``apt-get install -y chromium``); skipped without it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from medverify.grading.results import CriterionVerdict, ExampleResult, RunResults
from medverify.grading.scoring import Stat
from medverify.report import write_report

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (Debian: apt-get install -y chromium)"
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def sample() -> tuple[RunResults, list[ExampleResult]]:
    results = RunResults(
        overall=Stat(score=0.6174, std=0.0421, n=3),
        tags={
            "theme:emergency_referrals": Stat(score=0.41, std=0.08, n=2),
            "theme:hedging": Stat(score=0.77, std=0.05, n=1),
            "axis:accuracy": Stat(score=0.66, std=0.12, n=3),
            "axis:completeness": Stat(score=0.35, std=0.2, n=3),
        },
        model="openai:test-model",
        grader="openai:gpt-4.1",
        n_grading_failures=1,
        usage={"model": {"calls": 3, "prompt_tokens": 900, "completion_tokens": 300}},
        cost_estimate_usd=0.0042,
        medverify_version="0.1.0",
        data_sha256="0123456789abcdef" * 4,
    )
    conv = [{"role": "user", "content": "My child has a fever of 40 °C. What should I do?"}]
    examples = [
        ExampleResult(
            prompt_id=f"p{i}",
            conversation=conv,
            completion="<script>alert(1)</script> Give fluids and see a doctor today.",
            example_tags=["theme:emergency_referrals"],
            verdicts=[
                CriterionVerdict(criterion="Asks the child's age", points=5, met=i > 0),
                CriterionVerdict(criterion="Recommends aspirin", points=-4, met=i == 1),
                CriterionVerdict(criterion="Hedges", points=2, met=None, error="timeout"),
            ],
            score=None if i == 2 else i / 4,
        )
        for i in range(3)
    ]
    return results, examples


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, timeout=60)


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    results, examples = sample()
    page = write_report(tmp_path / "report.html", results, examples, title="Chromium check")
    url = page.resolve().as_uri()
    shot = tmp_path / "report.png"

    proc = chromium(
        f"--screenshot={shot}", "--window-size=1280,2000", url, profile=tmp_path / "profile"
    )
    assert shot.exists(), proc.stderr.decode(errors="replace")[-2000:]
    data = shot.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 10_000

    dom = chromium("--dump-dom", url, profile=tmp_path / "profile").stdout.decode()
    assert "0.617" in dom and "± 0.042" in dom
    assert "Worst examples" in dom
    assert "<script>alert(1)</script>" not in dom  # stayed text, never became an element
