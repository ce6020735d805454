"""Progress where a user waits: plain lines when stderr is a file, never silence."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_cli

from medverify import progress
from medverify.progress import progress_bars


def test_piped_progress_prints_plain_lines_and_always_the_last(capsys, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 3600.0)
    with progress_bars() as add:
        turns = add("doctor turns", 4)
        turns()  # the first line is printed at once...
        turns()  # ...then at most one per PLAIN_EVERY_S...
        turns(steps=5)  # ...and the last always; steps beyond the total are capped
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["doctor turns: 1/4", "doctor turns: 4/4"]


def test_disabled_progress_prints_nothing(capsys):
    with progress_bars(enabled=False) as add:
        add("consultations graded", 2)()
    assert capsys.readouterr().err == ""


def test_demo_piped_to_a_file_reports_turns_and_graded_consultations(tmp_path):
    doctor = tmp_path / "doctor.txt"
    doctor.write_text("What brings you in?\nAny weakness?\nDIAGNOSIS: migraine\n")
    out = run_cli(
        "demo", "--doctor", f"script:{doctor}", "--compare", "none",
        "--case", "agentclinic-medqa-001", "--run-dir", str(tmp_path / "run"),
        env={"MEDVERIFY_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"script:{doctor}: doctor turns: 6/6" in out.stderr
    assert f"script:{doctor}: consultations graded: 1/1" in out.stderr
    assert json.loads(Path(tmp_path / "run" / "results.json").read_text())["overall"]["n"] == 1
