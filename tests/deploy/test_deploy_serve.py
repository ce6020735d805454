"""The CPU server against medverify's own clients: openai: backend, HealthBench, simulator."""

from __future__ import annotations

import json
import socket

import aiohttp
import pytest

from medverify.backends.registry import BackendOptions, make_backend
from medverify.deploy import serve as srv
from medverify.deploy.engine import Engine
from medverify.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def engine(tiny_dir, tiny_draft):
    return Engine(tiny_dir, draft=tiny_draft, name="tiny", draft_tokens=4).load()


def _opts(url: str) -> BackendOptions:
    return BackendOptions(base_url=url, api_key="unused", use_cache=False, max_attempts=1)


async def test_openai_backend_gets_the_engines_greedy_reply(engine):
    async with (
        srv.running_server(engine) as (server, url),
        make_backend("openai:tiny", _opts(url)) as client,
    ):
        got = await client.complete(
            [{"role": "user", "content": "Is 38.5 C a fever?"}], max_tokens=12
        )
    direct = engine.generate(
        [{"role": "user", "content": "Is 38.5 C a fever?"}],
        srv.SamplingParams(max_tokens=12),
        use_draft=False,
    )
    assert got.text == direct.text
    assert got.usage.completion_tokens == direct.stats.completion_tokens
    assert got.finish_reason == direct.stats.finish_reason
    assert server.last_stats.draft_calls > 0  # the server decoded with the draft


async def test_concurrent_greedy_requests_are_batched_and_get_their_single_replies(engine):
    import asyncio

    questions = ["Is 38.5 C a fever?", "What is a normal pulse?", "Can I take ibuprofen?", "hi"]
    async with (
        srv.running_server(engine) as (server, url),
        make_backend("openai:tiny", _opts(url)) as client,
    ):
        got = await asyncio.gather(
            *(client.complete([{"role": "user", "content": q}], max_tokens=10) for q in questions),
            client.complete([{"role": "user", "content": "odd one"}], max_tokens=7),
        )
    assert max(server.batch_sizes) > 1  # several requests shared a batch
    assert sum(server.batch_sizes) == len(questions) + 1
    for q, reply in zip(questions, got, strict=False):
        alone = engine.generate(
            [{"role": "user", "content": q}], srv.SamplingParams(max_tokens=10), use_draft=False
        )
        assert reply.text == alone.text
        assert reply.usage.completion_tokens == alone.stats.completion_tokens
        assert reply.finish_reason == alone.stats.finish_reason
    # another max_tokens is another batch: its reply still has its own length limit
    assert got[-1].usage.completion_tokens <= 7


async def test_batching_can_be_turned_off_and_sampling_is_never_batched(engine):
    import asyncio

    with pytest.raises(ConfigError, match="max_batch_size"):
        srv.ChatServer(engine, max_batch_size=0)
    with pytest.raises(ConfigError, match="greedy only"):
        engine.generate_many(
            [[{"role": "user", "content": "x"}]], srv.SamplingParams(temperature=1)
        )
    async with (
        srv.running_server(engine, max_batch_size=1) as (server, url),
        make_backend("openai:tiny", _opts(url)) as client,
    ):
        await asyncio.gather(
            *(
                client.complete([{"role": "user", "content": f"q{i}"}], max_tokens=4)
                for i in range(3)
            )
        )
    assert server.batch_sizes == []  # every request went through engine.generate alone


