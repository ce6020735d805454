"""The LLM writer: merge, validation, bounded re-asks, fallback to the core; never a crash."""

from __future__ import annotations

import asyncio
import json

from medverify.backends.base import Message, RetryPolicy, SamplingParams
from medverify.backends.mock import MockBackend
from medverify.backends.registry import BackendOptions, make_backend
from medverify.cases.records import CaseRecord
from medverify.errors import TransientBackendError
from medverify.rubrics import core_rubric, generate_rubric
from medverify.rubrics.writer import parse_items
from medverify.testing.fake_openai import FakeOpenAIServer

GOOD = {
    "items": [
        {
            "criterion": "Asks about difficulty swallowing, chewing or breathing",
            "points": 7,
            "dimension": "consultation_logic",
            "axis": "completeness",
        },
        {
            "criterion": "Recommends pyridostigmine and referral to a neurologist",
            "points": 5,
            "tags": ["dimension:treatment_rationality", "axis:accuracy"],
        },
        {
            "criterion": "Prescribes an aminoglycoside antibiotic, which can worsen weakness",
            "points": -6,
            "dimension": "treatment_rationality",
            "axis": "accuracy",
        },
    ]
}


def _run(coro):
    return asyncio.run(coro)


def scripted(*replies: str) -> MockBackend:
    """A writer that answers the given replies in order (then repeats the last)."""
    calls: list[list[Message]] = []

    def respond(messages: list[Message], params: SamplingParams) -> str:
        calls.append(messages)
        return replies[min(len(calls), len(replies)) - 1]

    backend = MockBackend(respond)
    backend.seen = calls  # type: ignore[attr-defined]
    return backend


def test_writer_items_are_merged_after_the_core(mg_case: CaseRecord) -> None:
    writer = scripted("```json\n" + json.dumps(GOOD) + "\n```")
    rubric = _run(generate_rubric(mg_case, writer=writer, seed=3, dedupe="tokens"))
    core = core_rubric(mg_case)
    assert rubric.items[: len(core.items)] == core.items
    added = [i for i, o in zip(rubric.items, rubric.origins, strict=True) if o == "writer"]
    assert [i.points for i in added] == [7, 5, -6]
    assert added[1].tags == ["dimension:treatment_rationality", "axis:accuracy"]
    assert rubric.writer == "mock" and rubric.seed == 3 and rubric.generator == "core+writer"
    # the writer saw the record (diagnosis included) and the existing criteria
    prompt = writer.seen[0][-1].content
    assert "Diagnosis: Myasthenia gravis" in prompt and core.items[0].criterion in prompt


def test_bad_json_is_asked_again_then_used(mg_case: CaseRecord) -> None:
    writer = scripted("Sure! Here are some criteria: 1. ask about breathing", json.dumps(GOOD))
    rubric = _run(generate_rubric(mg_case, writer=writer, dedupe="tokens"))
    assert writer.calls == 2
    assert "could not be used" in writer.seen[1][-1].content
    assert rubric.origins.count("writer") == 3
    assert any("writer attempt 1" in w for w in rubric.warnings)


def test_writer_that_never_answers_json_falls_back_to_core(mg_case: CaseRecord) -> None:
    writer = scripted("no json here")
    rubric = _run(generate_rubric(mg_case, writer=writer))
    assert writer.calls == 3  # bounded
    assert rubric.items == core_rubric(mg_case).items
    assert any("no usable reply in 3 attempts" in w for w in rubric.warnings)


def test_backend_failure_falls_back_to_core(mg_case: CaseRecord) -> None:
    def fail(messages: list[Message], params: SamplingParams) -> str:
        raise TransientBackendError("503 from upstream")

    writer = MockBackend(fail, retry=RetryPolicy(max_attempts=2, base_delay_s=0.0))
    rubric = _run(generate_rubric(mg_case, writer=writer))
    assert rubric.items == core_rubric(mg_case).items
    assert any("rubric writer mock failed" in w for w in rubric.warnings)


