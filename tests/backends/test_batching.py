"""The micro-batcher in front of the local-model runtime, with a stand-in engine (no torch)."""

from __future__ import annotations

import threading

import pytest

from medverify.backends.base import Message, SamplingParams
from medverify.backends.batching import Batcher
from medverify.backends.runtime import Generation, GenerationStats, first_stop
from medverify.errors import ConfigError


class FakeEngine:
    """Records how it was called; replies echo the prompt."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def encode(self, messages: list[Message]) -> list[int]:
        text = messages[-1].content
        if text == "bad":
            raise ConfigError("the chat template rejected the messages")
        return [ord(c) for c in text]

    def _reply(self, prompt: list[int], params: SamplingParams) -> Generation:
        text = "".join(chr(c) for c in prompt)
        stats = GenerationStats(prompt_tokens=len(prompt), completion_tokens=1, seconds=0.0)
        return Generation(text=text, token_ids=prompt, stats=stats)

    def generate_ids(self, prompt, params, *, on_text=None, use_draft=True) -> Generation:
        self.entered.set()
        self.gate.wait()
        self.calls.append(("one", 1))
        if on_text is not None:
            on_text("streamed")
        return self._reply(prompt, params)

    def generate_many_ids(self, prompts, params) -> list[Generation]:
        self.calls.append(("many", len(prompts)))
        return [self._reply(p, params) for p in prompts]


def _msg(text: str) -> list[Message]:
    return [Message(role="user", content=text)]


def test_queued_greedy_requests_share_a_batch_and_others_run_alone():
    engine = FakeEngine()
    batcher = Batcher(engine, max_batch_size=3, batch_window_s=0.0)
    engine.gate.clear()
    first = batcher.submit(_msg("first"), SamplingParams(max_tokens=4))
    assert engine.entered.wait(5)  # the worker is busy with it: the rest queue up
    greedy = [batcher.submit(_msg(f"g{i}"), SamplingParams(max_tokens=4)) for i in range(4)]
    other = batcher.submit(_msg("other"), SamplingParams(max_tokens=5))
    sampled = batcher.submit(_msg("s"), SamplingParams(max_tokens=4, temperature=0.5, seed=1))
    pieces: list[str] = []
    streamed = batcher.submit(_msg("st"), SamplingParams(max_tokens=4), on_text=pieces.append)
    bad = batcher.submit(_msg("bad"), SamplingParams(max_tokens=4))
    engine.gate.set()
    assert [f.result(5).text for f in greedy] == ["g0", "g1", "g2", "g3"]
    assert first.result(5).text == "first" and other.result(5).text == "other"
    assert sampled.result(5).text == "s" and streamed.result(5).text == "st"
    assert pieces == ["streamed"]
    with pytest.raises(ConfigError, match="chat template"):
        bad.result(5)
    batcher.close()
    # g0-g2 together (the batch limit), then g3 with the failed "bad" (same key), the rest alone
    assert ("many", 3) in engine.calls
    assert sorted(batcher.sizes) == [1, 1, 2, 3]  # first, other, g3+bad, g0-g2
    assert batcher.stats.requests == 8 and batcher.stats.max_batch == 3


def test_batching_off_runs_every_request_alone():
    engine = FakeEngine()
    batcher = Batcher(engine, max_batch_size=1, batch_window_s=0.0)
    futures = [batcher.submit(_msg(f"q{i}"), SamplingParams(max_tokens=4)) for i in range(3)]
    assert [f.result(5).text for f in futures] == ["q0", "q1", "q2"]
    batcher.close()
    assert engine.calls == [("one", 1)] * 3
    assert batcher.sizes == []
    with pytest.raises(ConfigError, match="max_batch_size"):
        Batcher(engine, max_batch_size=0)


def test_first_stop():
    assert first_stop("a fever. then", (".", "then")) == 7
    assert first_stop("abc", ("", "x")) is None
