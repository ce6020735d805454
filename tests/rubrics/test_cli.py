"""``medverify rubrics`` through typer's CliRunner, on a local app wrapping the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from medverify.cases.records import CaseRecord
from medverify.errors import InputError
from medverify.rubrics import core_rubric
from medverify.rubrics.cli import HELP, rubrics

from .conftest import FIXTURES, transcript_of

app = typer.Typer()
app.command("rubrics", help=HELP)(rubrics)
app.command("noop")(lambda: None)  # two commands: "rubrics" stays a named sub-command
runner = CliRunner()


def test_bundled_case_prints_a_table_and_writes_the_record(tmp_path: Path, mg_case) -> None:
    out = tmp_path / "r.json"
    result = runner.invoke(app, ["rubrics", "--case", mg_case.id, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Rubric for agentclinic-medqa-001" in result.output
    assert "Myasthenia gravis" in result.output
    saved = json.loads(out.read_text())
    assert saved["case_id"] == mg_case.id and saved["generator"] == "core"
    assert saved["items"] == [i.model_dump() for i in core_rubric(mg_case).items]


def test_case_file_transcript_and_items_only(tmp_path: Path, allergy_case: CaseRecord) -> None:
    transcript = transcript_of(
        allergy_case, [("doctor", "DIAGNOSIS: eczema", [])], termination_reason="diagnosis"
    )
    t_path = tmp_path / "t.json"
    t_path.write_text(transcript.model_dump_json())
    out = tmp_path / "items.json"
    result = runner.invoke(
        app,
        [
            "rubrics",
            "--case",
            str(FIXTURES / "penicillin_allergy.json"),
            "--transcript",
            str(t_path),
            "--out",
            str(out),
            "--items-only",
        ],
    )
    assert result.exit_code == 0, result.output
    items = json.loads(out.read_text())
    assert isinstance(items, list) and {"criterion", "points", "tags"} == set(items[0])
    assert any("after only 0 question turns" in i["criterion"] for i in items)


def test_writer_spec_is_used(tmp_path: Path, mg_case, fake_server) -> None:
    fake_server.responder = lambda body: json.dumps(
        {
            "items": [
                {
                    "criterion": "Asks about difficulty swallowing or breathing",
                    "points": 6,
                    "dimension": "consultation_logic",
                    "axis": "completeness",
                }
            ]
        }
    )
    out = tmp_path / "r.json"
    result = runner.invoke(
        app,
        [
            "rubrics",
            "--case",
            mg_case.id,
            "--writer",
            "openai:fake",
            "--base-url",
            fake_server.base_url,
            "--api-key",
            "k",
            "--no-cache",
            "--dedupe",
            "tokens",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["writer"] == "openai:fake" and saved["origins"].count("writer") == 1


def test_bad_case_file_names_file_and_field(tmp_path: Path) -> None:
    data = json.loads((FIXTURES / "penicillin_allergy.json").read_text())
    data["diagnosis"] = "  "
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    result = runner.invoke(app, ["rubrics", "--case", str(bad)])
    assert isinstance(result.exception, InputError)
    assert str(bad) in str(result.exception) and "field 'diagnosis'" in str(result.exception)
    data["facts"][0]["category"] = "symptoms"
    bad.write_text(json.dumps(data))
    result = runner.invoke(app, ["rubrics", "--case", str(bad)])
    assert isinstance(result.exception, InputError)
    assert "facts.0.category" in str(result.exception)


@pytest.mark.parametrize(
    ("content", "expected"),
    [("{not json", "not valid JSON"), ('{"case_id": "x"}', "field 'persona'")],
)
def test_bad_transcript_file(tmp_path: Path, mg_case, content: str, expected: str) -> None:
    t_path = tmp_path / "t.json"
    t_path.write_text(content)
    result = runner.invoke(app, ["rubrics", "--case", mg_case.id, "--transcript", str(t_path)])
    assert isinstance(result.exception, InputError) and expected in str(result.exception)


def test_transcript_of_another_case(tmp_path: Path, mg_case, allergy_case) -> None:
    t_path = tmp_path / "t.json"
    t_path.write_text(transcript_of(allergy_case, []).model_dump_json())
    result = runner.invoke(app, ["rubrics", "--case", mg_case.id, "--transcript", str(t_path)])
    assert isinstance(result.exception, InputError)
    assert "field 'case_id'" in str(result.exception)
