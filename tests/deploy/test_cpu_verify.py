from __future__ import annotations

import pytest
import torch

from medverify.backends.base import SamplingParams
from medverify.deploy.cpu_verify import MAX_ROWS, use_column_linear
from medverify.deploy.engine import Engine
from medverify.errors import ConfigError


def test_column_linear_agrees_with_nn_linear_and_leaves_other_shapes_alone():
    torch.manual_seed(0)
    layer = torch.nn.Linear(32, 48)
    reference = torch.nn.Linear(32, 48)
    reference.load_state_dict(layer.state_dict())
    model = torch.nn.Sequential(layer)
    assert use_column_linear(model) == 1
    assert use_column_linear(model) == 0  # already patched: not wrapped twice
    with torch.inference_mode():
        for rows in (2, 5, MAX_ROWS):
            x = torch.randn(1, rows, 32)
            assert torch.allclose(model(x), reference(x), atol=1e-5)
            assert model(x).shape == (1, rows, 48)
        for rows in (1, MAX_ROWS + 1):  # one row and long inputs keep PyTorch's own kernel
            x = torch.randn(1, rows, 32)
            assert torch.equal(model(x), reference(x))


def test_quantized_linears_are_not_patched():
    model = torch.ao.quantization.quantize_dynamic(
        torch.nn.Sequential(torch.nn.Linear(8, 8)), {torch.nn.Linear}, dtype=torch.qint8
    )
    assert use_column_linear(model) == 0


def test_a_cpu_engine_with_a_draft_uses_the_kernel_and_an_int8_draft_head(tiny_dir, tiny_draft):
    engine = Engine(tiny_dir, draft=tiny_draft, draft_tokens=3, device="cpu").load()
    assert engine.column_linear and engine.draft_head_int8
    assert type(engine.draft.get_output_embeddings()) is not torch.nn.Linear
    assert getattr(engine.model.get_output_embeddings(), "_column_linear", False)
    alone = Engine(tiny_dir, device="cpu").load()
    assert not alone.column_linear  # no draft: nothing to verify, nothing patched


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
