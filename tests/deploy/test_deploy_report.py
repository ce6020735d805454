from __future__ import annotations

import json
from pathlib import Path

import pytest

from medverify.deploy import report as rep
from medverify.grading.scoring import Stat

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PROMPTS = [
    [{"role": "user", "content": "I have a sore throat."}],
    [{"role": "user", "content": "Is 38.5 C a fever?"}],
]


@pytest.fixture(scope="module")
def variants(tiny_dir, tiny_int8, tiny_draft):
    vs = rep.make_variants(tiny_dir, quantized=tiny_int8, draft=tiny_draft)
    for v in vs:
        v.engine.draft_tokens = 3
    return vs


def test_measure_reports_every_variant_side_by_side(variants):
    results, gens = rep.measure(variants, PROMPTS, max_new_tokens=6)
    assert [r.name for r in results] == ["fp", "fp + draft", "int8-dynamic", "int8-dynamic + draft"]
    by = {r.name: r for r in results}
    assert by["fp"].identical_to_reference == 2
    # assisted decoding reproduces the same target's greedy text
    assert [g.text for g in gens["fp + draft"]] == [g.text for g in gens["fp"]]
    assert [g.text for g in gens["int8-dynamic + draft"]] == [g.text for g in gens["int8-dynamic"]]
    assert by["fp"].acceptance is None and by["fp + draft"].acceptance is not None
    assert by["fp + draft"].batched_tok_s is None and by["fp"].batched_tok_s > 0
    assert by["fp + draft"].draft_weights_mb > 0
    assert all(r.single_tok_s > 0 and r.n_prompts == 2 for r in results)
    assert by["fp"].tokens_per_target_pass <= 1.0
    # fp and fp + draft share one engine, hence one kernel; dynamic int8 layers are never patched
    assert by["fp"].cpu_linear and by["fp + draft"].cpu_linear


async def test_quality_uses_one_grader_for_every_variant(variants, tmp_path):
    from medverify.backends.registry import BackendOptions
    from medverify.testing.fake_openai import FakeOpenAIServer
    from medverify.testing.judges import keyword_judge

    data = Path(__file__).parents[1] / "fixtures" / "healthbench" / "hard_sample5.jsonl"
    with FakeOpenAIServer(responder=keyword_judge) as judge:
        opts = BackendOptions(base_url=judge.base_url, api_key="x", use_cache=False)
        scores = await rep.healthbench_quality(
            variants[:2],
            data,
            "openai:judge",
            tmp_path,
            limit=1,
            max_tokens=6,
            grader_options=opts,
        )
        graded = judge.requests
    assert set(scores) == {"fp", "fp + draft"}
    assert all(s.n == 1 for s in scores.values())
    assert scores["fp"] == scores["fp + draft"]  # identical completions, same grader
    assert graded > 0
    lines = (tmp_path / "fp" / "completions.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["prompt_id"]

    seen = []

    async def consult(name, backend):
        seen.append(name)
        reply = await backend.complete(PROMPTS[0], max_tokens=4)
        return 1.0 if reply.usage.completion_tokens else 0.0

    out = await rep.consult_quality(variants[:1], consult)
    assert seen == ["fp"] and out["fp"] == Stat(score=1.0, std=0.0, n=1)


def test_report_files_hold_the_table_and_charts(variants, tmp_path):
    results, _ = rep.measure(variants[:2], PROMPTS[:1], max_new_tokens=4, batched=False)
    results[0].healthbench = Stat(score=0.25, std=0.1, n=5)
    report = rep.DeployReport(model="tiny", reference="fp", variants=results, settings={"n": 1})
    paths = rep.write_report(report, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert [v["name"] for v in data["variants"]] == ["fp", "fp + draft"]
    page = paths["html"].read_text()
    assert page.count("<svg") == 3  # speed, memory, HealthBench
    assert "fp + draft" in page and "tok/s (1 user)" in page
    rows = rep.table_rows(report)
    assert rows[0][0] == "fp" and rows[0][8] == "1/1"
    assert rows[0][9].startswith("0.250 ± 0.100")
