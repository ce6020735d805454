"""One local-model runtime: ``hf:`` backends, the deploy engine and its backend answer alike."""

from __future__ import annotations

import pytest

from medverify.backends.base import SamplingParams
from medverify.backends.hf import HFBackend
from medverify.deploy.backend import EngineBackend
from medverify.deploy.engine import Engine

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CHAT = [{"role": "user", "content": "Is 38.5 C a fever?"}]


async def test_an_hf_backend_and_the_deploy_engine_give_the_same_reply(tiny_dir):
    engine = Engine(tiny_dir).load()
    full = engine.generate(CHAT, SamplingParams(max_tokens=12))
    async with HFBackend(tiny_dir, cache=None) as backend:
        got = await backend.complete(CHAT, max_tokens=12)
        assert got.text == full.text
        assert got.usage.completion_tokens == full.stats.completion_tokens
        assert got.usage.prompt_tokens == full.stats.prompt_tokens == len(engine.encode(CHAT))
        assert got.finish_reason == full.stats.finish_reason
        stop = full.text[len(full.text) // 2 :][:3]  # ends all paths alike
        assert stop
        cut = engine.generate(CHAT, SamplingParams(max_tokens=12, stop=(stop,)))
        assert stop not in cut.text and full.text.startswith(cut.text)
        assert cut.stats.finish_reason == "stop"
        assert len(cut.token_ids) == cut.stats.completion_tokens < full.stats.completion_tokens
        got = await backend.complete(CHAT, max_tokens=12, stop=[stop])
        assert got.text == cut.text and got.finish_reason == "stop"
        assert got.usage.completion_tokens == cut.stats.completion_tokens
        batched = engine.generate_many([CHAT, CHAT], SamplingParams(max_tokens=12, stop=(stop,)))
        assert [g.token_ids for g in batched] == [cut.token_ids] * 2


async def test_a_deploy_backend_leaves_the_shared_engine_loaded(tiny_dir, tiny_draft):
    engine = Engine(tiny_dir, draft=tiny_draft, draft_tokens=3).load()
    alone = engine.generate(CHAT, SamplingParams(max_tokens=8), use_draft=False)
    async with EngineBackend(engine, spec="deploy:fp + draft") as backend:
        got = await backend.complete(CHAT, max_tokens=8)
    assert got.text == alone.text and got.model == engine.name
    assert backend.concurrency == 1 and not backend.cacheable
    assert engine.model is not None  # other variants of the report still use it
