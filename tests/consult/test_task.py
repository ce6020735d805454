"""The consultation task: the benchmark and the training reward score a transcript the same way."""

from __future__ import annotations

import hashlib

import pytest

from medverify.cases.loading import load_bundled_cases
from medverify.consult.bench import ConsultBench, make_units
from medverify.consult.pipeline import scripted_factory
from medverify.consult.task import ConsultationTask
from medverify.grading import Grade, RubricItem
from medverify.grading.evidence import DetectorCheck
from medverify.runs.store import RunStore
from medverify.train.rewards import ConsultationReward, RubricScorer

CASES = {c.id: c for c in load_bundled_cases()}


class HashGrader:
    """Met or not by a hash of (response, criterion): deterministic, and no doctor can game it."""

    spec = "hash"

    def __init__(self) -> None:
        self.calls = 0

    async def grade(self, conversation, response: str, item: RubricItem) -> Grade:
        self.calls += 1
        digest = hashlib.sha256(f"{response}|{item.criterion}".encode()).digest()
        return Grade(met=digest[0] % 2 == 0, explanation="hash")

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("doctor", ["scripted:good", "scripted:wrong"])
async def test_bench_and_reward_give_the_same_score_for_the_same_transcript(tmp_path, doctor):
    cases = [CASES["agentclinic-medqa-001"], CASES["mediq-medqa-1224"]]
    units = make_units(cases, ["case"])
    with RunStore(tmp_path / "run", job="t", config={}) as store:
        bench = ConsultBench(store, scripted_factory(doctor), HashGrader(), max_turns=12)
        outcomes, failures = await bench.run(units)
    assert not failures and len(outcomes) == 2
    reward = ConsultationReward(
        RubricScorer(HashGrader()), {c.id: c for c in cases}, process_weight=0.0
    )
    for outcome in outcomes:
        case = CASES[outcome.case_id]
        got = await reward.score_one(case, outcome.transcript)
        assert outcome.scored.score is not None
        assert got == pytest.approx(outcome.scored.score, abs=1e-12)
        # the dimensions are the same computation too
        again = await reward.evaluate(case, outcome.transcript)
        assert again.dimensions == pytest.approx(outcome.scored.dimensions)
        assert set(again.dimensions) <= {
            "diagnostic_accuracy",
            "consultation_logic",
            "treatment_rationality",
            "communication_empathy",
            "medical_ethics",
        }


async def test_reward_mixes_the_task_score_with_the_process_score():
    case = CASES["agentclinic-medqa-001"]
    task = ConsultationTask(case=case, max_turns=12)
    transcript = await task.play(scripted_factory("scripted:good")(case))
    scored = await task.score(transcript, HashGrader())
    assert scored.score is not None
    mixed = scored.reward(rubric_weight=1.0, process_weight=1.0)
    assert mixed == pytest.approx((scored.score + scored.process_score) / 2)
    with pytest.raises(ValueError):
        scored.reward(rubric_weight=0.0, process_weight=0.0)


async def test_a_failed_verdict_leaves_the_consultation_unscored():
    class Failing(HashGrader):
        async def grade(self, conversation, response, item):
            return Grade(met=None, error="judge never answered JSON")

    case = CASES["agentclinic-medqa-001"]
    task = ConsultationTask(case=case, max_turns=4)
    transcript = await task.play(scripted_factory("scripted:guess")(case))
    rubric = await task.rubric(transcript)
    scored = await task.score(transcript, Failing(), rubric=rubric)
    assert scored.score is None and scored.reward() is None
    evidence = {c for c, check in rubric.checks.items() if not isinstance(check, DetectorCheck)}
    judged = [v for v in scored.verdicts if v.criterion not in evidence]
    assert judged and all(v.met is None and v.error for v in judged)
    # evidence-checked items need no judge, so they still have verdicts
    assert all(v.met is not None for v in scored.verdicts if v.criterion in evidence)
    # the process measures are still there: they need no grader
    assert scored.process.doctor_turns >= 1


def test_doctor_messages_nudge_only_the_last_turn():
    case = CASES["agentclinic-medqa-001"]
    task = ConsultationTask(case=case, max_turns=3)
    env = task.environment()
    env.opening()
    plain = task.doctor_messages(env.transcript)
    nudged = task.doctor_messages(env.transcript, last_turn=True)
    assert plain[0].role == "system" and plain[0].content == task.system_prompt
    assert "DIAGNOSIS:" not in plain[-1].content
    assert nudged[-1].content.startswith(plain[-1].content) and "DIAGNOSIS:" in nudged[-1].content


async def test_judge_checked_measures_how_often_the_judge_agrees_with_the_evidence():
    class Yes(HashGrader):
        spec = "yes-judge"

        async def grade(self, conversation, response, item):
            self.calls += 1
            return Grade(met=True, explanation="always met")

    case = CASES["agentclinic-medqa-001"]
    task = ConsultationTask(case=case, max_turns=12)
    transcript = await task.play(scripted_factory("scripted:careful")(case))
    judge = Yes()
    plain = await task.score(transcript, judge)
    asked = await task.score(transcript, judge, judge_checked=True)
    assert plain.judge_agreement is None
    assert asked.judge_agreement is not None and 0.0 < asked.judge_agreement < 1.0
    # the evidence verdicts are what is scored, whatever the judge said
    assert asked.score == pytest.approx(plain.score)


def test_the_grader_prompt_has_no_doubled_full_stop():
    from medverify.consult.render import presentation

    case = CASES["agentclinic-medqa-001"].model_copy(update={"chief_complaint": "I have a fever."})
    text = presentation(case)
    assert "fever. Judge" in text and ".." not in text
