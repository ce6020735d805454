import ast
import json
from pathlib import Path

import numpy as np
import pytest

from medverify.grading.records import RubricItem
from medverify.grading.scoring import (
    aggregate,
    bootstrap_std,
    clipped_mean,
    example_metrics,
    example_score,
)
from medverify.healthbench.data import load_examples

FIXTURES = Path(__file__).parents[1] / "fixtures" / "healthbench"
SHARED = Path(__file__).parents[3] / "shared" / "data" / "healthbench" / "graded_sample70.jsonl"


def item(points, *tags, text="c"):
    return RubricItem(criterion=text, points=points, tags=list(tags))


def test_example_score_by_hand():
    items = [item(5), item(3), item(-4), item(2)]
    # possible = 5 + 3 + 2 = 10; met 5 and the -4 harm: (5 - 4) / 10
    assert example_score(items, [True, False, True, False]) == pytest.approx(0.1)
    assert example_score(items, [True, True, False, True]) == pytest.approx(1.0)
    # Only harms met: below zero for the example; clipping happens on the mean only.
    assert example_score(items, [False, False, True, False]) == pytest.approx(-0.4)
    assert example_score([item(-3)], [True]) is None
    with pytest.raises(ValueError, match="2 rubric items but 1 verdicts"):
        example_score([item(1), item(2)], [True])


def test_example_metrics_by_hand():
    items = [
        item(6, "axis:accuracy", "level:example"),
        item(4, "axis:completeness", "level:example"),
        item(-5, "axis:accuracy", "level:example"),
        item(-2, "axis:communication_quality", "level:example"),
    ]
    metrics = example_metrics(items, [True, False, True, True], ["theme:hedging"])
    assert metrics["overall_score"] == pytest.approx((6 - 5 - 2) / 10)
    assert metrics["theme:hedging"] == metrics["overall_score"]
    assert metrics["axis:accuracy"] == pytest.approx((6 - 5) / 6)
    assert metrics["axis:completeness"] == 0.0
    assert "axis:communication_quality" not in metrics  # no positive points: undefined
    assert metrics["level:example"] == metrics["overall_score"]


def test_clipped_mean_and_bootstrap():
    assert clipped_mean([-0.5, -0.2]) == 0.0
    assert clipped_mean([1.5, 0.9]) == 1.0
    assert clipped_mean([0.2, 0.4]) == pytest.approx(0.3)
    values = list(np.linspace(0, 1, 50))
    assert bootstrap_std(values) == bootstrap_std(values)  # seeded: reproducible
    # close to the analytic standard error of the mean
    assert bootstrap_std(values, resamples=4000) == pytest.approx(
        np.std(values) / np.sqrt(len(values)), rel=0.1
    )
    assert bootstrap_std([0.7] * 10) == pytest.approx(0.0, abs=1e-12)


def test_aggregate_only_counts_examples_that_have_the_metric():
    stats = aggregate([{"overall_score": 0.5, "axis:a": 1.0}, {"overall_score": -0.1}])
    assert stats["overall_score"].n == 2
    assert stats["overall_score"].score == pytest.approx(0.2)
    assert stats["axis:a"].n == 1 and stats["axis:a"].score == 1.0


def _replay(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    examples = load_examples(path).examples
    for row, example in zip(rows, examples, strict=True):
        responses = ast.literal_eval(row["responses"])
        met = [r["response_dict"]["criteria_met"] for r in responses]
        expected = ast.literal_eval(row["metrics"])
        got = example_metrics(example.rubrics, met, example.example_tags)
        assert set(got) == set(expected), row["prompt_id"]
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-12), (row["prompt_id"], key)
        assert got["overall_score"] == pytest.approx(row["score"], abs=1e-9)
    return len(rows)


def test_replaying_recorded_verdicts_reproduces_reference_scores():
    assert _replay(FIXTURES / "graded_sample10.jsonl") == 10


@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data not present")
def test_replaying_all_70_graded_rows():
    assert _replay(SHARED) == 70