async def test_streaming_sends_openai_chunks_that_add_up_to_the_reply(engine):
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 12,
        "temperature": 0,
        "stream": True,
    }
    async with srv.running_server(engine) as (_server, url), aiohttp.ClientSession() as s:
        async with s.post(f"{url}/chat/completions", json=body) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            raw = (await resp.read()).decode()
        async with s.post(f"{url}/chat/completions", json={**body, "stream": False}) as resp:
            whole = await resp.json()
    events = [line[6:] for line in raw.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == whole["choices"][0]["message"]["content"]
    assert len([c for c in chunks if c["choices"][0]["delta"].get("content")]) > 1
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["usage"] == whole["usage"]


async def test_bad_requests_get_400_with_the_field(engine):
    async with srv.running_server(engine) as (_server, url), aiohttp.ClientSession() as s:
        async with s.post(f"{url}/chat/completions", data="not json") as resp:
            assert resp.status == 400
        async with s.post(f"{url}/chat/completions", json={"messages": []}) as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
            assert "messages" in error["message"]
            assert error["type"] == "invalid_request_error" and error["param"] == "messages"
        async with s.get(f"{url}/models") as resp:
            assert (await resp.json())["data"][0]["id"] == "tiny"


async def test_a_port_in_use_is_a_clear_error(engine):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is in use"):
            async with srv.running_server(engine, port=port):
                pass


async def test_healthbench_runs_against_the_server(engine, tmp_path):
    from pathlib import Path

    from medverify.healthbench.pipeline import HealthBenchJob, run_job
    from medverify.testing.fake_openai import FakeOpenAIServer
    from medverify.testing.judges import keyword_judge

    data = Path(__file__).parents[1] / "fixtures" / "healthbench" / "hard_sample5.jsonl"
    with FakeOpenAIServer(responder=keyword_judge) as judge:
        async with srv.running_server(engine) as (server, url):
            job = HealthBenchJob(
                data=data,
                grader="openai:judge",
                run_dir=tmp_path / "hb",
                model="openai:tiny",
                limit=2,
                max_tokens=8,
                model_options=_opts(url),
                grader_options=_opts(judge.base_url),
            )
            outcome = await run_job(job)
    assert outcome.n_examples == 2
    assert outcome.results.overall.n == 2
    assert server.requests == 2


async def test_the_simulator_consults_the_served_doctor(engine):
    from medverify.cases.loading import load_bundled_cases
    from medverify.simulator.consult import run_consultation

    case = load_bundled_cases()[0]
    async with (
        srv.running_server(engine) as (server, url),
        make_backend("openai:tiny", _opts(url)) as doctor,
    ):
        transcript = await run_consultation(case, doctor, max_turns=1)
    roles = [t.role for t in transcript.turns]
    assert roles[:2] == ["patient", "doctor"]  # the chief complaint, then the served doctor
    assert transcript.doctor == "openai:tiny"
    assert transcript.termination_reason
    assert server.requests == 1


def test_vllm_command_carries_quantized_dir_and_draft(tmp_path, tiny_dir, tiny_draft, tiny_int8):
    from medverify.deploy.common import DeployManifest, write_manifest

    w4 = tmp_path / "w4"
    w4.mkdir()
    write_manifest(
        w4,
        DeployManifest(
            kind="quantized",
            method="w4a16",
            target="vllm",
            source_model="local",
            source_dir=str(tiny_dir),
        ),
    )
    cfg = srv.ServeConfig(
        model=str(tiny_dir), quantized=w4, draft=tiny_draft, port=8123, draft_tokens=5
    )
    cmd = srv.vllm_command(cfg, tiny_dir)
    assert cmd[:3] == ["vllm", "serve", str(w4)]
    assert cmd[cmd.index("--port") + 1] == "8123"
    spec = json.loads(cmd[cmd.index("--speculative-config") + 1])
    assert spec == {"model": str(tiny_draft), "num_speculative_tokens": 5}
    with pytest.raises(ConfigError, match="int8-dynamic, a CPU format vLLM cannot load"):
        srv.vllm_command(cfg.model_copy(update={"quantized": tiny_int8}), tiny_dir)


def test_engine_choice(monkeypatch):
    from medverify.deploy import quantize as q

    monkeypatch.setattr(q, "_importable", lambda m: False)
    assert srv.choose_engine("auto") == "local"
    with pytest.raises(ConfigError, match="needs vLLM"):
        srv.choose_engine("vllm")
    with pytest.raises(ConfigError, match="unknown engine"):
        srv.choose_engine("tgi")


def test_serve_config_checks_directories(tmp_path, tiny_dir, tiny_draft):
    from medverify.errors import InputError

    with pytest.raises(ConfigError, match=r"has no manifest.json"):
        srv.engine_for(srv.ServeConfig(model="local", quantized=tmp_path))
    with pytest.raises(InputError, match="expected a quantized directory"):
        srv.engine_for(srv.ServeConfig(model=f"hf:{tiny_dir}", quantized=tiny_draft))


def test_ngram_drafting_is_exact_and_maps_onto_vllm(tiny_dir):
    engine = Engine(tiny_dir, draft="ngram").load()
    assert engine.ngram and engine.draft is None and engine.draft_tokens == 3
    assert engine.has_draft and engine.draft_label == "ngram" and engine.column_linear
    # a reply that repeats its prompt is where prompt lookup pays
    messages = [{"role": "user", "content": "Repeat: fever, cough, fever, cough, fever, cough."}]
    params = srv.SamplingParams(max_tokens=24)
    alone = engine.generate(messages, params, use_draft=False)
    spec = engine.generate(messages, params)
    assert spec.token_ids == alone.token_ids
    assert spec.stats.draft_calls == 0 and spec.stats.target_calls <= alone.stats.target_calls
    cfg = srv.ServeConfig(model=str(tiny_dir), draft="ngram")
    assert srv.engine_for(cfg).ngram  # no manifest is looked for
    cmd = srv.vllm_command(cfg, tiny_dir)
    spec_cfg = json.loads(cmd[cmd.index("--speculative-config") + 1])
    assert spec_cfg == {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 4}
    from medverify.deploy.report import make_variants

    names = [v.name for v in make_variants(tiny_dir, draft="ngram")]
    assert names == ["fp", "fp + ngram"]
