import json

import pytest

from medverify.cases.records import Persona, Transcript, Turn
from medverify.grading import RubricItem, VerdictCache
from medverify.train.rewards import (
    ConsultationReward,
    RubricReward,
    RubricScorer,
    RuleReward,
    extract_choice,
    rule_score,
)

from .conftest import FakeGrader, keyword_decider

OPTIONS = {"A": "Gentamicin", "B": "Ciprofloxacin", "C": "Ceftriaxone", "D": "Trimethoprim"}


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("Answer: C", "C"),
        ("The answer is (B) because...", "B"),
        ("D. Trimethoprim", "D"),
        ("c", "C"),
        ("I would give ceftriaxone here.", "C"),
        ("Either gentamicin or ceftriaxone", None),
        ("I am not sure.", None),
    ],
)
def test_extract_choice(text, choice):
    assert extract_choice(text, OPTIONS) == choice


def test_rule_reward_batched_over_columns():
    reward = RuleReward()
    completions = [
        [{"role": "assistant", "content": "Answer: C"}],
        [{"role": "assistant", "content": "Answer: A"}],
        "no idea",
        [{"role": "assistant", "content": "DIAGNOSIS: Myasthenia gravis"}],
    ]
    out = reward(
        completions=completions,
        answer=["C", "C", "C", "Myasthenia gravis"],
        options=[json.dumps(OPTIONS)] * 3 + [""],
    )
    assert out == [1.0, 0.0, 0.0, 1.0]


def test_rule_score_short_answer_needs_the_diagnosis():
    assert rule_score("DIAGNOSIS: pneumonia", "Myasthenia gravis") == 0.0
    assert rule_score("I think it is myasthenia gravis.", "Myasthenia gravis") == 1.0


ITEMS = [
    RubricItem(criterion="Hydration advice is given", points=5),
    RubricItem(criterion="Urgent care is recommended for red flags", points=5),
    RubricItem(criterion="Antibiotics are prescribed without indication", points=-4),
]


async def test_rubric_reward_is_the_healthbench_example_score(keyword_grader):
    reward = RubricReward(RubricScorer(keyword_grader))
    prompts = [[{"role": "user", "content": "My child has a cold"}]] * 3
    completions = [
        [{"role": "assistant", "content": "Hydration matters; urgent care if breathing is hard."}],
        [{"role": "assistant", "content": "Hydration and antibiotics."}],
        [{"role": "assistant", "content": "Rest."}],
    ]
    rubric = [json.dumps([i.model_dump() for i in ITEMS])] * 3
    out = await reward(prompts=prompts, completions=completions, rubric=rubric)
    # (5+5)/10, (5-4)/10, 0/10: hand-computed from HealthBench's formula
    assert out == pytest.approx([1.0, 0.1, 0.0])


async def test_grader_failure_is_no_reward_not_zero():
    fails_on_urgent = FakeGrader(lambda r, i: None if "Urgent" in i.criterion else True)
    reward = RubricReward(RubricScorer(fails_on_urgent))
    rubric = [json.dumps([i.model_dump() for i in ITEMS])]
    out = await reward(prompts=["q"], completions=["a"], rubric=rubric)
    assert out == [None]
    assert reward.scorer.failures == 1


async def test_grader_exception_is_no_reward():
    def boom(response, item):
        raise RuntimeError("grader bug")

    scorer = RubricScorer(FakeGrader(boom))
    assert await scorer.score([{"role": "user", "content": "q"}], "a", ITEMS) is None


