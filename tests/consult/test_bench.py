"""The consultation benchmark end to end: ordering of doctors, resume, files, bad input."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import run_cli

from medverify.cases.loading import load_bundled_cases
from medverify.consult import ConsultJob, run_consult_job
from medverify.consult.bench import ConsultBench, make_units
from medverify.consult.pipeline import scripted_factory
from medverify.errors import ConfigError
from medverify.grading import make_grader
from medverify.runs.store import RunStore
from medverify.testing.fake_openai import FakeOpenAIServer
from medverify.testing.judges import parse_request, transcript_judge

CASES = load_bundled_cases()
BY_ID = {c.id: c for c in CASES}
TWO = [BY_ID["agentclinic-medqa-001"], BY_ID["mediq-medqa-1224"]]


def job(tmp_path: Path, name: str, doctor: str, cases=TWO, **kw) -> ConsultJob:
    return ConsultJob(cases=cases, run_dir=tmp_path / name, doctor=doctor, max_turns=40, **kw)


@pytest.fixture(scope="module")
def local_grader():
    grader = make_grader("local")
    yield grader
    asyncio.run(grader.aclose())


async def _scores(tmp_path: Path, grader, doctor: str) -> dict[str, float]:
    units = make_units(CASES, ["case"])
    with RunStore(tmp_path / doctor, job="t", config={}) as store:
        bench = ConsultBench(store, scripted_factory(doctor), grader, max_turns=40)
        outcomes, failures = await bench.run(units, concurrency=8)
    assert not failures
    from medverify.consult.outputs import example_result

    by_key = {u.key: u for u in units}
    return {o.case_id: example_result(by_key[o.key], o).score for o in outcomes}


@pytest.mark.slow
async def test_good_doctor_beats_bad_doctors_on_every_shipped_case_local_grader(
    tmp_path, local_grader
):
    good = await _scores(tmp_path, local_grader, "scripted:good")
    for bad in ("scripted:guess", "scripted:wrong", "scripted:unsafe"):
        worse = await _scores(tmp_path, local_grader, bad)
        losers = {c: (good[c], worse[c]) for c in good if not good[c] > worse[c]}
        assert not losers, f"{bad} scored at least as well as the good doctor on {losers}"


def _judge_server(latency: float = 0.0) -> FakeOpenAIServer:
    def respond(body):
        try:
            parse_request(body)
        except ValueError:  # a doctor turn
            said = sum(1 for m in body["messages"] if m["role"] == "assistant")
            if said >= 2:
                return "DIAGNOSIS: tension headache\nPLAN: rest."
            return "Can you tell me more about how you feel?"
        return transcript_judge(body)

    return FakeOpenAIServer(responder=respond, latency_s=latency)


@pytest.mark.slow
async def test_good_doctor_beats_bad_doctors_through_the_judge_path_with_a_scripted_judge(tmp_path):
    # The judge is a scripted stand-in behind the OpenAI-compatible fake server: this checks
    # the LLM-judge code path end to end, not an LLM's judgement.
    with _judge_server() as srv:
        from medverify.backends.registry import BackendOptions

        opts = BackendOptions(base_url=srv.base_url, api_key="sk-test", use_cache=False)
        grader = make_grader("openai:judge", opts)
        try:
            good = await _scores(tmp_path, grader, "scripted:good")
            for bad in ("scripted:guess", "scripted:unsafe"):
                worse = await _scores(tmp_path, grader, bad)
                assert all(good[c] > worse[c] for c in good), bad
        finally:
            await grader.aclose()


async def test_job_writes_results_report_and_dimension_scores(tmp_path):
    outcome = await run_consult_job(job(tmp_path, "run", "scripted:good"))
    results = json.loads(outcome.paths["results"].read_text())
    assert set(results["dimensions"]) == {
        "diagnostic_accuracy", "consultation_logic", "treatment_rationality",
        "communication_empathy", "medical_ethics",
    }  # fmt: skip
    assert results["overall"]["n"] == 2 and results["model"] == "scripted:good"
    assert results["process"]["diagnosis_correct_rate"] == 1.0
    assert [c["case_id"] for c in results["cases"]] == [c.id for c in TWO]
    lines = outcome.paths["examples"].read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["completion"].startswith("Patient: ")
    page = outcome.paths["report"].read_text()
    assert "Dimensions" in page and "What the doctor did" in page
    assert "agentclinic-medqa-001@case" in page
    # A rerun reads everything back: the same scores, nothing played again.
    again = await run_consult_job(job(tmp_path, "run", "scripted:good"))
    assert again.resumed and again.results.overall == outcome.results.overall


async def test_rerun_with_other_settings_is_refused(tmp_path):
    await run_consult_job(job(tmp_path, "run", "scripted:guess", cases=TWO[:1]))
    with pytest.raises(ConfigError, match="other settings"):
        await run_consult_job(job(tmp_path, "run", "scripted:wrong", cases=TWO[:1]))


def test_bad_settings_give_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown scripted doctor"):
        scripted_factory("scripted:sloppy")
    with pytest.raises(ConfigError, match="unknown persona preset"):
        make_units(TWO, ["grumpy-wizard"])
    with pytest.raises(ConfigError, match="given twice"):
        make_units([TWO[0], TWO[0]], ["case"])
    with pytest.raises(ConfigError, match="no cases"):
        asyncio.run(run_consult_job(job(tmp_path, "x", "scripted:good", cases=[])))


def test_personas_multiply_units():
    units = make_units(TWO, ["case", "sampled", "impatient"])
    assert len(units) == 6 and units[2].key == "agentclinic-medqa-001@impatient"
    assert units[2].persona.patience == 3


def test_cli_bad_case_file_names_file_and_field(tmp_path):
    bad = tmp_path / "cases.jsonl"
    good_line = json.dumps(TWO[0].model_dump(mode="json"))
    broken = TWO[1].model_dump(mode="json")
    broken["demographics"]["age"] = "old"
    bad.write_text(good_line + "\n" + json.dumps(broken) + "\n")
    result = run_cli("consult-bench", "--cases", str(bad), "--doctor", "scripted:good")
    assert result.returncode == 2
    assert f"{bad}:2" in result.stderr and "age" in result.stderr


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_consultations(tmp_path):
    """SIGKILL consult-bench mid-run, rerun: finished consultations are not replayed."""
    with _judge_server(latency=0.05) as srv:

        def cmd(run_dir: Path) -> list[str]:
            return [
                sys.executable, "-m", "medverify.cli", "consult-bench",
                "--doctor", "openai:doctor", "--grader", "openai:judge",
                "--base-url", srv.base_url, "--api-key", "sk-test", "--no-cache",
                "--case", "agentclinic-medqa-001", "--case", "agentclinic-medqa-005",
                "--case", "mediq-medqa-1224", "--case", "mediq-medqa-0100",
                "--concurrency", "1", "--run-dir", str(run_dir),
            ]  # fmt: skip

        reference = tmp_path / "uninterrupted"
        assert subprocess.run(cmd(reference), capture_output=True).returncode == 0
        calls_uninterrupted = srv.requests
        srv.reset()
        run_dir = tmp_path / "killed"
        proc = subprocess.Popen(cmd(run_dir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while srv.requests < calls_uninterrupted // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        first_part = srv.requests
        assert not (run_dir / "results.json").exists()
        assert subprocess.run(cmd(run_dir), capture_output=True).returncode == 0
        assert 0 < first_part < calls_uninterrupted
        # Only what had not finished is asked again, plus at most the calls of the one
        # consultation in flight (--concurrency 1; its verdicts are asked concurrently).
        assert srv.requests - calls_uninterrupted <= calls_uninterrupted // 4 + 1
    a = json.loads((reference / "results.json").read_text())
    b = json.loads((run_dir / "results.json").read_text())
    assert a["overall"] == b["overall"] and a["dimensions"] == b["dimensions"]


async def test_an_interrupted_session_still_counts_its_judge_calls(tmp_path):
    """Usage is saved as consultations finish, so Ctrl-C does not lose the calls already paid.

    Ctrl-C under ``asyncio.run`` cancels the main task; so does this test, once the first
    consultation is graded.
    """
    from medverify.backends.registry import BackendOptions

    with _judge_server() as srv:
        opts = BackendOptions(base_url=srv.base_url, api_key="sk-test", use_cache=False)
        one_graded = asyncio.Event()

        def progress(name: str, total: int):
            def advance(*args, **kwargs) -> None:
                if name.endswith("consultations graded"):
                    one_graded.set()

            return advance

        clean = job(tmp_path, "clean", "scripted:good", grader="openai:judge", grader_options=opts)
        await run_consult_job(clean)
        needed = srv.requests  # the calls of one uninterrupted run
        srv.reset()
        first = job(tmp_path, "run", "scripted:good", grader="openai:judge", grader_options=opts)
        running = asyncio.create_task(run_consult_job(first, progress=progress))
        await one_graded.wait()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        assert srv.requests > 0
        done = await run_consult_job(first)
        # Every answered call of both sessions is in the usage, the interrupted one's too (before,
        # only the resuming session's were, fewer than one clean run needs); calls still in
        # flight when the task was cancelled were never answered and are not counted.
        assert done.resumed
        assert needed <= done.results.usage["grader"]["calls"] <= srv.requests


async def test_a_run_never_resumes_with_another_model_behind_the_same_spec(tmp_path):
    """A spec names a model, not its weights: the backend's identity binds the run directory.

    ``script:FILE`` edited, like ``local:doctor`` with another adapter installed or ``hf:DIR``
    with another checkpoint, is another doctor under the same name.
    """
    from medverify.consult import pipeline

    script = tmp_path / "doctor.txt"
    script.write_text("What brings you in?\nDIAGNOSIS: Myasthenia gravis\n")
    first = job(tmp_path, "run", f"script:{script}", cases=TWO[:1])
    await run_consult_job(first)
    assert (await run_consult_job(first)).resumed
    script.write_text("What brings you in?\nDIAGNOSIS: Bell's palsy\n")
    with pytest.raises(ConfigError, match="other settings"):
        await run_consult_job(first)
    assert "doctor_identity" not in pipeline.run_config(job(tmp_path, "x", "scripted:good"))


def test_the_trained_doctors_identity_names_its_adapter():
    from medverify.backends.local_doctor import adapter_hash
    from medverify.backends.registry import make_backend

    assert adapter_hash() in make_backend("local:doctor").identity()
