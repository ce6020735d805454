"""HealthBench end to end against the fake OpenAI-compatible server: offline and exact."""

import ast
import html
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from medverify.grading.results import RunResults
from medverify.grading.scoring import Stat
from medverify.healthbench.data import load_examples
from medverify.healthbench.pipeline import HealthBenchResults
from medverify.report import render_report
from medverify.testing.fake_openai import FakeOpenAIServer
from medverify.testing.judges import keyword_judge, parse_request, replay_judge

FIXTURES = Path(__file__).parents[1] / "fixtures" / "healthbench"
HARD5 = FIXTURES / "hard_sample5.jsonl"
GRADED10 = FIXTURES / "graded_sample10.jsonl"
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
}


def model_and_judge(body):
    """One server playing both: answers grading requests as a judge, others as the model."""
    try:
        parse_request(body)
    except ValueError:
        return "You should rest, drink fluids and see a doctor if it gets worse."
    return keyword_judge(body)


@pytest.fixture
def server():
    with FakeOpenAIServer(responder=model_and_judge) as srv:
        yield srv


def hb(*args, server=None, tmp_path=None, **kw):
    env = {"MEDVERIFY_CACHE_DIR": str(tmp_path / "cache")} if tmp_path else {}
    return run_cli("healthbench", *args, env=env, **kw)


