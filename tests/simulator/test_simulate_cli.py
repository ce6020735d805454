"""``medverify simulate``: one consultation, --interactive through a pty, errors, ``eval``."""

import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from medverify.cases.records import Transcript
from medverify.errors import InputError, MedverifyError
from medverify.simulator.simulate_cli import app
from medverify.testing.processes import sigint_as_in_a_terminal

FIXTURES = Path(__file__).parents[1] / "fixtures" / "sim_cases"
MG = FIXTURES / "myasthenia_gravis.json"
runner = CliRunner()


def script(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "doctor.txt"
    path.write_text("\n".join(lines) + "\n")
    return f"script:{path}"


def test_one_consultation_writes_a_valid_transcript(tmp_path):
    doctor = script(
        tmp_path,
        "What brings you in today?",
        "When did it start?",
        "Let me examine your eyes.",
        "DIAGNOSIS: Myasthenia gravis\\nPLAN: pyridostigmine",
    )
    out = tmp_path / "t.json"
    result = runner.invoke(app, ["--case", str(MG), "--doctor", doctor, "--out", str(out)])
    assert result.exit_code == 0, result.output
    transcript = Transcript.model_validate_json(out.read_text())
    assert transcript.termination_reason == "diagnosis"
    assert transcript.final_diagnosis == "Myasthenia gravis"
    assert transcript.revealed() == {"hpi_diplopia", "cn_ptosis"}
    assert "revealed: hpi_diplopia" in result.output
    assert f"transcript: {out}" in result.output


def test_bundled_case_by_id_and_persona_preset(tmp_path):
    doctor = script(tmp_path, "Do you take any medications?", "DIAGNOSIS: Myasthenia gravis")
    out = tmp_path / "t.json"
    args = ["--case", "agentclinic-medqa-001", "--doctor", doctor, "--persona", "terse"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    transcript = Transcript.model_validate_json(out.read_text())
    assert transcript.case_id == "agentclinic-medqa-001"
    assert transcript.persona.verbosity == "terse"


def test_bad_case_file_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "x", "facts": []}')
    result = runner.invoke(app, ["--case", str(bad), "--doctor", "mock"])
    assert isinstance(result.exception, MedverifyError)
    assert "\n" not in str(result.exception) and "bad.json" in str(result.exception)
    missing = runner.invoke(app, ["--case", "no-such-case-id", "--doctor", "mock"])
    assert isinstance(missing.exception, InputError)


def test_without_a_case_it_shows_help():
    result = runner.invoke(app, [])
    assert result.exit_code == 0 and "--case" in result.output and "eval" in result.output


def test_eval_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / "quality.json"
    args = ["eval", "--cases", str(FIXTURES), "--personas", "case", "--doctors", "1"]
    result = runner.invoke(app, [*args, "--out", str(out), "--check"])
    assert result.exit_code == 0, result.output
    assert "fact recall" in result.output and "leakage" in result.output
    import json

    report = json.loads(out.read_text())
    assert report["leak_dx"] == 0 and report["leak_unasked"] == 0 and report["cases"] == 4


def test_eval_flag_errors():
    llm = runner.invoke(app, ["eval", "--mode", "llm"])
    assert isinstance(llm.exception, MedverifyError) and "--patient" in str(llm.exception)
    persona = runner.invoke(app, ["eval", "--personas", "grumpy"])
    assert isinstance(persona.exception, MedverifyError) and "grumpy" in str(persona.exception)


def _read_more(fd: int, buffer: bytearray, timeout: float = 60) -> None:
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        raise AssertionError(f"no output: {bytes(buffer)[-2000:]!r}")
    chunk = os.read(fd, 4096)
    if not chunk:
        raise AssertionError(f"output ended: {bytes(buffer)!r}")
    buffer.extend(chunk)


def _interactive(
    tmp_path: Path, lines: list[str], *, interrupt: bool = False
) -> tuple[int, str, Path]:
    out = tmp_path / "interactive.json"
    cmd = [sys.executable, "-m", "medverify.cli", "simulate"]
    cmd += ["--case", str(MG), "--interactive", "--out", str(out)]
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "200", "TERM": "dumb"}
    proc = subprocess.Popen(
        cmd,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        preexec_fn=sigint_as_in_a_terminal,
    )
    os.close(slave)
    buffer = bytearray()
    try:
        for i, line in enumerate(lines, start=1):
            while buffer.count(b"doctor> ") < i:  # wait for the i-th prompt
                _read_more(master, buffer)
            os.write(master, line.encode() + b"\n")
        if interrupt:  # Ctrl-C at the next prompt
            while buffer.count(b"doctor> ") <= len(lines):
                _read_more(master, buffer)
            time.sleep(0.3)  # the prompt is out; let input() start waiting for the line
            proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # drain the output while the command finishes
            ready, _, _ = select.select([master], [], [], 0.2)
            chunk = b""
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                buffer.extend(chunk)
            if not chunk and proc.poll() is not None:
                break
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return proc.returncode, buffer.decode(errors="replace"), out


