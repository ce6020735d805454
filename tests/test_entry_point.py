"""The installed ``medverify`` entry point: exit codes, usage errors, Ctrl-C, the run-dir lock.

Every test runs the real console script in a subprocess (``python -m medverify`` when the package
has a ``__main__``, else the ``medverify`` script installed next to the interpreter), so what is
checked is what a shell or a CI job sees: the exit status and stderr.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from medverify.healthbench.data import load_examples
from medverify.testing.fake_openai import FakeOpenAIServer
from medverify.testing.judges import keyword_judge
from medverify.testing.processes import sigint_as_in_a_terminal

HARD5 = Path(__file__).parent / "fixtures" / "healthbench" / "hard_sample5.jsonl"


def entry_point() -> list[str]:
    if importlib.util.find_spec("medverify.__main__") is not None:
        return [sys.executable, "-m", "medverify"]
    script = Path(sys.executable).with_name("medverify")
    assert script.is_file(), (
        f"the medverify console script is not installed next to {sys.executable}"
    )
    return [str(script)]


def medverify(*args: str, tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDVERIFY_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run(
        [*entry_point(), *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def one_error_line(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


# -- usage errors: one line, exit 2 --------------------------------------------------------------

GRADE = ("healthbench", "grade", "--data", str(HARD5), "--run-dir", "r")
RUN = ("healthbench", "run", "-m", "mock", "-g", "mock", "--data", str(HARD5), "--run-dir", "r")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--no-such-flag",), "No such option"),
        (("chat", "hi", "--no-such-flag"), "No such option"),
        (GRADE, "Missing option '--grader'"),
        ((*RUN, "--concurrency", "-3"), "'--concurrency'"),
        ((*RUN, "--limit", "0"), "'--limit'"),
        (("demo", "--turns", "abc"), "'--turns'"),
        (("no-such-command",), "No such command 'no-such-command'"),
        (("healthbench",), "missing command; choose one of: run, grade, meta-eval"),
        ((), "missing command"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args, expected, tmp_path):
    line = one_error_line(medverify(*args, tmp_path=tmp_path))
    assert expected in line
    assert "--help" in line  # says where to look


def test_help_and_version_exit_0(tmp_path):
    assert medverify("--version", tmp_path=tmp_path).returncode == 0
    result = medverify("healthbench", "grade", "--help", tmp_path=tmp_path)
    assert result.returncode == 0 and "--grader" in result.stdout


def test_help_shows_flags_as_flags(tmp_path):
    """``--debug <bool>`` read as if the flag took a value; options that take one keep theirs."""
    top = medverify("--help", tmp_path=tmp_path, timeout=60)
    chat = medverify("chat", "--help", tmp_path=tmp_path, timeout=60)
    assert top.returncode == 0 and chat.returncode == 0
    assert "--debug" in top.stdout and "<bool>" not in top.stdout + chat.stdout
    assert "<int>" in chat.stdout  # --max-tokens


# -- typer.Exit(n) exits n -----------------------------------------------------------------------

_WITH_EXIT_COMMAND = textwrap.dedent(
    """
    import sys
    from importlib.metadata import entry_points

    import typer

    from medverify import cli

    @cli.app.command("exit-with")
    def exit_with(code: int) -> None:
        raise typer.Exit(code)

    # The function the installed console script runs, found the way the script finds it.
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "medverify"]
    sys.argv = ["medverify", *sys.argv[1:]]
    script.load()()
    """
)


@pytest.mark.parametrize("code", [0, 1, 3])
def test_typer_exit_code_is_the_exit_status(code):
    result = subprocess.run(
        [sys.executable, "-c", _WITH_EXIT_COMMAND, "exit-with", str(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == code, result.stderr


_MISSED_TARGET = textwrap.dedent(
    """
    import sys
    from importlib.metadata import entry_points

    from medverify.simulator.quality import QualityReport

    QualityReport.meets_targets = lambda self: False  # a simulator that misses a target

    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "medverify"]
    sys.argv = ["medverify", *sys.argv[1:]]
    script.load()()
    """
)


def test_simulate_eval_check_fails_with_1_when_a_target_is_missed(tmp_path):
    """``typer.Exit(1)`` used to exit 0, so ``simulate eval --check`` could never fail."""
    cases = Path(__file__).parent / "fixtures" / "sim_cases" / "myasthenia_gravis.json"
    args = ["simulate", "eval", "--cases", str(cases), "--personas", "default", "--doctors", "1"]
    missed = subprocess.run(
        [sys.executable, "-c", _MISSED_TARGET, *args, "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missed.returncode == 1, missed.stderr
    unchecked = subprocess.run(
        [sys.executable, "-c", _MISSED_TARGET, *args], capture_output=True, text=True, timeout=300
    )
    assert unchecked.returncode == 0, unchecked.stderr


def test_a_run_with_nothing_scored_exits_1(tmp_path):
    """`healthbench run` against an unreachable model: counted, reported, exit 1 (typer.Exit)."""
    run_dir = tmp_path / "run"
    result = medverify(
        "healthbench", "run", "--data", str(HARD5), "--limit", "2", "-m", "openai:doctor",
        "-g", "openai:judge", "--base-url", "http://127.0.0.1:9/v1", "--timeout", "1",
        "--run-dir", str(run_dir), tmp_path=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "2 completion(s) could not be sampled from openai:doctor" in result.stderr
    assert "cannot reach http://127.0.0.1:9/v1" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: nothing could be scored (2 model failure(s)")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["n_model_failures"] == 2 and len(results["model_failed_examples"]) == 2
    assert results["overall"]["n"] == 0 and results["n_grading_failures"] == 0
    report = (run_dir / "report.html").read_text()
    assert "No grading failures" not in report and "failures ok" not in report
    assert "2 model failures; nothing was scored" in report


# -- Ctrl-C: exit 130, finished work kept, the rerun resumes and counts every call -------------


def _grade_cmd(server: FakeOpenAIServer, run_dir: Path, completions: Path) -> list[str]:
    return [
        *entry_point(), "healthbench", "grade", "--data", str(HARD5), "--completions",
        str(completions), "-g", "openai:judge", "--grader-base-url", server.base_url,
        "--run-dir", str(run_dir), "--grader-concurrency", "2", "--no-cache",
    ]  # fmt: skip


def _completions(tmp_path: Path) -> Path:
    path = tmp_path / "completions.jsonl"
    rows = [
        {"prompt_id": ex.prompt_id, "completion": "Rest, drink fluids and see a doctor."}
        for ex in load_examples(HARD5).examples
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _stored_verdicts(run_dir: Path) -> int:
    conn = sqlite3.connect(run_dir / "run.sqlite", timeout=10)
    try:
        return conn.execute("SELECT COUNT(*) FROM kv WHERE ns = 'verdict'").fetchone()[0]
    finally:
        conn.close()


def _wait_for_requests(server: FakeOpenAIServer, n: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while server.requests < n and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the job must still be running"


def test_ctrl_c_exits_130_keeps_finished_work_and_the_rerun_counts_every_call(tmp_path):
    n_criteria = sum(len(ex.rubrics) for ex in load_examples(HARD5).examples)
    run_dir = tmp_path / "run"
    env = {**os.environ, "MEDVERIFY_CACHE_DIR": str(tmp_path / "cache")}
    with FakeOpenAIServer(responder=keyword_judge, latency_s=0.2) as server:
        cmd = _grade_cmd(server, run_dir, _completions(tmp_path))
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            preexec_fn=sigint_as_in_a_terminal,
        )
        _wait_for_requests(server, 8, proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err.decode()
        assert "interrupted; rerun with the same --run-dir to resume" in err.decode()
        assert not (run_dir / "results.json").exists()
        kept = _stored_verdicts(run_dir)
        assert 4 <= kept < n_criteria  # what finished before Ctrl-C is in the run store

        server.latency_s = 0.0
        server.reset()
        rerun = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert server.requests == n_criteria - kept  # resumed: nothing finished is redone
    results = json.loads((run_dir / "results.json").read_text())
    assert results["overall"]["n"] == 5
    # Every judge call of both sessions is in the usage, the interrupted one's too (a call
    # answered while Ctrl-C landed may count without its verdict being stored: at most 2).
    assert n_criteria <= results["usage"]["grader"]["calls"] <= n_criteria + 2


# -- one process per run directory ---------------------------------------------------------------


def test_a_second_process_on_the_same_run_dir_is_refused_until_the_holder_dies(tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "MEDVERIFY_CACHE_DIR": str(tmp_path / "cache")}
    # Slow enough (~13 s of grading) that the holder is still at work when the second starts.
    with FakeOpenAIServer(responder=keyword_judge, latency_s=0.5) as server:
        cmd = _grade_cmd(server, run_dir, _completions(tmp_path))
        holder = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        try:
            _wait_for_requests(server, 2, holder)
            second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
            line = one_error_line(second)
            assert f"is in use by another medverify process (pid {holder.pid})" in line
            assert str(run_dir) in line
            assert holder.poll() is None  # the refusal did not disturb the holder
        finally:
            holder.send_signal(signal.SIGKILL)  # a killed holder must not leave the dir locked
            holder.wait(10)
        server.latency_s = 0.0
        again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        assert again.returncode == 0, again.stderr
    assert json.loads((run_dir / "results.json").read_text())["overall"]["n"] == 5


@pytest.mark.parametrize(
    "args", [("cases", "list"), ("rubrics", "--case", "agentclinic-medqa-001")]
)
def test_piped_tables_print_whole_rows(args, tmp_path):
    # A pipe has no terminal width: tables print at their natural width, one row per line,
    # instead of rich's 80 columns that wrap every row and cut values to "…".
    result = medverify(*args, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    if args[0] == "cases":
        assert len(result.stdout.splitlines()) < 60  # 36 cases, not ~260 wrapped lines
    else:
        assert "communication_quality" in result.stdout


def test_export_doctor_validated_without_finished_rounds_is_one_clear_error(tmp_path):
    """``--round validated`` on a run whose rounds never finished names the missing adapter."""
    recipe = Path(__file__).parents[1] / "configs" / "train" / "doctor_cpu.yaml"
    run = tmp_path / "run"
    (run / "stages" / "doctor").mkdir(parents=True)
    result = subprocess.run(
        [
            *entry_point(),
            "train",
            "export-doctor",
            "--config",
            str(recipe),
            "--run-dir",
            str(run),
            "--round",
            "validated",
            "--out",
            str(tmp_path / "ship"),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        env={**os.environ, "MEDVERIFY_CACHE_DIR": str(tmp_path / "cache")},
        timeout=120,
    )
    line = one_error_line(result)
    assert "round 0 has no finished adapter" in line
    assert not (tmp_path / "ship").exists()
