"""Case loading (files, directories, errors), the bundled set, writing, and the cases CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from medverify.cases.cli import app
from medverify.cases.loading import (
    CaseInputError,
    bundled_cases_dir,
    case_json,
    load_bundled_cases,
    load_case,
    load_case_arg,
    load_cases,
    write_cases,
)
from medverify.errors import InputError, MedverifyError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cases"


def _case(case_id: str = "ac-001", **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": case_id,
        "demographics": {"age": 35, "sex": "female"},
        "chief_complaint": "I've come in because of double vision.",
        "facts": [
            {"id": "f1", "category": "symptom", "text": "Double vision for a month."},
            {"id": "f2", "category": "social", "text": "Works as a designer."},
        ],
        "exam_findings": [{"id": "e1", "category": "exam", "text": "Ptosis of the right eyelid."}],
        "diagnosis": "Myasthenia gravis",
        "source": "test",
    }
    data.update(changes)
    return data


def _write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ---------------------------------------------------------------- formats


def test_json_one_case_or_a_list(tmp_path: Path) -> None:
    assert load_cases(_write(tmp_path / "one.json", _case()))[0].id == "ac-001"
    many = load_cases(_write(tmp_path / "many.json", [_case("a"), _case("b")]))
    assert [c.id for c in many] == ["a", "b"]
    assert load_case(tmp_path / "one.json").diagnosis == "Myasthenia gravis"


def test_yaml_and_jsonl(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump([_case("y1"), _case("y2")]), encoding="utf-8")
    assert [c.id for c in load_cases(tmp_path / "c.yaml")] == ["y1", "y2"]
    lines = "\n".join(json.dumps(_case(f"j{i}")) for i in range(3)) + "\n\n"
    (tmp_path / "c.jsonl").write_text(lines, encoding="utf-8")
    assert [c.id for c in load_cases(tmp_path / "c.jsonl")] == ["j0", "j1", "j2"]


def test_directory_in_sorted_order_ignoring_other_files(tmp_path: Path) -> None:
    _write(tmp_path / "b.json", _case("b"))
    _write(tmp_path / "a.json", _case("a"))
    (tmp_path / "c.yml").write_text(yaml.safe_dump(_case("c")), encoding="utf-8")
    (tmp_path / "README.md").write_text("# not a case\n", encoding="utf-8")
    assert [c.id for c in load_cases(tmp_path)] == ["a", "b", "c"]


# ---------------------------------------------------------------- errors


def test_invalid_field_names_file_case_and_field(tmp_path: Path) -> None:
    bad = _case("ac-012")
    bad["facts"].append({"id": "f3", "category": "gossip", "text": "x"})
    path = _write(tmp_path / "x.json", bad)
    with pytest.raises(CaseInputError) as info:
        load_cases(path)
    message = str(info.value)
    assert message.startswith(f"{path} case 'ac-012' field 'facts.2.category': Input should be")
    assert info.value.field == "facts.2.category"
    assert isinstance(info.value, InputError) and isinstance(info.value, MedverifyError)


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    bad = _case("j2")
    del bad["diagnosis"]
    path.write_text(json.dumps(_case("j1")) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(
        CaseInputError, match=r"c\.jsonl:2 case 'j2' field 'diagnosis': Field required"
    ):
        load_cases(path)
    path.write_text(json.dumps(_case("j1")) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(CaseInputError, match=r"c\.jsonl:2: not valid JSON"):
        load_cases(path)


def test_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{\n  "id": "a",\n  oops\n}', encoding="utf-8")
    with pytest.raises(CaseInputError, match=r"c\.json:3: not valid JSON"):
        load_cases(path)
    ypath = tmp_path / "c.yaml"
    ypath.write_text("id: a\nfacts: [\n  - x\n", encoding="utf-8")
    with pytest.raises(CaseInputError, match=r"c\.yaml:\d+: not valid YAML"):
        load_cases(ypath)


def test_list_items_without_id_are_named_by_position(tmp_path: Path) -> None:
    bad = _case()
    del bad["id"]
    path = _write(tmp_path / "l.json", [_case("ok"), bad])
    with pytest.raises(CaseInputError, match=r"l\.json case #1 field 'id': Field required"):
        load_cases(path)
    with pytest.raises(CaseInputError, match="must be an object"):
        load_cases(_write(tmp_path / "s.json", ["just text"]))


def test_a_bad_file_in_a_directory_is_named(tmp_path: Path) -> None:
    _write(tmp_path / "a.json", _case("a"))
    _write(tmp_path / "b.json", _case("b", demographics={"age": -3, "sex": "f"}))
    with pytest.raises(CaseInputError) as info:
        load_cases(tmp_path)
    assert str(info.value).startswith(f"{tmp_path / 'b.json'} case 'b' field 'demographics.age'")


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    _write(tmp_path / "a.json", _case("same"))
    _write(tmp_path / "b.json", _case("same"))
    with pytest.raises(CaseInputError, match="duplicate case id") as info:
        load_cases(tmp_path)
    assert str(tmp_path / "a.json") in str(info.value)
    assert str(tmp_path / "b.json") in str(info.value)


def test_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(CaseInputError, match="no such file"):
        load_cases(tmp_path / "nope.json")
    with pytest.raises(CaseInputError, match=r"no \.json"):
        load_cases(tmp_path)
    with pytest.raises(CaseInputError, match="expected one case"):
        load_case(_write(tmp_path / "two.json", [_case("a"), _case("b")]))


@pytest.mark.parametrize(
    ("case_id", "why"),
    [
        ("../../x", "must not contain path separators"),
        ("a/b", "must not contain path separators"),
        ("a\\b", "must not contain path separators"),
        (".hidden", "must not start with '.'"),
        ("two words", "must start with a letter or digit and hold only"),
        ("x" * 129, "must be at most 128 characters"),
    ],
)
def test_unsafe_ids_are_refused_where_cases_are_loaded(
    tmp_path: Path, case_id: str, why: str
) -> None:
    path = _write(tmp_path / "c.json", _case(case_id))
    with pytest.raises(CaseInputError) as info:
        load_cases(path)
    message = str(info.value)
    assert message.startswith(f"{path} case {case_id!r} field 'id': a case id {why}")
    assert "\n" not in message and info.value.field == "id"
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(json.dumps(_case("ok")) + "\n" + json.dumps(_case(case_id)) + "\n")
    with pytest.raises(CaseInputError, match=r"c\.jsonl:2 case .* field 'id': a case id"):
        load_cases(jsonl)


def test_write_cases_refuses_unsafe_ids(tmp_path: Path) -> None:
    case = load_cases(_write(tmp_path / "in.json", _case("fine")))[0]
    unsafe = case.model_copy(update={"id": "../escape"})
    with pytest.raises(CaseInputError, match="field 'id': a case id must not contain path"):
        write_cases([unsafe], tmp_path / "out")
    assert not (tmp_path / "escape.json").exists() and not (tmp_path / "out").exists()


# ---------------------------------------------------------------- --case: files and bundled ids


def _bundled_copy(tmp_path: Path, case_id: str, name: str, **changes: Any) -> Path:
    data = json.loads((bundled_cases_dir() / f"{case_id}.json").read_text(encoding="utf-8"))
    data.update(changes)
    return _write(tmp_path / name, data)


def test_case_arg_bundled_id_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    bundled = {c.id: c for c in load_bundled_cases()}
    assert load_case_arg("agentclinic-medqa-005") == bundled["agentclinic-medqa-005"]
    other = _write(tmp_path / "mine.json", _case("mine"))
    assert load_case_arg(str(other)).id == "mine"
    assert load_case_arg("bundled:mediq-medqa-0275").diagnosis == "Presbycusis"
    with pytest.raises(InputError, match="no bundled case 'nope'"):
        load_case_arg("bundled:nope")
    with pytest.raises(InputError, match="no such case file"):
        load_case_arg(str(tmp_path / "missing.json"))
    with pytest.raises(InputError, match=r"no case file or bundled case named 'mine'.*\./mine"):
        load_case_arg("mine")


def test_a_case_file_always_wins_over_the_bundled_case_of_its_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _bundled_copy(tmp_path, "agentclinic-medqa-005", "edited.json", diagnosis="Edited")
    with caplog.at_level("WARNING", logger="medverify.cases.loading"):
        case = load_case_arg(str(path))
    assert case.id == "agentclinic-medqa-005" and case.diagnosis == "Edited"
    assert "id of a bundled case with different content; using the file" in caplog.text
    caplog.clear()
    same = _bundled_copy(tmp_path, "agentclinic-medqa-005", "same.json")
    with caplog.at_level("WARNING", logger="medverify.cases.loading"):
        assert load_case_arg(str(same)) == load_case_arg("agentclinic-medqa-005")
    assert caplog.text == ""


def test_an_id_naming_a_bundled_case_and_a_different_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _bundled_copy(tmp_path, "agentclinic-medqa-005", "agentclinic-medqa-005.json", diagnosis="X")
    with pytest.raises(InputError) as info:
        load_case_arg("agentclinic-medqa-005")
    message = str(info.value)
    assert "names both a bundled case and a different case in agentclinic-medqa-005.json" in message
    assert "./agentclinic-medqa-005.json" in message and "bundled:agentclinic-medqa-005" in message
    assert load_case_arg("./agentclinic-medqa-005.json").diagnosis == "X"
    assert load_case_arg("bundled:agentclinic-medqa-005").diagnosis != "X"
    # The same case written out again (e.g. by 'cases import') is no conflict.
    _bundled_copy(tmp_path, "mediq-medqa-0275", "mediq-medqa-0275.json")
    assert load_case_arg("mediq-medqa-0275").diagnosis == "Presbycusis"


def test_cli_show_reads_ids_as_case_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert json.loads(runner.invoke(app, ["show", "bundled:mediq-medqa-0275"]).output)["id"] == (
        "mediq-medqa-0275"
    )
    _bundled_copy(tmp_path, "mediq-medqa-0275", "mediq-medqa-0275.json", diagnosis="Y")
    clash = runner.invoke(app, ["show", "mediq-medqa-0275"])
    assert isinstance(clash.exception, InputError) and "names both" in str(clash.exception)


# ---------------------------------------------------------------- bundled set


def test_bundled_cases_are_complete_and_do_not_leak() -> None:
    cases = load_bundled_cases()
    assert len(cases) >= 30
    assert (bundled_cases_dir() / "SOURCES.md").is_file()
    for case in cases:
        assert len(case.facts) >= 4, case.id
        assert case.chief_complaint.strip(), case.id
        assert case.persona is not None, case.id
        assert "MIT" in case.source or "CC BY 4.0" in case.source, case.id
        diagnosis = case.diagnosis.lower()
        assert diagnosis not in case.chief_complaint.lower(), case.id
        for fact in case.all_facts():
            assert diagnosis not in fact.text.lower(), (case.id, fact.id)


def test_bundled_files_are_named_by_id_and_pretty() -> None:
    for path in sorted(bundled_cases_dir().glob("*.json")):
        case = load_case(path)
        assert path.name == f"{case.id}.json"
        assert path.read_text(encoding="utf-8") == case_json(case)


# ---------------------------------------------------------------- writing


def test_write_cases_round_trip_and_refuses_overwrite(tmp_path: Path) -> None:
    cases = load_cases(_write(tmp_path / "in.json", [_case("a"), _case("b")]))
    out = tmp_path / "out"
    paths = write_cases(cases, out)
    assert sorted(p.name for p in paths) == ["a.json", "b.json"]
    assert load_cases(out) == cases
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out-")]
    with pytest.raises(CaseInputError, match="already exist"):
        write_cases(cases, out)
    write_cases(cases, out, overwrite=True)
    with pytest.raises(CaseInputError, match="duplicate case id"):
        write_cases([cases[0], cases[0]], tmp_path / "dup")
    assert not (tmp_path / "dup").exists()


# ---------------------------------------------------------------- CLI


def test_cli_import_list_show(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cases"
    result = runner.invoke(
        app,
        [
            "import",
            "--format",
            "mediq",
            str(FIXTURES / "mediq_sample8.jsonl"),
            "--out",
            str(out),
            "--personas",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "converted 5 of 8 mediq items; skipped 1; not diagnosis cases: 2" in result.output
    files = sorted(p.name for p in out.glob("*.json"))
    assert files == [
        "mediq-medqa-0275.json",
        "mediq-medqa-1128.json",
        "mediq-medqa-1224.json",
        "mediq-medqa-5f5faf50.json",
        "mediq-medqa-dff35d5a.json",
    ]
    assert all(c.persona is not None for c in load_cases(out))

    listing = runner.invoke(app, ["list", str(out)], terminal_width=200)
    assert listing.exit_code == 0, listing.output
    assert "mediq-medqa-0275" in listing.output and "Presbycusis" in listing.output

    shown = runner.invoke(app, ["show", "mediq-medqa-0275", "--cases", str(out)])
    assert shown.exit_code == 0
    assert json.loads(shown.output)["diagnosis"] == "Presbycusis"
    by_file = runner.invoke(app, ["show", str(out / "mediq-medqa-1224.json")])
    assert json.loads(by_file.output)["id"] == "mediq-medqa-1224"


def test_cli_import_agentclinic_with_limit_and_ids(tmp_path: Path) -> None:
    runner = CliRunner()
    source = str(FIXTURES / "agentclinic_sample6.jsonl")
    result = runner.invoke(
        app, ["import", "-f", "agentclinic", source, "-o", str(tmp_path / "a"), "--limit", "2"]
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "a").glob("*.json"))) == 2
    result = runner.invoke(
        app,
        [
            "import",
            "-f",
            "agentclinic",
            source,
            "-o",
            str(tmp_path / "b"),
            "--ids",
            "agentclinic-medqa-999",
        ],
    )
    assert isinstance(result.exception, InputError)
    assert not (tmp_path / "b").exists()


def test_cli_list_defaults_to_the_bundled_set() -> None:
    result = CliRunner().invoke(app, ["list"], terminal_width=250)
    assert result.exit_code == 0, result.output
    assert "agentclinic-medqa-001" in result.output and "mediq-medqa-" in result.output
    missing = CliRunner().invoke(app, ["show", "no-such-case"])
    assert isinstance(missing.exception, InputError)
