"""Paths and secrets, through the installed ``medverify`` script: credentials in URLs, a key per
endpoint, bad input and option values, and outputs that cannot be written (issue "Trust")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medverify.testing.fake_openai import FakeOpenAIServer
from medverify.testing.judges import keyword_judge, parse_request

FIXTURES = Path(__file__).parent / "fixtures"
HARD5 = FIXTURES / "healthbench" / "hard_sample5.jsonl"
CPU_SMOKE = Path(__file__).parents[1] / "configs" / "train" / "cpu_smoke.yaml"
CASE = FIXTURES / "sim_cases" / "migraine.json"
MEDVERIFY = Path(sys.executable).with_name("medverify")
PASSWORD = "pw1234secret"
KEY_VARS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MEDVERIFY_API_KEY", "MEDVERIFY_GRADER_API_KEY")


def medverify(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """The installed console script, in a subprocess, without the caller's keys."""
    base = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    return subprocess.run(
        [str(MEDVERIFY), *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=300,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def model_and_judge(body):
    try:
        parse_request(body)
    except ValueError:
        return "Rest, drink fluids and see a doctor if it gets worse."
    return keyword_judge(body)


def hb_run(tmp_path: Path, model_url: str, grader_url: str, *extra: str, env=None, name="run"):
    args = ["-v", "healthbench", "run", "--data", str(HARD5), "--limit", "1"]
    args += ["--model", "openai:doctor", "--base-url", model_url]
    args += ["--grader", "openai:judge", "--grader-base-url", grader_url]
    args += ["--run-dir", str(tmp_path / name), *extra]
    return medverify(*args, env={"MEDVERIFY_CACHE_DIR": str(tmp_path / "cache"), **(env or {})})


def test_a_password_in_a_url_is_sent_as_basic_auth_and_never_written(tmp_path):
    with FakeOpenAIServer(responder=model_and_judge) as srv:
        url = srv.base_url.replace("http://", f"http://admin:{PASSWORD}@")
        # OPENAI_API_KEY set as well: this used to crash every grader call in aiohttp.
        result = hb_run(tmp_path, srv.base_url, url, env={"OPENAI_API_KEY": "sk-env-0000000000"})
        assert result.returncode == 0, result.stderr
        assert "Basic YWRtaW46cHcxMjM0c2VjcmV0" in srv.auth_headers
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["n_grading_failures"] == 0
    assert PASSWORD not in result.stdout + result.stderr
    for path in [*(tmp_path / "run").iterdir(), *(tmp_path / "cache").iterdir()]:
        assert PASSWORD.encode() not in path.read_bytes(), path
    assert b"admin:***@127.0.0.1" in (tmp_path / "run" / "run.sqlite").read_bytes()


def test_each_endpoint_gets_its_own_key(tmp_path):
    env_key, model_key, grader_key = "sk-env-0000000000", "sk-model-00000000", "sk-grader-0000000"
    with (
        FakeOpenAIServer(responder=model_and_judge) as model_srv,
        FakeOpenAIServer(responder=model_and_judge) as grader_srv,
    ):
        env = {"OPENAI_API_KEY": env_key, "MEDVERIFY_GRADER_API_KEY": grader_key}
        result = hb_run(
            tmp_path, model_srv.base_url, grader_srv.base_url, "--api-key", model_key, env=env
        )
        assert result.returncode == 0, result.stderr
        assert set(model_srv.auth_headers) == {f"Bearer {model_key}"}
        assert set(grader_srv.auth_headers) == {f"Bearer {grader_key}"}
        # No grader key: the model's --api-key stays with the model's endpoint; the grader (on
        # this machine) gets OPENAI_API_KEY.
        grader_srv.reset()
        result = hb_run(
            tmp_path,
            model_srv.base_url,
            grader_srv.base_url,
            "--api-key",
            model_key,
            "--no-cache",
            env={"OPENAI_API_KEY": env_key},
            name="run2",
        )
        assert result.returncode == 0, result.stderr
        assert set(grader_srv.auth_headers) == {f"Bearer {env_key}"}


def test_the_environment_key_is_not_sent_over_plain_http_to_another_machine(tmp_path):
    # 192.0.2.1 (TEST-NET-1) is never reached: the backend is only built, then asked nothing.
    code = (
        "from medverify.backends.registry import make_backend, BackendOptions\n"
        "import asyncio\n"
        "async def main():\n"
        "    b = make_backend('openai:m', BackendOptions(base_url='http://192.0.2.1/v1'))\n"
        "    print(b._get_session().headers.get('Authorization'))\n"
        "    await b.aclose()\n"
        "asyncio.run(main())\n"
    )
    base = {k: v for k, v in os.environ.items() if k not in KEY_VARS}
    env = {**base, "OPENAI_API_KEY": "sk-env-0000000000", "MEDVERIFY_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_a_timeout_that_is_not_positive_is_one_line(value):
    line = one_error_line(medverify("simulate", "--case", str(CASE), "--timeout", value))
    assert "'--timeout'" in line and "more than 0" in line


def test_an_unwritable_run_dir_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for args in (
        ["healthbench", "run", "--data", str(HARD5), "--model", "mock", "--grader", "mock"],
        ["consult-bench", "--doctor", "scripted:careful", "--limit", "1"],
        ["demo", "--doctor", "scripted:careful", "--compare", "none"],
        ["train", "pipeline", "--config", str(CPU_SMOKE)],
    ):
        line = one_error_line(medverify(*args, "--run-dir", str(blocker / "run")))
        assert "'--run-dir'" in line and str(blocker) in line


def test_a_run_dir_lock_that_cannot_be_created_is_one_line(tmp_path):
    """Past the option check (a library caller, or a folder made read-only since): no traceback."""
    from medverify.errors import ConfigError
    from medverify.runs.store import RunDirLock

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot create"):
        RunDirLock(blocker / "run").acquire()


def test_an_unwritable_cache_dir_is_one_line_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with FakeOpenAIServer(responder=model_and_judge) as srv:
        result = medverify(
            "healthbench",
            "run",
            "--data",
            str(HARD5),
            "--model",
            "openai:doctor",
            "--base-url",
            srv.base_url,
            "--grader",
            "mock",
            "--run-dir",
            str(tmp_path / "run"),
            env={"MEDVERIFY_CACHE_DIR": str(blocker / "cache")},
        )
        assert srv.requests == 0
    line = one_error_line(result)
    assert str(blocker / "cache" / "responses.sqlite") in line


def test_simulate_checks_its_output_before_the_consultation(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    script = tmp_path / "doctor.txt"
    script.write_text("DIAGNOSIS: migraine\n")
    common = ["simulate", "--case", str(CASE), "--doctor", f"script:{script}"]
    result = medverify(*common, "--out", str(blocker / "t.json"))
    assert "'--out'" in one_error_line(result) and "ended:" not in result.stdout
    # The default output folder, medverify-runs/ in the current folder, cannot be made.
    (tmp_path / "medverify-runs").write_text("")
    result = medverify(*common, cwd=tmp_path)
    assert "medverify-runs" in one_error_line(result) and "ended:" not in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["rubrics", "--case", "agentclinic-medqa-001"],
        ["cases", "import", "--format", "agentclinic", str(HARD5)],
        ["deploy", "quantize"],
        ["deploy", "report"],
    ],
)
def test_an_unwritable_out_is_refused_before_any_work(tmp_path, args):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = one_error_line(medverify(*args, "--out", str(blocker / "out")))
    assert "'--out'" in line and str(blocker) in line


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_folder_is_refused(tmp_path):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        result = medverify("simulate", "--case", str(CASE), "--out", str(read_only / "t.json"))
        assert "permission denied" in one_error_line(result)
        args = ["healthbench", "run", "--data", str(HARD5), "--model", "mock", "--grader", "mock"]
        assert "'--run-dir'" in one_error_line(medverify(*args, "--run-dir", str(read_only)))
    finally:
        read_only.chmod(0o700)


def test_a_case_id_cannot_send_simulate_outside_its_output_folder(tmp_path):
    case = json.loads(CASE.read_text())
    case["id"] = "../../../escaped"
    evil = tmp_path / "work" / "evil.json"
    evil.parent.mkdir()
    evil.write_text(json.dumps(case))
    script = tmp_path / "doctor.txt"
    script.write_text("DIAGNOSIS: migraine\n")
    result = medverify(
        "simulate", "--case", str(evil), "--doctor", f"script:{script}", cwd=evil.parent
    )
    assert "path separators" in one_error_line(result)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["doctor.txt", "evil.json", "work"]


@pytest.mark.parametrize("command", ["healthbench", "consult-bench", "meta-eval", "rubrics"])
def test_a_line_nested_too_deeply_is_one_line_naming_the_file(tmp_path, command):
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "\n")
    if command == "healthbench":
        args = ["healthbench", "run", "--data", str(deep), "--model", "mock", "--grader", "mock"]
    elif command == "meta-eval":
        args = ["healthbench", "meta-eval", "--data", str(deep), "--grader", "mock"]
    elif command == "rubrics":
        case = "agentclinic-medqa-001"
        line = one_error_line(medverify("rubrics", "--case", case, "--transcript", str(deep)))
        assert "deep.jsonl" in line and "nested too deeply" in line
        return
    else:
        args = ["consult-bench", "--cases", str(deep), "--doctor", "mock", "--grader", "mock"]
    line = one_error_line(medverify(*args, "--run-dir", str(tmp_path / "run"), cwd=tmp_path))
    assert "deep.jsonl" in line and "nested too deeply" in line
