import json
from pathlib import Path

import pytest

from conftest import run_cli
from medverify.backends.openai_compat import OpenAIBackend
from medverify.errors import InputError
from medverify.grading.agreement import (
    LabelledCriterion,
    balanced_accuracy,
    load_labelled,
    macro_f1,
)
from medverify.grading.judge import LLMJudge
from medverify.grading.records import RubricItem
from medverify.healthbench.meta_eval import grade_labelled, score_meta_eval
from medverify.runs.store import RunStore
from medverify.testing.fake_openai import FakeOpenAIServer
from medverify.testing.judges import keyword_judge, replay_judge

GRADED10 = Path(__file__).parents[1] / "fixtures" / "healthbench" / "graded_sample10.jsonl"


def test_agreement_metrics_by_hand():
    pairs = [(True, True), (True, True), (False, True), (False, False), (True, False)]
    # met: tp=2 fp=1 fn=1 -> F1 2/3; not met: tp=1 fp=1 fn=1 -> F1 1/2
    assert macro_f1(pairs) == pytest.approx((2 / 3 + 1 / 2) / 2)
    # recall met 2/3, recall not met 1/2
    assert balanced_accuracy(pairs) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert macro_f1([(True, True)] * 3) == pytest.approx(0.5)  # one class only: its F1 is 0
    assert balanced_accuracy([(True, True)] * 3) == 1.0


def official_row(labels, category="cluster:a", completion="text", rubric="Mentions 'x'."):
    return {
        "prompt": [{"role": "user", "content": "q"}],
        "completion": completion,
        "rubric": rubric,
        "category": category,
        "binary_labels": labels,
        "anonymized_physician_ids": [f"p{i}" for i in range(len(labels))],
        "completion_id": f"c-{completion}-{category}",
        "prompt_id": "p",
    }


def test_physicians_are_compared_with_each_other(tmp_path):
    path = tmp_path / "meta.jsonl"
    rows = [
        official_row([True, True, False], completion="x here"),
        official_row([False, False], category="cluster:b", completion="nothing"),
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    items = load_labelled(path)
    assert [len(i.labels) for i in items] == [3, 2]
    result = score_meta_eval(
        items, {items[0].id: True, items[1].id: False}, grader="g", data_sha256="0", n_failures=0
    )
    assert result.overall.n_pairs == 5
    assert result.labellers_overall.n_pairs == 6 + 2
    assert set(result.by_category) == {"cluster:a", "cluster:b"}


def test_graded_rows_become_labelled_criteria():
    items = load_labelled(GRADED10)
    rows = [json.loads(line) for line in GRADED10.read_text().splitlines()]
    assert len(items) == sum(len(r["rubrics"]) for r in rows)
    assert all(i.category.startswith("axis:") and len(i.labels) == 1 for i in items)


def test_bad_meta_eval_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"prompt_id": "x"}) + "\n")
    with pytest.raises(InputError, match=r"m.jsonl:1: ValueError: neither a meta-eval row"):
        load_labelled(path)
    path.write_text(json.dumps(official_row([])) + "\n")
    with pytest.raises(InputError, match=r"m.jsonl:1 field 'labels'"):
        load_labelled(path)


def test_meta_eval_cli_replaying_the_judge_agrees_perfectly(tmp_path):
    items = load_labelled(GRADED10, limit=60)
    verdicts = {(i.completion, i.item.criterion): i.labels[0] for i in items}
    run_dir = tmp_path / "run"
    with FakeOpenAIServer(responder=replay_judge(verdicts)) as srv:
        result = run_cli(
            "healthbench",
            "meta-eval",
            "--data",
            str(GRADED10),
            "--limit",
            "60",
            "--grader",
            "openai:replay",
            "--grader-base-url",
            srv.base_url,
            "--run-dir",
            str(run_dir),
            env={"MEDVERIFY_CACHE_DIR": str(tmp_path / "c")},
        )
    assert result.returncode == 0, result.stderr
    out = json.loads((run_dir / "meta_eval.json").read_text())
    assert out["overall"]["macro_f1"] == pytest.approx(1.0)
    assert out["overall"]["n_pairs"] == 60
    assert "macro F1" in result.stdout


async def test_a_weak_grader_scores_below_a_perfect_one(tmp_path):
    items = [
        LabelledCriterion(
            id=str(i),
            conversation=[{"role": "user", "content": "q"}],
            completion="aspirin" if i % 2 else "rest",
            item=RubricItem(criterion="Mentions 'aspirin'.", points=5),
            category="axis:accuracy",
            labels=[bool(i % 2)],
        )
        for i in range(20)
    ]
    with FakeOpenAIServer(responder=keyword_judge) as srv:
        judge = LLMJudge(OpenAIBackend("k", base_url=srv.base_url, api_key=""))
        with RunStore(tmp_path, job="m", config={}) as store:
            verdicts, failures = await grade_labelled(items, judge, store)
        await judge.backend.aclose()
    good = score_meta_eval(items, verdicts, grader="k", data_sha256="0", n_failures=failures)
    always_met = score_meta_eval(
        items, {i.id: True for i in items}, grader="yes", data_sha256="0", n_failures=0
    )
    assert good.overall.macro_f1 == pytest.approx(1.0)
    assert always_met.overall.macro_f1 < 0.5
