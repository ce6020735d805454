import json
import warnings

import pytest

from medverify.backends.mock import MockBackend
from medverify.runs.store import RunStore
from medverify.train.rewards import RubricScorer
from medverify.train.rs_sft import Candidate, sample_and_grade, select_best, sft_rows, task_scorer

from .conftest import FakeGrader, keyword_decider

OPTIONS = json.dumps({"A": "x", "B": "y"})


def test_select_best_keeps_the_top_at_or_above_threshold():
    cands = [
        Candidate(text="a", score=0.4),
        Candidate(text="b", score=None),
        Candidate(text="c", score=0.9),
    ]
    assert select_best(cands, 0.5).text == "c"
    assert select_best(cands, 0.95) is None
    assert select_best([Candidate(text="d", score=0.5)], 0.5).text == "d"


def _rows():
    return [
        {
            "id": "q1",
            "prompt": [{"role": "user", "content": "1"}],
            "answer": "A",
            "options": OPTIONS,
        },
        {
            "id": "q2",
            "prompt": [{"role": "user", "content": "2"}],
            "answer": "B",
            "options": OPTIONS,
        },
    ]


async def test_sample_grade_select_and_resume(tmp_path):
    # the "policy" answers A for seed 0 and B otherwise: q1 has one right sample, q2 has k-1
    policy = MockBackend(lambda messages, params: "Answer: A" if params.seed == 0 else "Answer: B")
    store = RunStore(tmp_path, job="rs", config={"k": 3})
    samples = await sample_and_grade(
        _rows(), policy, task_scorer("rule"), store, k=3, temperature=1.0, max_new_tokens=8
    )
    assert [c.score for c in samples["q1"]] == [1.0, 0.0, 0.0]
    kept, stats = sft_rows(_rows(), samples, threshold=1.0)
    assert [k["completion"][0]["content"] for k in kept] == ["Answer: A", "Answer: B"]
    assert stats["keep_rate"] == 1.0 and stats["mean_sample_score"] == pytest.approx(3 / 6)
    calls = policy.calls
    again = await sample_and_grade(
        _rows(), policy, task_scorer("rule"), store, k=3, temperature=1.0, max_new_tokens=8
    )
    assert policy.calls == calls and again == samples  # resumed: nothing sampled twice
    store.close()


async def test_ungraded_samples_are_never_kept(tmp_path):
    rows = [
        {
            "id": "h1",
            "prompt": [{"role": "user", "content": "q"}],
            "rubric": json.dumps([{"criterion": "hydration", "points": 5}]),
        }
    ]
    scorer = RubricScorer(FakeGrader(lambda r, i: None))
    store = RunStore(tmp_path, job="rs", config={})
    samples = await sample_and_grade(
        rows,
        MockBackend(),
        task_scorer("rubric", scorer),
        store,
        k=2,
        temperature=1.0,
        max_new_tokens=8,
    )
    kept, stats = sft_rows(rows, samples, threshold=0.0)
    assert kept == [] and stats["ungraded"] == 2
    good = RubricScorer(FakeGrader(keyword_decider))
    assert await task_scorer("rubric", good)(rows[0], "Hydration first") == 1.0
    store.close()


def test_the_checkpointing_switch_reaches_a_trl_config_without_a_deprecation_warning():
    trl = pytest.importorskip("trl")
    from medverify.backends.torch_runtime import checkpointing_kwarg

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        args = trl.SFTConfig(
            output_dir="unused", report_to=[], use_cpu=True, **checkpointing_kwarg(True)
        )
    assert args.gradient_checkpointing is True  # read under either name