def test_interactive_through_a_pty(tmp_path):
    code, output, out = _interactive(
        tmp_path, ["Do you take any medications?", "DIAGNOSIS: Myasthenia gravis"]
    )
    assert code == 0, output
    assert "I take no regular medications" in output
    transcript = Transcript.model_validate_json(out.read_text())
    assert transcript.doctor == "interactive"
    assert transcript.termination_reason == "diagnosis"
    assert [t.role for t in transcript.turns] == ["patient"] + ["doctor", "patient"] * 2


def test_interactive_quit(tmp_path):
    code, output, out = _interactive(tmp_path, ["Any allergies?", "/quit"])
    assert code == 0, output
    transcript = Transcript.model_validate_json(out.read_text())
    assert transcript.termination_reason is None and len(transcript.turns) == 3


def test_ctrl_c_in_interactive_keeps_the_transcript_so_far_and_exits_130(tmp_path):
    code, output, out = _interactive(tmp_path, ["Any allergies?"], interrupt=True)
    assert code == 130, output
    assert "transcript so far" in output and "Traceback" not in output
    transcript = Transcript.model_validate_json(out.read_text())
    assert [t.role for t in transcript.turns] == ["patient", "doctor", "patient"]
    assert transcript.turns[1].text == "Any allergies?"
    assert transcript.termination_reason is None and transcript.doctor == "interactive"


def test_a_scripted_doctor_plays_through_the_installed_command(tmp_path):
    """``simulate --doctor scripted:careful`` was refused as an unknown backend spec."""
    script = Path(sys.executable).with_name("medverify")
    out = tmp_path / "t.json"
    args = ["simulate", "--case", "agentclinic-medqa-001", "--out", str(out)]
    done = subprocess.run(
        [str(script), *args, "--doctor", "scripted:careful"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    transcript = Transcript.model_validate_json(out.read_text())
    assert transcript.doctor == "scripted:careful"
    assert transcript.final_diagnosis == "Myasthenia gravis"
    bad = subprocess.run(
        [str(script), *args, "--doctor", "scripted:nope"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "unknown scripted doctor 'scripted:nope'" in bad.stderr


def test_root_cli_bad_case_is_one_line_exit_2(tmp_path):
    from conftest import run_cli

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = run_cli("simulate", "--case", str(bad), "--doctor", "mock")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "bad.json" in lines[0]


def test_long_turns_wrap_inside_their_panel_instead_of_being_cut(monkeypatch):
    import io

    from rich.console import Console

    from medverify.cases.records import Turn
    from medverify.simulator import simulate_cli

    out = io.StringIO()
    narrow = Console(file=out, width=40, soft_wrap=True, emoji=False, highlight=False)
    monkeypatch.setattr(simulate_cli, "console", narrow)
    words = [f"word{i}" for i in range(30)]
    simulate_cli.show_turn(Turn(role="patient", text=" ".join(words)))
    printed = out.getvalue()
    assert all(w in printed for w in words)
    assert max(len(line) for line in printed.splitlines()) <= 40
