"""``medverify serve`` against hostile or careless clients: limits, disconnects, errors, keys.

Every server binds 127.0.0.1; every request has a client timeout, so a regression fails
instead of hanging. The tiny model never ends a greedy reply early (random weights), so a
request for thousands of tokens would run for minutes unless it is cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import time

import aiohttp
import pytest
import typer
from typer.testing import CliRunner

from medverify.backends.base import SamplingParams
from medverify.backends.registry import BackendOptions, make_backend
from medverify.deploy import serve as srv
from medverify.deploy.engine import Engine

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ERROR_KEYS = {"message", "type", "param", "code"}
LONG = 3000  # tokens: about two minutes on the tiny model, were it not cancelled


@pytest.fixture(scope="module")
def engine(tiny_dir):
    return Engine(tiny_dir, name="tiny").load()


def _timeout(seconds: float = 30) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)


def _body(content: object = "hello", **extra: object) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], **extra}


async def _error_of(resp: aiohttp.ClientResponse, status: int) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS
    assert "Traceback" not in json.dumps(body)
    return body["error"]


async def _wait_for(check, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_prompts_beyond_the_context_are_refused_before_any_work(engine):
    context = engine.max_context
    # about 1.2 MB, 25 times the context: refused without tokenizing it, let alone generating
    huge = "The patient reports fever. " * 45_000
    # a prompt of exactly context - 3 tokens
    base = [{"role": "user", "content": "fever " * 1000}]
    n = 1000 + (context - 3 - len(engine.encode(base)))
    content = "fever " * n
    assert len(engine.encode([{"role": "user", "content": content}])) == context - 3
    async with (
        srv.running_server(engine) as (server, url),
        aiohttp.ClientSession(timeout=_timeout()) as s,
    ):
        start = time.monotonic()
        async with s.post(f"{url}/chat/completions", json=_body(huge, max_tokens=8)) as resp:
            err = await _error_of(resp, 400)
        assert time.monotonic() - start < 10
        assert err["type"] == "invalid_request_error"
        assert err["code"] == "context_length_exceeded" and err["param"] == "messages"
        assert f"maximum context length is {context} tokens" in err["message"]
        # fits alone, not with max_tokens: 400 like vLLM, not a silently shortened reply
        async with s.post(f"{url}/chat/completions", json=_body(content, max_tokens=4)) as resp:
            err = await _error_of(resp, 400)
        assert err["code"] == "context_length_exceeded"
        assert (
            f"you requested {context + 1} tokens ({context - 3} in the messages" in err["message"]
        )
        assert server.batcher.stats.requests == 0  # nothing reached the generation worker
        # without max_tokens the reply gets what the context has left
        async with s.post(f"{url}/chat/completions", json=_body(content)) as resp:
            assert resp.status == 200
            usage = (await resp.json())["usage"]
        assert usage["prompt_tokens"] == context - 3 and usage["completion_tokens"] <= 3


async def test_max_tokens_is_capped(engine):
    async with (
        srv.running_server(engine, max_tokens_limit=64) as (_server, url),
        aiohttp.ClientSession(timeout=_timeout()) as s,
    ):
        for field in ("max_tokens", "max_completion_tokens"):
            body = _body(**{field: 65})
            async with s.post(f"{url}/chat/completions", json=body) as resp:
                err = await _error_of(resp, 400)
            assert err["param"] == field and "at most 64" in err["message"]
        async with s.post(f"{url}/chat/completions", json=_body(max_tokens=10**30)) as resp:
            assert (await _error_of(resp, 400))["param"] == "max_tokens"
        async with s.post(f"{url}/chat/completions", json=_body(max_tokens=2)) as resp:
            assert resp.status == 200


async def test_a_disconnected_request_stops_generating_and_the_next_one_does_not_wait(engine):
    async with srv.running_server(engine) as (server, url):
        async with aiohttp.ClientSession(timeout=_timeout(1.5)) as s:
            with pytest.raises(asyncio.TimeoutError):
                async with s.post(
                    f"{url}/chat/completions", json=_body(max_tokens=LONG, temperature=0)
                ) as resp:
                    await resp.read()
        await _wait_for(lambda: server.batcher.stats.abandoned == 1)
        async with aiohttp.ClientSession(timeout=_timeout(20)) as s:
            start = time.monotonic()
            async with s.post(f"{url}/chat/completions", json=_body(max_tokens=3)) as resp:
                assert resp.status == 200
            assert time.monotonic() - start < 10


async def test_a_dropped_stream_stops_its_generation_with_one_log_line(engine, caplog):
    caplog.set_level(logging.INFO)
    body = _body(max_tokens=LONG, temperature=0, stream=True)
    async with srv.running_server(engine) as (server, url):
        async with aiohttp.ClientSession(timeout=_timeout()) as s:
            resp = await s.post(f"{url}/chat/completions", json=body)
            assert resp.status == 200
            chunks = 0
            while chunks < 3:
                line = await resp.content.readline()
                chunks += line.startswith(b"data: ")
            resp.close()  # drop the connection mid-stream
        await _wait_for(lambda: server.batcher.stats.abandoned == 1)
        async with aiohttp.ClientSession(timeout=_timeout(20)) as s:
            start = time.monotonic()
            async with s.post(f"{url}/chat/completions", json=_body(max_tokens=3)) as resp:
                assert resp.status == 200
            assert time.monotonic() - start < 10
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    closed = [r for r in caplog.records if "closed the stream" in r.getMessage()]
    assert len(closed) == 1


def test_a_cancelled_generation_stops_between_tokens(engine, tiny_dir):
    pieces: list[str] = []
    gen = engine.generate_ids(
        engine.encode([{"role": "user", "content": "hello"}]),
        SamplingParams(max_tokens=LONG),
        on_text=pieces.append,
        cancelled=lambda: len(pieces) >= 3,
    )
    assert gen.stats.completion_tokens < 20
    rows = engine.generate_many_ids(
        [engine.encode([{"role": "user", "content": q}]) for q in ("a", "b")],
        SamplingParams(max_tokens=12),
        cancelled=[lambda: True, None],
    )
    assert rows[0].stats.completion_tokens == 1 and rows[1].stats.completion_tokens == 12
    # through transformers' assisted decoding too (prompt lookup: no draft model to train)
    lookup = Engine(tiny_dir, draft="ngram").load()
    pieces.clear()
    gen = lookup.generate_ids(
        lookup.encode([{"role": "user", "content": "Repeat: fever, cough, fever, cough"}]),
        SamplingParams(max_tokens=LONG),
        on_text=pieces.append,
        cancelled=lambda: len(pieces) >= 3,
    )
    assert gen.stats.completion_tokens < 20


async def test_every_error_is_openai_json_with_the_right_status(engine):
    async with (
        srv.running_server(engine) as (server, url),
        aiohttp.ClientSession(timeout=_timeout()) as s,
    ):
        chat = f"{url}/chat/completions"
        body = _body(seed=99999999999999999999999, temperature=0.7, max_tokens=2)
        async with s.post(chat, json=body) as resp:
            assert (await _error_of(resp, 400))["param"] == "seed"
        async with s.post(chat, json=_body(temperature=5)) as resp:
            assert (await _error_of(resp, 400))["param"] == "temperature"
        async with s.post(chat, data="not json") as resp:
            await _error_of(resp, 400)
        async with s.post(chat, json=[1, 2]) as resp:
            await _error_of(resp, 400)
        async with s.post(chat, json={"messages": []}) as resp:
            assert (await _error_of(resp, 400))["param"] == "messages"
        image = [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]
        async with s.post(chat, json=_body(image)) as resp:
            assert (await _error_of(resp, 400))["param"] == "messages[0].content"
        async with s.get(f"{url}/nope") as resp:
            assert (await _error_of(resp, 404))["code"] == "not_found"
        async with s.get(chat) as resp:
            await _error_of(resp, 405)
            assert resp.headers["Allow"] == "POST"
        async with s.post(chat, data=b"x" * (srv.MAX_BODY_BYTES + 1)) as resp:
            await _error_of(resp, 413)
        # a large seed within 64 bits is fine
        body = _body(seed=2**63 - 1, temperature=0.7, max_tokens=2)
        async with s.post(chat, json=body) as resp:
            assert resp.status == 200
    assert server.requests == 1


async def test_an_api_key_is_required_when_set_and_never_logged(engine, caplog):
    caplog.set_level(logging.DEBUG)
    key = "sk-medverify-test-7f3a"
    async with (
        srv.running_server(engine, api_key=key) as (_server, url),
        aiohttp.ClientSession(timeout=_timeout()) as s,
    ):
        async with s.get(f"{url}/models") as resp:
            assert (await _error_of(resp, 401))["code"] == "invalid_api_key"
        bad = {"Authorization": "Bearer wrong"}
        async with s.post(f"{url}/chat/completions", json=_body(), headers=bad) as resp:
            await _error_of(resp, 401)
        async with s.get(f"{url}/nope") as resp:  # no route list for strangers
            await _error_of(resp, 401)
        async with s.get(url.removesuffix("/v1") + "/health") as resp:
            assert resp.status == 200
        opts = BackendOptions(base_url=url, api_key=key, use_cache=False, max_attempts=1)
        async with make_backend("openai:tiny", opts) as client:
            got = await client.complete([{"role": "user", "content": "hi"}], max_tokens=3)
        assert got.usage.completion_tokens >= 1
    assert key not in caplog.text
    config = srv.ServeConfig(model="local", api_key=key)
    assert key not in repr(config) and key not in str(config.model_dump())
    assert config.api_key_value == key


async def test_content_parts_names_and_the_developer_role(engine):
    fancy = [
        {"role": "developer", "content": "Answer briefly.", "name": "ops"},
        {
            "role": "user",
            "name": "patient",
            "content": [
                {"type": "text", "text": "Is 38.5 C"},
                {"type": "text", "text": "a fever?"},
            ],
        },
    ]
    plain = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Is 38.5 C\na fever?"},
    ]
    async with (
        srv.running_server(engine) as (_server, url),
        aiohttp.ClientSession(timeout=_timeout()) as s,
    ):
        replies = []
        for messages in (fancy, plain):
            body = {"messages": messages, "max_tokens": 6, "temperature": 0}
            async with s.post(f"{url}/chat/completions", json=body) as resp:
                assert resp.status == 200, await resp.text()
                replies.append((await resp.json())["choices"][0]["message"]["content"])
    assert replies[0] == replies[1]


def test_dry_run_prints_a_command_that_pastes_into_a_shell(tiny_dir, monkeypatch):
    from medverify.deploy.cli import serve_cmd

    root = typer.Typer()
    root.command("serve")(serve_cmd)
    root.command("noop")(lambda: None)
    key = "sk-dry-run-secret"
    monkeypatch.setenv("MEDVERIFY_SERVE_API_KEY", key)
    args = ["serve", "--model", str(tiny_dir), "--draft", "ngram", "--name", "tiny model's"]
    result = CliRunner().invoke(root, [*args, "--dry-run"], terminal_width=60)
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert "\n" not in line  # no wrapping at 60 columns
    expected = srv.vllm_command(
        srv.ServeConfig(model=str(tiny_dir), draft="ngram", name="tiny model's"), tiny_dir
    )
    assert shlex.split(line) == expected
    spec = json.loads(expected[expected.index("--speculative-config") + 1])
    assert spec["method"] == "ngram"
    assert key not in result.output
    assert srv.vllm_env(srv.ServeConfig(model="local", api_key=key)) == {"VLLM_API_KEY": key}