def test_invalid_items_are_dropped_and_reported() -> None:
    reply = {
        "items": [
            {
                "criterion": "Asks about breathing difficulty",
                "points": 0,
                "dimension": "consultation_logic",
                "axis": "completeness",
            },
            {
                "criterion": "Asks about breathing difficulty",
                "points": 12,
                "dimension": "consultation_logic",
                "axis": "completeness",
            },
            {
                "criterion": "Asks about breathing difficulty",
                "points": 4,
                "dimension": "bedside_manner",
                "axis": "completeness",
            },
            {
                "criterion": "Asks about breathing difficulty",
                "points": 4,
                "dimension": "consultation_logic",
                "axis": "thoroughness",
            },
            {
                "criterion": "Short",
                "points": 4,
                "dimension": "consultation_logic",
                "axis": "completeness",
            },
            {"points": 4},
            {
                "criterion": "Asks about breathing difficulty",
                "points": 4,
                "dimension": "dimension:consultation_logic",
                "axis": "axis:completeness",
            },
        ]
    }
    items, problems = parse_items(json.dumps(reply))
    assert len(items) == 1 and items[0].points == 4
    assert len(problems) == 6
    assert any("unknown dimension 'bedside_manner'" in p for p in problems)
    assert any("unknown axis 'thoroughness'" in p for p in problems)


def test_all_invalid_items_trigger_a_re_ask(mg_case: CaseRecord) -> None:
    bad = json.dumps(
        {
            "items": [
                {
                    "criterion": "Asks about x and y",
                    "points": 0,
                    "dimension": "consultation_logic",
                    "axis": "completeness",
                }
            ]
        }
    )
    writer = scripted(bad, json.dumps(GOOD))
    rubric = _run(generate_rubric(mg_case, writer=writer, dedupe="tokens"))
    assert writer.calls == 2 and "None of your criteria" in writer.seen[1][-1].content
    assert rubric.origins.count("writer") == 3


def test_writer_points_are_capped_by_the_core(mg_case: CaseRecord) -> None:
    many = {
        "items": [
            {
                "criterion": f"Asks about specific symptom number {n} of the case",
                "points": 10,
                "dimension": "consultation_logic",
                "axis": "completeness",
            }
            for n in range(10)
        ]
    }
    rubric = _run(
        generate_rubric(
            mg_case, writer=scripted(json.dumps(many)), dedupe="tokens", writer_share=0.2
        )
    )
    core = core_rubric(mg_case)
    added = [i for i, o in zip(rubric.items, rubric.origins, strict=True) if o == "writer"]
    assert sum(i.points for i in added) <= 0.2 * core.positive_points
    assert any("beyond 20%" in w for w in rubric.warnings)


def test_writer_duplicates_of_core_are_removed(mg_case: CaseRecord) -> None:
    core = core_rubric(mg_case)
    repeat = {
        "items": [
            {
                "criterion": core.items[0].criterion,
                "points": 9,
                "dimension": "diagnostic_accuracy",
                "axis": "accuracy",
            }
        ]
    }
    rubric = _run(generate_rubric(mg_case, writer=scripted(json.dumps(repeat)), dedupe="tokens"))
    assert rubric.items == core.items
    assert any("exact duplicate" in w for w in rubric.warnings)


def test_writer_over_the_fake_openai_server(mg_case: CaseRecord) -> None:
    seeds: list[int | None] = []

    def responder(body: dict) -> str:
        seeds.append(body.get("seed"))
        return json.dumps(GOOD) if len(seeds) > 1 else "{not json"

    async def go():
        with FakeOpenAIServer(responder=responder) as server:
            options = BackendOptions(base_url=server.base_url, api_key="k", use_cache=False)
            backend = make_backend("openai:fake", options)
            try:
                return await generate_rubric(mg_case, writer=backend, seed=5, dedupe="tokens")
            finally:
                await backend.aclose()

    rubric = _run(go())
    assert rubric.origins.count("writer") == 3 and rubric.writer == "openai:fake"
    assert seeds == [5, 1005]  # a re-ask samples with another seed
