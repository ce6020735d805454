"""Verifier-guided search: the verifier, not the order of samples, picks every doctor turn."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from medverify.backends.base import Message
from medverify.cases.loading import load_bundled_cases
from medverify.consult.task import ConsultationTask
from medverify.grading import make_grader
from medverify.train.config import parse_config
from medverify.train.expert_iteration import round_cases
from medverify.train.guided_search import (
    ScoredClosing,
    SearchedConsultation,
    SearchSettings,
    SearchStep,
    guided_consultation,
    training_rows,
)

# Written in everyday words, without reading the case's facts: the search must find which of
# these the patient actually answers.
QUESTIONS = [
    "Nice weather today, isn't it?",
    "Do you smoke or drink alcohol?",
    "What do you do for a living?",
    "DIAGNOSIS: tension headache",  # concluding early: never chosen as a question
    "Have you noticed any weakness in your arms?",
]
CLOSINGS = [
    "DIAGNOSIS: migraine",
    "DIAGNOSIS: myasthenia gravis\nPLAN: this line is cut: a diagnosis line ends at its newline",
    "DIAGNOSIS: anxiety",
    "DIAGNOSIS:",
]
PLANS = [
    " antibody test and a neurology referral; come back at once if you have trouble breathing "
    "or swallowing.\nDIAGNOSIS: a second line is cut too",
    " rest and fluids.",
]


class ListSampler:
    """Returns the same candidates every time; records what it was shown."""

    def __init__(self) -> None:
        self.shown: list[tuple[list[Message], str]] = []

    def sample(
        self,
        messages: Sequence[Message],
        *,
        n: int,
        max_new_tokens: int,
        prefix: str = "",
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        self.shown.append((list(messages), prefix))
        if prefix.endswith("PLAN:"):
            return [prefix + p for p in PLANS[:n]]
        if prefix:
            return [c if c.startswith(prefix) else prefix + c for c in CLOSINGS]
        return list(QUESTIONS)


@pytest.fixture(scope="module")
def case():
    return {c.id: c for c in load_bundled_cases()}["agentclinic-medqa-001"]


@pytest.fixture(scope="module")
def searched(case) -> tuple[SearchedConsultation, ListSampler]:
    sampler = ListSampler()
    task = ConsultationTask(case=case, max_turns=4)
    done = asyncio.run(
        guided_consultation(task, sampler, make_grader("local"), SearchSettings(candidates=5))
    )
    return done, sampler


def test_each_question_turn_is_the_one_the_patient_answered(searched):
    done, _ = searched
    questions = [s for s in done.steps if not s.closing]
    assert len(questions) == 3
    assert all(s.new_findings > 0 and s.gain > 0 for s in questions)
    assert "Nice weather" not in " ".join(s.text for s in questions)
    assert not any(s.text.startswith("DIAGNOSIS") for s in questions)
    assert len({s.text for s in questions}) == 3  # an answered question is not asked again


def test_the_closing_is_the_one_the_verifier_scores_best(searched, case):
    done, _ = searched
    closing = done.steps[-1]
    assert closing.closing
    assert closing.text == (
        "DIAGNOSIS: myasthenia gravis\nPLAN: antibody test and a neurology referral; come back "
        "at once if you have trouble breathing or swallowing."
    )
    assert done.diagnosis_named and done.diagnosis_correct
    assert done.termination == "diagnosis"
    assert done.reward is not None and closing.reward == done.reward


def test_closings_are_diagnosis_lines_then_plans_for_each(searched):
    _, sampler = searched
    prefixes = [prefix for _, prefix in sampler.shown if prefix]
    assert prefixes[0] == "DIAGNOSIS:"
    planned = [p.removesuffix("\nPLAN:") for p in prefixes[1:]]
    # a plan for every distinct line that names something; none for the bare field
    assert planned == ["DIAGNOSIS: migraine", "DIAGNOSIS: myasthenia gravis", "DIAGNOSIS: anxiety"]


def test_runners_up_are_the_next_best_closings(case):
    task = ConsultationTask(case=case, max_turns=2)
    settings = SearchSettings(candidates=4, plan_samples=2, closings_kept=3)
    done = asyncio.run(guided_consultation(task, ListSampler(), make_grader("local"), settings))
    closing = done.steps[-1]
    assert len(closing.runners_up) == 2
    rewards = [closing.reward, *(r.reward for r in closing.runners_up)]
    assert rewards == sorted(rewards, reverse=True)
    assert closing.text not in {r.text for r in closing.runners_up}


def test_one_stage_closings_without_a_plan_prefix(case):
    task = ConsultationTask(case=case, max_turns=2)
    sampler = ListSampler()
    settings = SearchSettings(candidates=4, plan_prefix=None)
    done = asyncio.run(guided_consultation(task, sampler, make_grader("local"), settings))
    assert [prefix for _, prefix in sampler.shown if prefix] == ["DIAGNOSIS:"]
    assert "PLAN: this line is cut" in done.steps[-1].text  # sampled whole, kept whole


def test_targets_are_shown_under_the_task_prompt_not_the_search_prompt(searched):
    done, sampler = searched
    settings = SearchSettings()
    question_prompts = [m[0].content for m, prefix in sampler.shown if not prefix]
    assert question_prompts and all(p == settings.search_prompt for p in question_prompts)
    task_prompt = ConsultationTask(case=load_bundled_cases()[0]).system_prompt
    assert all(step.messages[0]["content"] == task_prompt for step in done.steps)
    assert "last turn" in done.steps[-1].messages[-1]["content"]  # the task's own nudge


def _consultation(
    reward: float,
    gains: list[float],
    runners_up: list[float] | None = None,
    *,
    named: bool = True,
    runners_up_named: list[bool | None] | None = None,
) -> SearchedConsultation:
    """Question turns with these gains, then a closing with this reward and runners-up."""
    flags = runners_up_named or [True] * len(runners_up or [])
    steps = [
        SearchStep(messages=[{"role": "user", "content": "hi"}], text=f"q{i}", gain=g)
        for i, g in enumerate(gains)
    ]
    steps.append(
        SearchStep(
            messages=[],
            text=f"close {reward}",
            closing=True,
            reward=reward,
            runners_up=[
                ScoredClosing(text=f"alt {r}", reward=r, named=f)
                for r, f in zip(runners_up or [], flags, strict=True)
            ],
        )
    )
    return SearchedConsultation(
        case_id="c",
        steps=steps,
        transcript={},
        reward=reward,
        score=reward,
        facts_elicited=0.5,
        diagnosis_named=named,
        diagnosis_correct=False,
        termination="diagnosis",
    )


def test_training_rows_keep_productive_questions_and_good_closings():
    rows = training_rows([_consultation(0.5, [0.02, 0.0]), _consultation(0.1, [-0.01, 0.03])])
    texts = [r["completion"][0]["content"] for r in rows]
    assert texts == ["q0", "close 0.5", "q1"]


def test_runner_up_closings_that_clear_the_bar_are_rows_too():
    played = [_consultation(0.5, [], [0.4, 0.2]), _consultation(0.1, [], [0.05])]  # bar 0.3
    rows = training_rows(played)
    assert [r["completion"][0]["content"] for r in rows] == ["close 0.5", "alt 0.4"]


def test_a_closing_that_names_no_condition_is_never_a_target():
    played = [
        _consultation(
            0.5, [0.02], [0.45, 0.4, 0.35], named=False, runners_up_named=[True, False, None]
        ),
        _consultation(0.1, []),
    ]  # bar 0.3: every closing clears it
    stored = played[0].steps[-1].runners_up[2]  # a round stored before the flag: read the line
    stored.text = "DIAGNOSIS: Suspected pneumonia\nPLAN: chest X-ray"
    rows = training_rows(played)
    assert [r["completion"][0]["content"] for r in rows] == ["q0", "alt 0.45", stored.text]
    stored.text = "DIAGNOSIS: Suspected cough for a week"
    assert [r["completion"][0]["content"] for r in training_rows(played)] == ["q0", "alt 0.45"]


def test_the_search_records_whether_each_runner_up_names_a_condition(case):
    task = ConsultationTask(case=case, max_turns=2)
    settings = SearchSettings(candidates=4, plan_prefix=None, closings_kept=4)
    done = asyncio.run(guided_consultation(task, ListSampler(), make_grader("local"), settings))
    named = {r.text.split("\n")[0]: r.named for r in done.steps[-1].runners_up}
    assert named["DIAGNOSIS: migraine"] is True
    assert named["DIAGNOSIS:"] is False  # the bare field names nothing


def test_fork_leaves_the_consultation_untouched(case):
    task = ConsultationTask(case=case, max_turns=4)
    env = task.environment()
    env.opening()
    fork = env.fork()
    asyncio.run(fork.respond("Do you smoke or drink alcohol?"))
    assert len(env.transcript.turns) == 1 and not env.revealed
    assert env.gate.doctor_turns == 0 and fork.gate.doctor_turns == 1


def test_round_cases_walk_every_case_before_repeating():
    cases = load_bundled_cases()[:10]
    seen = [c.id for r in range(3) for c in round_cases(cases, 4, r, seed=0)]
    assert set(seen[:10]) == {c.id for c in cases}


def test_an_expert_iteration_stage_trains_the_consultation_task():
    cfg = parse_config({"stages": [{"name": "d", "kind": "expert_iteration"}]})
    stage = cfg.stages[0]
    assert stage.task == "consultation" and stage.ei is not None and stage.ei.rounds >= 1
    with pytest.raises(Exception, match="consultation"):
        parse_config({"stages": [{"name": "d", "kind": "expert_iteration", "task": "rule"}]})
