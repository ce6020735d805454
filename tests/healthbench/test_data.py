import json
from pathlib import Path

import pytest

from medverify.errors import ConfigError, InputError
from medverify.healthbench.data import load_examples, resolve_data

FIXTURE = Path(__file__).parents[1] / "fixtures" / "healthbench" / "hard_sample5.jsonl"


def test_loads_and_hashes_a_real_file():
    data = load_examples(FIXTURE)
    assert len(data.examples) == 5
    assert len(data.sha256) == 64
    first = data.examples[0]
    assert first.messages()[0]["role"] == "user"
    assert all(-10 <= r.points <= 10 and r.points != 0 for r in first.rubrics)


def write_lines(tmp_path, rows):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def good_row(pid="p1"):
    return json.loads(FIXTURE.read_text().splitlines()[0]) | {"prompt_id": pid}


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda r: r["rubrics"][1].update(points=12), "rubrics.1.points", "less than or equal"),
        (lambda r: r["rubrics"][0].update(points=0), "rubrics.0.points", "non-zero"),
        (lambda r: r["prompt"][0].update(role="doctor"), "prompt.0.role", "Input should be"),
        (lambda r: r.pop("prompt_id"), "prompt_id", "Field required"),
        (lambda r: r.update(rubrics=[]), "rubrics", "at least 1"),
    ],
)
def test_a_bad_line_names_file_line_and_field(tmp_path, mutate, field, message):
    bad = good_row("p2")
    mutate(bad)
    path = write_lines(tmp_path, [good_row(), bad])
    with pytest.raises(InputError) as info:
        load_examples(path)
    assert str(info.value).startswith(f"{path}:2 field '{field}': ")
    assert message in str(info.value)


def test_invalid_json_and_duplicates(tmp_path):
    path = write_lines(tmp_path, [good_row(), '{"prompt_id": "x", '])
    with pytest.raises(InputError, match=r"data.jsonl:2: not valid JSON"):
        load_examples(path)
    path = write_lines(tmp_path, [good_row(), good_row()])
    with pytest.raises(InputError, match=r":2 field 'prompt_id': duplicate prompt_id"):
        load_examples(path)


def test_skip_invalid_keeps_going_and_counts(tmp_path):
    bad = good_row("p2")
    bad["rubrics"][0]["points"] = "many"
    path = write_lines(tmp_path, [good_row(), bad, "not json", good_row("p3")])
    data = load_examples(path, skip_invalid=True)
    assert [e.prompt_id for e in data.examples] == ["p1", "p3"]
    assert len(data.skipped) == 2 and ":2 field 'rubrics.0.points'" in data.skipped[0]


def test_subset_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDVERIFY_DATA", raising=False)
    with pytest.raises(ConfigError, match="needs a data directory"):
        resolve_data(None, "hard", None)
    with pytest.raises(ConfigError, match=r"hard_2025-05-08-21-00-10\.jsonl not found"):
        resolve_data(None, "hard", tmp_path)
    (tmp_path / "hard_2025-05-08-21-00-10.jsonl").write_text("{}")
    monkeypatch.setenv("MEDVERIFY_DATA", str(tmp_path))
    assert resolve_data(None, "hard", None).name == "hard_2025-05-08-21-00-10.jsonl"
    with pytest.raises(ConfigError, match="--data FILE or --subset"):
        resolve_data(None, None, None)
    with pytest.raises(InputError, match="file not found"):
        load_examples(tmp_path / "missing.jsonl")
