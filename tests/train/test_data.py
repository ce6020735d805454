import json

import pytest

from medverify.errors import ConfigError, InputError
from medverify.train.config import CorpusSource, MidTrainSettings
from medverify.train.data import (
    case_answer_items,
    consultation_rows,
    load_case_set,
    load_mcq,
    mcq_rows,
    split,
    task_rows,
)
from medverify.train.midtrain import mixture, mixture_probabilities
from medverify.train.rewards import rule_score


def test_bundled_mcq_items_ship_and_score():
    items = load_mcq()
    assert len(items) == 64
    assert all(item.answer in item.options for item in items)
    row = mcq_rows(items[:1])[0]
    assert row["prompt"][0]["role"] == "system"
    answer_text = items[0].options[items[0].answer]
    assert (
        rule_score(f"Answer: {items[0].answer}", row["answer"], json.loads(row["options"])) == 1.0
    )
    assert answer_text in row["prompt"][1]["content"]


def test_bad_mcq_line_names_file_line_field(tmp_path):
    path = tmp_path / "mcq.jsonl"
    good = {"id": "a", "question": "q?", "options": {"A": "x", "B": "y"}, "answer": "A"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "answer": "E"}) + "\n")
    with pytest.raises(InputError) as err:
        load_mcq(str(path))
    assert (err.value.line, err.value.field) == (2, "answer")
    path.write_text(json.dumps({**good, "question": ""}) + "\n")
    with pytest.raises(InputError, match=r"mcq\.jsonl:1 field 'question'"):
        load_mcq(str(path))


def test_split_holds_out_the_tail():
    train, held = split(list(range(10)), 3, limit=4)
    assert train == [0, 1, 2, 3] and held == [7, 8, 9]


def test_task_rows_have_the_reward_columns():
    rubric = task_rows("rubric", "bundled")
    assert len(rubric) == 8 and json.loads(rubric[0]["rubric"])[0]["points"]
    cases = load_case_set()[:2]
    rows = consultation_rows(cases)
    assert [r["case_id"] for r in rows] == [c.id for c in cases]
    assert rows[0]["prompt"][1]["role"] == "user"
    short = mcq_rows(case_answer_items(cases))
    assert short[0]["options"] == "" and short[0]["answer"] == cases[0].diagnosis


def test_mixture_ratio_renormalises_missing_categories():
    settings = MidTrainSettings()
    assert mixture_probabilities(settings) == pytest.approx({"medical": 0.5, "general": 0.5})
    only_med = MidTrainSettings(sources=[CorpusSource(category="medical", path="bundled:cases")])
    assert mixture_probabilities(only_med) == {"medical": 1.0}


def test_mixture_streams_text_from_local_files(tmp_path):
    (tmp_path / "med.txt").write_text("medical line one\nmedical line two\n")
    (tmp_path / "math.jsonl").write_text('{"body": "1 + 1 = 2"}\n{"body": "2 + 2 = 4"}\n')
    settings = MidTrainSettings(
        sources=[
            CorpusSource(category="medical", path=str(tmp_path / "*.txt")),
            CorpusSource(category="math", path=str(tmp_path / "math.jsonl"), text_field="body"),
        ],
        ratio={"medical": 2, "math": 1},
    )
    texts = [row["text"] for row in mixture(settings, seed=0)]
    assert set(texts) >= {"medical line one", "1 + 1 = 2"}
    with pytest.raises(ConfigError, match="no such file"):
        list(
            mixture(
                MidTrainSettings(
                    sources=[CorpusSource(category="medical", path=str(tmp_path / "none*.txt"))]
                )
            )
        )
