"""The deploy engine on CPU: the few-row kernel for target and draft, exact speculative output."""

from __future__ import annotations

import pytest
import torch

from medverify.backends.base import SamplingParams
from medverify.backends.cpu_linear import ENV
from medverify.deploy.engine import Engine
from medverify.errors import ConfigError


def test_a_cpu_engine_with_a_draft_uses_the_kernel_and_an_int8_draft_head(tiny_dir, tiny_draft):
    engine = Engine(tiny_dir, draft=tiny_draft, draft_tokens=3, device="cpu").load()
    assert engine.column_linear and engine.draft_head_int8
    assert type(engine.draft.get_output_embeddings()) is not torch.nn.Linear
    assert getattr(engine.model.get_output_embeddings(), "_column_linear", False)
    alone = Engine(tiny_dir, device="cpu").load()
    assert alone.column_linear  # the target alone runs the same kernel: a fair baseline
    assert getattr(alone.model.get_output_embeddings(), "_column_linear", False)


def test_the_kernel_can_be_turned_off_for_an_engine(tiny_dir, monkeypatch):
    monkeypatch.setenv(ENV, "plain")
    engine = Engine(tiny_dir, device="cpu").load()
    assert not engine.column_linear
    assert not hasattr(engine.model.get_output_embeddings(), "_column_linear")
    explicit = Engine(tiny_dir, device="cpu", column_linear=True).load()
    assert explicit.column_linear


@pytest.mark.parametrize("schedule", ["constant", "heuristic"])
def test_speculative_output_is_the_target_alone_with_both_schedules(tiny_dir, tiny_draft, schedule):
    engine = Engine(tiny_dir, draft=tiny_draft, draft_tokens=4, draft_schedule=schedule).load()
    params = SamplingParams(max_tokens=20)
    messages = [{"role": "user", "content": "My knee has been swollen for a week."}]
    alone = engine.generate(messages, params, use_draft=False)
    spec = engine.generate(messages, params)
    assert spec.token_ids == alone.token_ids
    assert spec.stats.draft_calls > 0


def test_an_unknown_draft_schedule_is_refused(tiny_dir):
    with pytest.raises(ConfigError, match="draft_schedule"):
        Engine(tiny_dir, draft_schedule="sometimes")
