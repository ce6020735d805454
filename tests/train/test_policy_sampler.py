"""The search's sampler: every reply starts with the forced prefix and ends where it is told."""

from __future__ import annotations

import pytest

from medverify.backends.base import Message

MESSAGES = [
    Message(role="system", content="You are a doctor."),
    Message(role="user", content="I've had a cough for two weeks."),
]


@pytest.fixture(scope="module")
def sampler(tiny_dir):
    transformers = pytest.importorskip("transformers")
    from medverify.train.policy_sampler import LocalSampler

    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_dir)
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_dir)
    return LocalSampler(model, tokenizer, temperature=1.5, top_p=1.0)


def test_prefixed_replies_stop_at_the_stop_string(sampler):
    # The tiny random model seldom writes a newline but often a space: a reply told to stop at
    # a space ends with the token that wrote its first one (" word"); one not told runs on.
    prefix = "DIAGNOSIS: Suspected\nPLAN:"
    stopped = sampler.sample(MESSAGES, n=6, max_new_tokens=24, prefix=prefix, stop=[" "])
    assert len(stopped) == 6 and all(t.startswith(prefix) for t in stopped)
    assert all(t.removeprefix(prefix).count(" ") <= 1 for t in stopped)
    running = sampler.sample(MESSAGES, n=6, max_new_tokens=24, prefix=prefix)
    assert all(t.removeprefix(prefix).count(" ") > 1 for t in running)


def test_prefixed_replies_without_stop_run_to_the_token_limit(sampler):
    texts = sampler.sample(MESSAGES, n=3, max_new_tokens=12, prefix="DIAGNOSIS:")
    lengths = [len(sampler.tokenizer(t.removeprefix("DIAGNOSIS:"))["input_ids"]) for t in texts]
    assert max(lengths) >= 8  # no question mark or newline cut them short


def test_the_same_call_again_samples_again(sampler):
    first = sampler.sample(MESSAGES, n=4, max_new_tokens=8)
    second = sampler.sample(MESSAGES, n=4, max_new_tokens=8)
    assert first != second  # the seed advances per call