async def test_verdicts_are_cached_and_failures_are_not(tmp_path):
    grader = FakeGrader(keyword_decider)
    cache = VerdictCache(str(tmp_path / "grades.sqlite"))
    scorer = RubricScorer(grader, cache=cache)
    conv = [{"role": "user", "content": "q"}]
    first = await scorer.score(conv, "hydration", ITEMS)
    calls = grader.calls
    again = await scorer.score(conv, "hydration", ITEMS)
    assert first == again and grader.calls == calls == 3
    cache.close()
    # a new scorer on the same file answers from disk
    grader2 = FakeGrader(keyword_decider)
    scorer2 = RubricScorer(grader2, cache=VerdictCache(str(tmp_path / "grades.sqlite")))
    assert await scorer2.score(conv, "hydration", ITEMS) == first
    assert grader2.calls == 0
    flaky = FakeGrader(lambda r, i: None)
    scorer3 = RubricScorer(flaky)
    await scorer3.score(conv, "x", ITEMS[:1])
    await scorer3.score(conv, "x", ITEMS[:1])
    assert flaky.calls == 2


async def test_max_items_grades_only_the_first_criteria(keyword_grader):
    scorer = RubricScorer(keyword_grader, max_items=1)
    assert await scorer.score([], "hydration", ITEMS) == 1.0
    assert keyword_grader.calls == 1


async def test_rubric_reward_grades_concurrently():
    import asyncio

    in_flight = 0
    peak = 0

    class Slow(FakeGrader):
        async def grade(self, conversation, response, item):
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1
            return await super().grade(conversation, response, item)

    reward = RubricReward(RubricScorer(Slow(keyword_decider), concurrency=8))
    rubric = [json.dumps([i.model_dump() for i in ITEMS])] * 4
    await reward(prompts=["q"] * 4, completions=[f"a{i}" for i in range(4)], rubric=rubric)
    assert peak > 1


def _transcript(case, doctor_lines, diagnosis):
    turns = [Turn(role="patient", text=case.chief_complaint)]
    for line in doctor_lines:
        turns += [Turn(role="doctor", text=line), Turn(role="patient", text="ok")]
    first_fact = case.facts[0].id
    turns[2] = Turn(role="patient", text="yes", revealed_fact_ids=[first_fact])
    return Transcript(
        case_id=case.id,
        persona=Persona(),
        turns=turns,
        final_diagnosis=diagnosis,
        termination_reason="diagnosis" if diagnosis else "turn_limit",
    )


@pytest.fixture
def case():
    from medverify.cases.loading import load_bundled_cases

    return load_bundled_cases()[0]


async def test_process_score(case):
    right = _transcript(case, ["Any fever?", f"DIAGNOSIS: {case.diagnosis}"], case.diagnosis)
    wrong = _transcript(case, ["Any fever?", "DIAGNOSIS: flu"], "flu")
    recall = 1 / len(case.facts)
    reward = ConsultationReward(RubricScorer(FakeGrader(lambda r, i: True)), {case.id: case})
    assert (await reward.evaluate(case, right)).process_score == pytest.approx((1 + recall) / 3)
    assert (await reward.evaluate(case, wrong)).process_score == pytest.approx(recall / 3)


async def test_consultation_reward_combines_rubric_and_process(case):
    grader = FakeGrader(lambda r, i: case.diagnosis.lower() in r.lower())
    reward = ConsultationReward(
        RubricScorer(grader), {case.id: case}, rubric_weight=1.0, process_weight=1.0
    )
    right = _transcript(case, ["Any fever?", f"DIAGNOSIS: {case.diagnosis}"], case.diagnosis)
    wrong = _transcript(case, ["Any fever?", "DIAGNOSIS: flu"], "flu")
    out = await reward(
        completions=["", ""],
        case_id=[case.id, case.id],
        transcript=[right.model_dump_json(), wrong.model_dump_json()],
    )
    assert grader.calls > 0
    assert out[0] > out[1]
    # a consultation's score is not clipped (HealthBench clips only the mean): it can be < 0
    assert out[1] < out[0] <= 1.0


async def test_consultation_reward_grader_failure_is_none(case):
    reward = ConsultationReward(RubricScorer(FakeGrader(lambda r, i: None)), {case.id: case})
    t = _transcript(case, ["Any fever?", "DIAGNOSIS: flu"], "flu")
    assert await reward(completions=[""], case_id=[case.id], transcript=[t.model_dump_json()]) == [
        None
    ]
