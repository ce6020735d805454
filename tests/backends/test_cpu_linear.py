"""The few-row CPU linear kernel: same products as nn.Linear, where it applies, and its switch."""

from __future__ import annotations

import pytest
import torch

from medverify.backends.cpu_linear import (
    ENV,
    MAX_ROWS,
    PADDED_ROWS,
    cpu_linear_enabled,
    use_column_linear,
)
from medverify.errors import ConfigError


def _pair(bias: bool = True) -> tuple[torch.nn.Module, torch.nn.Linear]:
    torch.manual_seed(0)
    layer = torch.nn.Linear(32, 48, bias=bias)
    reference = torch.nn.Linear(32, 48, bias=bias)
    reference.load_state_dict(layer.state_dict())
    return torch.nn.Sequential(layer), reference


@pytest.mark.parametrize("bias", [True, False])
def test_few_rows_agree_with_nn_linear_padded_or_not(bias):
    model, reference = _pair(bias)
    assert use_column_linear(model) == 1
    assert use_column_linear(model) == 0  # already patched: not wrapped twice
    assert {1, 3} <= PADDED_ROWS  # one and three rows are computed as two and four
    with torch.inference_mode():
        for rows in (1, 2, 3, 4, 5, MAX_ROWS):
            for x in (torch.randn(1, rows, 32), torch.randn(rows, 32)):
                out = model(x)
                assert out.shape == (*x.shape[:-1], 48)
                assert torch.allclose(out, reference(x), atol=1e-5)
        batch = torch.randn(2, 3, 32)  # a small batch of sequences: 6 rows
        assert torch.allclose(model(batch), reference(batch), atol=1e-5)


def test_long_inputs_and_gradients_keep_pytorchs_kernel():
    model, reference = _pair()
    use_column_linear(model)
    with torch.inference_mode():
        x = torch.randn(1, MAX_ROWS + 1, 32)
        assert torch.equal(model(x), reference(x))
    x = torch.randn(1, 2, 32, requires_grad=True)
    assert torch.equal(model(x), reference(x))
    model(x).sum().backward()
    assert x.grad is not None


def test_quantized_linears_are_not_patched():
    model = torch.ao.quantization.quantize_dynamic(
        torch.nn.Sequential(torch.nn.Linear(8, 8)), {torch.nn.Linear}, dtype=torch.qint8
    )
    assert use_column_linear(model) == 0


def test_the_environment_switch(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert cpu_linear_enabled() and not cpu_linear_enabled(default=False)
    monkeypatch.setenv(ENV, "plain")
    assert not cpu_linear_enabled()
    monkeypatch.setenv(ENV, " Column ")
    assert cpu_linear_enabled(default=False)
    monkeypatch.setenv(ENV, "fast")
    with pytest.raises(ConfigError, match=f"{ENV} must be column or plain, got 'fast'"):
        cpu_linear_enabled()