def test_run_end_to_end_writes_exact_results_and_resumes(server, tmp_path):
    run_dir = tmp_path / "run"
    args = (
        "run",
        "--data",
        str(HARD5),
        "--model",
        "openai:doctor",
        "--grader",
        "openai:judge",
        "--base-url",
        server.base_url,
        "--run-dir",
        str(run_dir),
    )
    result = hb(*args, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    n_criteria = sum(len(e.rubrics) for e in load_examples(HARD5).examples)
    assert server.requests == 5 + n_criteria
    results = json.loads((run_dir / "results.json").read_text())
    # The shared fields stay exactly as they were; HealthBench adds its model failures.
    assert set(results) == TOP_LEVEL | {"n_model_failures", "model_failed_examples"}
    assert results["n_model_failures"] == 0 and results["model_failed_examples"] == []
    assert results["overall"]["n"] == 5
    assert set(results["overall"]) == {"score", "std", "n"}
    assert any(t.startswith("theme:") for t in results["tags"])
    assert any(t.startswith("axis:") for t in results["tags"])
    assert results["model"] == "openai:doctor" and results["grader"] == "openai:judge"
    assert results["usage"]["grader"]["calls"] == n_criteria
    assert results["cost_estimate_usd"] == 0.0  # self-hosted endpoint
    assert (run_dir / "report.html").stat().st_size > 1000
    # Rerun: nothing is redone (the run store answers), same results.
    again = hb(*args, "--no-cache", tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    assert server.requests == 5 + n_criteria
    assert json.loads((run_dir / "results.json").read_text())["overall"] == results["overall"]


def test_grading_failures_are_reported_not_counted_as_not_met(server, tmp_path):
    rows = [json.loads(line) for line in HARD5.read_text().splitlines()[:2]]
    rows[0]["rubrics"][0]["criterion"] = "BROKEN criterion the judge cannot answer"
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    run_dir = tmp_path / "run"
    result = hb(
        "run",
        "--data",
        str(data),
        "--model",
        "openai:doctor",
        "--grader",
        "openai:judge",
        "--base-url",
        server.base_url,
        "--run-dir",
        str(run_dir),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["n_grading_failures"] == 1
    assert results["overall"]["n"] == 1  # the example with the failure is not scored
    assert "could not be graded" in result.stderr
    lines = (run_dir / "examples.jsonl").read_text().splitlines()
    failed = json.loads(lines[0])["verdicts"][0]
    assert failed["met"] is None and "no valid verdict" in failed["error"]


def test_grade_replays_recorded_verdicts_to_the_reference_scores(tmp_path):
    rows = [json.loads(line) for line in GRADED10.read_text().splitlines()]
    verdicts, completions = {}, []
    for row in rows:
        reply = (
            ast.literal_eval(row["prompt_response"])[-1]["content"]
            if isinstance(row["prompt_response"], str)
            else row["prompt_response"][-1]["content"]
        )
        completions.append({"prompt_id": row["prompt_id"], "completion": reply})
        for rubric, response in zip(
            row["rubrics"], ast.literal_eval(row["responses"]), strict=True
        ):
            verdicts[(reply, rubric["criterion"])] = response["response_dict"]["criteria_met"]
    completions_file = tmp_path / "completions.jsonl"
    completions_file.write_text("\n".join(json.dumps(c) for c in completions) + "\n")
    run_dir = tmp_path / "run"
    with FakeOpenAIServer(responder=replay_judge(verdicts)) as srv:
        result = hb(
            "grade",
            "--data",
            str(GRADED10),
            "--completions",
            str(completions_file),
            "--grader",
            "openai:replay",
            "--grader-base-url",
            srv.base_url,
            "--run-dir",
            str(run_dir),
            tmp_path=tmp_path,
        )
    assert result.returncode == 0, result.stderr
    examples = [json.loads(line) for line in (run_dir / "examples.jsonl").read_text().splitlines()]
    by_id = {e["prompt_id"]: e for e in examples}
    for row in rows:
        got = by_id[row["prompt_id"]]
        assert got["score"] == pytest.approx(row["score"], abs=1e-9)
        expected = ast.literal_eval(row["metrics"])
        assert got["metrics"] == pytest.approx(expected, abs=1e-12)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["overall"]["n"] == 10
    assert results["model"].startswith("completions:")


def test_physician_modes_grade_the_shipped_completions(server, tmp_path):
    data = FIXTURES / "oss_eval_sample6.jsonl"
    for flags, n in (
        (["--physician-mode", "no_reference"], 2),
        (["--physician-mode", "apr_2025_reference", "--reference-completions"], 2),
    ):
        run_dir = tmp_path / flags[1]
        result = hb(
            "grade",
            "--data",
            str(data),
            *flags,
            "--grader",
            "openai:judge",
            "--grader-base-url",
            server.base_url,
            "--run-dir",
            str(run_dir),
            tmp_path=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads((run_dir / "results.json").read_text())["overall"]["n"] == n


def test_bad_inputs_are_one_line_errors(server, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(HARD5.read_text().splitlines()[0] + "\n" + '{"prompt_id": "x"}\n')
    result = hb(
        "run",
        "--data",
        str(bad),
        "--model",
        "mock",
        "--grader",
        "mock",
        "--run-dir",
        str(tmp_path / "r"),
        tmp_path=tmp_path,
    )
    assert result.returncode == 2
    assert f"error: {bad}:2 field 'prompt': Field required" in result.stderr
    assert "Traceback" not in result.stderr
    result = hb(
        "grade",
        "--data",
        str(HARD5),
        "--grader",
        "mock",
        "--run-dir",
        str(tmp_path / "r2"),
        tmp_path=tmp_path,
    )
    assert result.returncode == 2 and "exactly one of --completions" in result.stderr
    completions = tmp_path / "c.jsonl"
    ids = [ex.prompt_id for ex in load_examples(HARD5).examples]
    completions.write_text(
        json.dumps({"prompt_id": ids[0], "completion": "x"})
        + "\n"
        + json.dumps({"prompt_id": ids[1]})
        + "\n"
    )
    result = hb(
        "grade",
        "--data",
        str(HARD5),
        "--completions",
        str(completions),
        "--grader",
        "mock",
        "--run-dir",
        str(tmp_path / "r3"),
        tmp_path=tmp_path,
    )
    assert result.returncode == 2 and f"{completions}:2 field 'completion'" in result.stderr


def entry_point(*args, tmp_path, timeout=120):
    """The installed ``medverify`` script (``python -m medverify`` has no ``__main__``)."""
    script = Path(sys.executable).with_name("medverify")
    return subprocess.run(
        [str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "MEDVERIFY_CACHE_DIR": str(tmp_path / "cache")},
    )


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ('"repeat": 1000000000', "repeat", "Input should be less than 100"),
        ('"repeat": -1', "repeat", "Input should be greater than or equal to 0"),
        ('"prompt_id": "no-such-prompt"', "prompt_id", "unknown prompt_id 'no-such-prompt'"),
    ],
)
def test_bad_completion_lines_are_refused_naming_file_line_and_field(
    line, field, message, tmp_path
):
    first = load_examples(HARD5).examples[0].prompt_id
    completions = tmp_path / "c.jsonl"
    bad = json.loads(f'{{"prompt_id": "{first}", "completion": "y", {line}}}')
    completions.write_text(
        json.dumps({"prompt_id": first, "completion": "x"}) + "\n" + json.dumps(bad) + "\n"
    )
    result = entry_point(
        "healthbench", "grade", "--data", str(HARD5), "--completions", str(completions),
        "--grader", "mock", "--run-dir", str(tmp_path / "run"), tmp_path=tmp_path, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(f"error: {completions}:2 field '{field}': {message}")


def test_a_model_failure_is_counted_reported_and_not_green(server, tmp_path):
    server.enqueue_faults("401")  # one completion fails for good (no retry on 401)
    run_dir = tmp_path / "run"
    result = entry_point(
        "healthbench", "run", "--data", str(HARD5), "--model", "openai:doctor",
        "--grader", "openai:judge", "--base-url", server.base_url, "--concurrency", "1",
        "--run-dir", str(run_dir), tmp_path=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr  # four of five examples are scored
    assert "1 completion(s) could not be sampled from openai:doctor" in result.stderr
    assert "rejected the API key" in result.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["n_model_failures"] == 1 and results["n_grading_failures"] == 0
    assert results["overall"]["n"] == 4
    (failed,) = results["model_failed_examples"]
    assert failed.endswith("#0") and failed.split("#")[0] in {
        ex.prompt_id for ex in load_examples(HARD5).examples
    }
    report = (run_dir / "report.html").read_text()
    assert "No grading failures" not in report and "failures ok" not in report
    assert ">1 model failure<p>" in report and 'id="model-failures"' in report
    assert html.escape(failed) in report
    # The rerun retries the failed completion and then has nothing left to report.
    again = entry_point(*result.args[1:], tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["n_model_failures"] == 0 and results["overall"]["n"] == 5
    assert "failures ok" in (run_dir / "report.html").read_text()


def _results(**fields):
    base = {
        "overall": Stat(score=0.5, std=0.1, n=3),
        "tags": {},
        "model": "m",
        "grader": "g",
        "n_grading_failures": 0,
        "usage": {},
        "cost_estimate_usd": None,
        "medverify_version": "0",
        "data_sha256": "",
    }
    return {**base, **fields}


def test_the_report_is_green_only_without_failures_and_with_scores():
    def card(results):
        page = render_report(results, [], title="t")
        return page[page.index('id="failures"') - 40 : page.index('id="failures"') + 80]

    assert "failures ok" in card(HealthBenchResults(**_results()))
    assert "failures bad" in card(HealthBenchResults(**_results(n_model_failures=2)))
    assert "2 model failures" in card(HealthBenchResults(**_results(n_model_failures=2)))
    nothing = RunResults(**_results(overall=Stat(score=0.0, std=0.0, n=0)))
    assert "failures bad" in card(nothing) and "Nothing was scored" in card(nothing)

    class WithFailedUnits(RunResults):
        failed_units: dict[str, str]

    units = WithFailedUnits(**_results(failed_units={"case/persona": "doctor gave up"}))
    assert "failures bad" in card(units) and "1 failed unit" in card(units)


@pytest.mark.slow
def test_killed_run_resumes_to_identical_results(tmp_path):
    """SIGKILL `healthbench run` mid-grading, rerun: nothing finished redone, same scores."""
    with FakeOpenAIServer(responder=model_and_judge, latency_s=0.02) as srv:

        def cmd(run_dir):
            return [
                sys.executable,
                "-m",
                "medverify.cli",
                "healthbench",
                "run",
                "--data",
                str(HARD5),
                "--model",
                "openai:doctor",
                "--grader",
                "openai:judge",
                "--base-url",
                srv.base_url,
                "--run-dir",
                str(run_dir),
                "--no-cache",
                "--grader-concurrency",
                "4",
            ]

        reference = tmp_path / "uninterrupted"
        assert subprocess.run(cmd(reference), capture_output=True).returncode == 0
        calls_uninterrupted = srv.requests
        srv.reset()

        run_dir = tmp_path / "killed"
        proc = subprocess.Popen(cmd(run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while srv.requests < calls_uninterrupted // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert not (run_dir / "results.json").exists()
        assert subprocess.run(cmd(run_dir), capture_output=True).returncode == 0
        assert srv.requests <= calls_uninterrupted + 4  # at most the calls in flight redone
    a = json.loads((reference / "results.json").read_text())
    b = json.loads((run_dir / "results.json").read_text())
    assert a["overall"] == b["overall"] and a["tags"] == b["tags"]


def test_resume_knows_a_completions_file_by_its_content_not_its_path(server, tmp_path):
    prompt_ids = [json.loads(line)["prompt_id"] for line in HARD5.read_text().splitlines()[:2]]
    lines = [json.dumps({"prompt_id": p, "completion": "Rest and fluids."}) for p in prompt_ids]
    first, copy, other = tmp_path / "a.jsonl", tmp_path / "elsewhere.jsonl", tmp_path / "b.jsonl"
    first.write_text("\n".join(lines) + "\n")
    copy.write_text(first.read_text())
    other.write_text(lines[0] + "\n")

    def grade(path):
        return hb(
            "grade",
            "--data",
            str(HARD5),
            "--completions",
            str(path),
            "--grader",
            "openai:judge",
            "--grader-base-url",
            server.base_url,
            "--run-dir",
            str(tmp_path / "run"),
            "--no-cache",
            tmp_path=tmp_path,
        )

    assert grade(first).returncode == 0
    calls = server.requests
    again = grade(copy)
    assert again.returncode == 0, again.stderr
    assert server.requests == calls  # resumed: every verdict came from the run store
    refused = grade(other)
    assert refused.returncode == 2 and "completions_sha256" in refused.stderr


def test_grade_takes_base_url_as_the_graders_endpoint(server, tmp_path):
    prompt_id = json.loads(HARD5.read_text().splitlines()[0])["prompt_id"]
    completions = tmp_path / "c.jsonl"
    completions.write_text(json.dumps({"prompt_id": prompt_id, "completion": "Rest.\n"}) + "\n")
    result = hb(
        "grade",
        "--data",
        str(HARD5),
        "--completions",
        str(completions),
        "--grader",
        "openai:judge",
        "--base-url",
        server.base_url,
        "--run-dir",
        str(tmp_path / "run"),
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert server.requests > 0
    assert json.loads((tmp_path / "run" / "results.json").read_text())["overall"]["n"] == 1
