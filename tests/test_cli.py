import json

import pytest

from conftest import run_cli


def one_error_line(result):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("demo", "chat"):
        assert command in result.stdout
    assert "openai:<model>" in result.stdout


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("medverify ")


def test_unknown_backend_spec_is_one_line_exit_2():
    line = one_error_line(run_cli("chat", "hi", "--model", "gpt5"))
    assert "unknown backend spec 'gpt5'" in line


def test_missing_file_is_one_line_exit_2(tmp_path):
    line = one_error_line(run_cli("chat", "hi", "--model", f"script:{tmp_path}/none.txt"))
    assert "script file not found" in line


def test_debug_shows_the_traceback():
    result = run_cli("--debug", "chat", "hi", "--model", "gpt5")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_unreachable_endpoint_is_one_line(tmp_path):
    line = one_error_line(
        run_cli(
            "chat",
            "hi",
            "-m",
            "openai:m",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--timeout",
            "1",
            env={"MEDVERIFY_CACHE_DIR": str(tmp_path)},
        )
    )
    assert "cannot reach http://127.0.0.1:9/v1" in line


def test_bad_key_is_reported_without_the_key(fake_server, tmp_path):
    fake_server.api_key = "sk-correct-000000000000"
    key = "sk-my-secret-key-abcdef0123456789"
    result = run_cli(
        "-v",
        "chat",
        "hi",
        "-m",
        "openai:m",
        "--base-url",
        fake_server.base_url,
        env={"OPENAI_API_KEY": key, "MEDVERIFY_CACHE_DIR": str(tmp_path)},
    )
    line = one_error_line(result)
    assert "rejected the API key" in line
    assert key not in result.stderr + result.stdout
    assert fake_server.requests == 1  # not retried


def test_chat_against_an_openai_compatible_server(fake_server, tmp_path):
    env = {"MEDVERIFY_CACHE_DIR": str(tmp_path)}
    args = ("chat", "what is :x: [bold]?", "-m", "openai:m", "--base-url", fake_server.base_url)
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "echo: what is :x: [bold]?"  # printed verbatim
    again = run_cli(*args, env=env)
    assert "(cached)" in again.stderr
    assert fake_server.requests == 1


def test_demo_runs_the_consultation_benchmark_and_resumes(tmp_path):
    doctor = tmp_path / "doctor.txt"
    doctor.write_text(
        "When did the double vision start?\nDoes it get worse after activity?\n"
        "DIAGNOSIS: myasthenia gravis\n"
    )
    run_dir = tmp_path / "run"
    args = (
        "demo", "--doctor", f"script:{doctor}", "--compare", "none",
        "--case", "agentclinic-medqa-001", "--run-dir", str(run_dir),
    )  # fmt: skip
    env = {"MEDVERIFY_CACHE_DIR": str(tmp_path / "cache")}
    result = run_cli(*args, env=env)
    assert result.returncode == 0, result.stderr
    for row in ("overall", "diagnostic accuracy", "consultation logic", "medical ethics"):
        assert row in result.stdout
    assert f"report:  {run_dir / 'report.html'}" in result.stdout
    results = json.loads((run_dir / "results.json").read_text())
    assert results["grader"] == "local" and results["overall"]["n"] == 1
    case = results["cases"][0]
    assert case["termination_reason"] == "diagnosis" and case["diagnosis_correct"] is True
    assert case["stated_diagnosis"] == "myasthenia gravis" and case["facts_elicited"] >= 1
    example = json.loads((run_dir / "examples.jsonl").read_text())
    patient_text = " ".join(
        line for line in example["completion"].splitlines() if line.startswith("Patient:")
    )
    assert "myasthenia" not in patient_text.lower()
    assert any(v["met"] for v in example["verdicts"])
    # Rerun with the same run dir: everything comes from the run store, same scores.
    again = run_cli(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads((run_dir / "results.json").read_text())["overall"] == results["overall"]
    # The same run dir with other settings is refused, naming the difference.
    other = run_cli(*args, "--turns", "2", env=env)
    assert "max_turns: was 6, now 2" in one_error_line(other)


def test_demo_shows_two_doctors_side_by_side(tmp_path):
    careful = tmp_path / "careful.txt"
    careful.write_text(
        "What brings you in today?\nDo you feel weak anywhere, like in your arms?\n"
        "Do you smoke or drink?\nDIAGNOSIS: myasthenia gravis\n"
    )
    hasty = tmp_path / "hasty.txt"
    hasty.write_text("DIAGNOSIS: migraine\n")
    run_dir = tmp_path / "run"
    result = run_cli(
        "demo", "--doctor", f"script:{hasty}", "--compare", f"script:{careful}",
        "--case", "agentclinic-medqa-001", "--run-dir", str(run_dir),
        env={"MEDVERIFY_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    overall = next(line for line in lines if line.strip("│┃ ").startswith("overall"))
    facts = next(line for line in lines if "facts elicited" in line)
    assert "+" in overall and "+" in facts  # the second doctor's change, shown as one
    named = next(line for line in lines if "diagnosis correct (rate)" in line)
    assert "+1.000" in named
    page = (run_dir / "compare.html").read_text()
    assert "DIAGNOSIS: migraine" in page and "DIAGNOSIS: myasthenia gravis" in page
    assert page.index("migraine") < page.index("myasthenia gravis")  # columns in the run order
    from medverify.demo import run_name

    for spec in (f"script:{hasty}", f"script:{careful}"):
        assert (run_dir / run_name(spec) / "results.json").is_file(), spec
    same = run_cli("demo", "--doctor", "local", "--compare", "local")
    assert same.returncode == 2 and "same doctor" in one_error_line(same)


@pytest.mark.slow
def test_demo_on_the_embedded_model(tmp_path, tmp_path_factory):
    """The README's main job, end to end on the embedded model (converts it once if needed)."""
    pytest.importorskip("transformers")
    run_dir = tmp_path / "run"
    # The same cache dir as the local-backend tests: the model is converted once per session.
    cache = tmp_path_factory.getbasetemp() / "medverify-cache"
    result = run_cli(
        "demo",
        "--turns",
        "2",
        "--max-tokens",
        "48",
        "--run-dir",
        str(run_dir),
        timeout=900,
        env={"MEDVERIFY_CACHE_DIR": str(cache)},
    )
    assert result.returncode == 0, result.stderr
    assert "local report:" in result.stdout and "communication empathy" in result.stdout
    assert "local:doctor" in result.stdout and (run_dir / "compare.html").is_file()
    for name, model in (("local", "local"), ("local-doctor", "local:doctor")):
        results = json.loads((run_dir / name / "results.json").read_text())
        assert results["model"] == model and results["grader"] == "local"
        assert results["overall"]["n"] + results["n_grading_failures"] >= 1
        assert len(results["cases"]) == 4
        for line in (run_dir / name / "examples.jsonl").read_text().splitlines():
            turns = json.loads(line)["completion"].splitlines()
            assert turns[0].startswith("Patient: ")
            assert any(t.startswith("Doctor: ") for t in turns)


def test_wide_tables_are_printed_whole_when_output_is_not_a_terminal(capsys):
    from rich.table import Table

    from medverify.cli_common import print_table

    headers = [f"column number {i}" for i in range(8)]  # ~140 columns wide
    table = Table(*headers)
    table.add_row(*(f"value {i}.123" for i in range(8)))
    print_table(table)
    lines = capsys.readouterr().out.splitlines()
    assert all(h in lines[1] for h in headers)  # one header line, nothing cut to "colu…"
    assert all(f"value {i}.123" in lines[3] for i in range(8))
