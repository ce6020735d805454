"""HFBackend on any transformers checkpoint: validation, identity, loading and micro-batching."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from medverify.backends import local
from medverify.backends.hf import HFBackend
from medverify.errors import ConfigError

PROMPTS = [
    "What are the symptoms of type 2 diabetes?",
    "I have had a headache and a fever for three days. What should I do?",
    "Explain hypertension in one paragraph.",
    "hi",
    "My child swallowed a coin. Is this an emergency?",
]


def _chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_missing_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match="no such checkpoint directory") as info:
        HFBackend(missing)
    assert str(missing) in str(info.value)
    assert "\n" not in str(info.value)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match=r"not a transformers checkpoint \(no config.json\)"):
        HFBackend(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="has no model weights"):
        HFBackend(tmp_path)
    file = tmp_path / "config.json"
    with pytest.raises(ConfigError, match="is not a directory"):
        HFBackend(file)


def test_identity_changes_with_the_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"v1")
    first = HFBackend(tmp_path).identity()
    assert first.startswith(f"hf:{tmp_path.resolve()}:")
    assert first.endswith(":float32")
    assert HFBackend(tmp_path).identity() == first
    weights.write_bytes(b"v2 retrained")
    os.utime(weights, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert HFBackend(tmp_path).identity() != first
    assert HFBackend(tmp_path, dtype="bfloat16").identity().endswith(":bfloat16")


def test_bad_batch_size(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="max_batch_size"):
        HFBackend(tmp_path, max_batch_size=0)


# -- with the model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The embedded model converted once per session (test_local.py shares the directory)."""
    cache = tmp_path_factory.getbasetemp() / "medverify-cache"
    gguf = local.find_default_gguf()
    return local.ensure_converted(gguf, local.converted_model_dir(gguf, cache))


@pytest.fixture(scope="module")
def backend(checkpoint):
    b = HFBackend(checkpoint, spec=f"hf:{checkpoint}")
    b.load_sync()
    yield b
    b.close()


@pytest.mark.slow
async def test_concurrent_first_calls_load_once(checkpoint, monkeypatch):
    b = HFBackend(checkpoint)
    loads = []
    real = HFBackend._load_model

    def counting(self):
        loads.append(1)
        real(self)

    monkeypatch.setattr(HFBackend, "_load_model", counting)
    replies = await asyncio.gather(*(b.complete(_chat("hi"), max_tokens=3) for _ in range(3)))
    assert len(loads) == 1
    assert len({r.text for r in replies}) == 1
    assert replies[0].model == checkpoint.name
    await b.aclose()


@pytest.mark.slow
async def test_cached_checkpoint_generates(backend, checkpoint):
    c = await backend.complete(
        [{"role": "system", "content": "You are a careful doctor."}, *_chat(PROMPTS[2])],
        max_tokens=8,
    )
    assert c.text.strip()
    assert c.usage.completion_tokens == 8
    assert c.finish_reason == "length"
    assert backend.identity().startswith(f"hf:{checkpoint.resolve()}:")
    assert backend.device == "cpu"


@pytest.mark.slow
async def test_batched_greedy_equals_single(backend):
    """Left-padded batches must give each request exactly its own greedy reply."""
    singles = [await backend.complete(_chat(p), max_tokens=20) for p in PROMPTS]
    before = backend.stats.model_copy()
    batched = await asyncio.gather(*(backend.complete(_chat(p), max_tokens=20) for p in PROMPTS))
    assert backend.stats.max_batch == len(PROMPTS)
    assert backend.stats.batches - before.batches == 1
    for one, many in zip(singles, batched, strict=True):
        assert many.text == one.text
        assert many.usage == one.usage
        assert many.finish_reason == one.finish_reason


@pytest.mark.slow
async def test_mixed_requests_are_grouped(backend):
    """Sampling requests and greedy requests with other limits are not batched together."""
    before = backend.stats.model_copy()
    greedy = [backend.complete(_chat(p), max_tokens=3) for p in PROMPTS[:2]]
    other = backend.complete(_chat(PROMPTS[0]), max_tokens=2)
    sampled = backend.complete(_chat(PROMPTS[0]), max_tokens=3, temperature=0.7, seed=1)
    replies = await asyncio.gather(*greedy, other, sampled)
    assert [r.usage.completion_tokens for r in replies] == [3, 3, 2, 3]
    assert backend.stats.batches - before.batches == 3


@pytest.mark.slow
async def test_unknown_dtype(checkpoint):
    b = HFBackend(checkpoint, dtype="float77")
    with pytest.raises(ConfigError, match="unknown torch dtype"):
        await b.load()


@pytest.mark.slow
async def test_cpu_float32_runs_the_few_row_kernel_with_pytorchs_greedy_text(backend, checkpoint):
    """The column kernel (on by default) changes speed, not the greedy replies checked here."""
    assert getattr(backend.model.get_output_embeddings(), "_column_linear", False)
    plain = HFBackend(checkpoint, column_linear=False, max_batch_size=1)
    plain.load_sync()
    assert not hasattr(plain.model.get_output_embeddings(), "_column_linear")
    for prompt in PROMPTS[:3]:
        ours = await backend.complete(_chat(prompt), max_tokens=16)
        theirs = await plain.complete(_chat(prompt), max_tokens=16)
        assert ours.text == theirs.text
    plain.close()
