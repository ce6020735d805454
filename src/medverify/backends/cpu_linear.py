"""A faster ``nn.Linear`` for the few-row products of decoding on CPU.

Decoding multiplies every weight matrix by one row (one new token) or a handful (a speculative
verification pass, a small batch). On the CPUs we measured (2-core AMD EPYC, PyTorch 2.13 with
MKL, ``benchmarks/cpu_linear.py``), PyTorch's ``nn.Linear`` is slow exactly there:
2 to 16 rows leave MKL's one-row (matrix-vector) path for a general product that streams the
weights at half speed (the 576 x 49152 LM head of SmolLM2-135M took 12 ms for one row and 32 ms
for five).

Computing the same product with the weight as the left operand, ``(W @ x.T).T`` (``x.T`` a
transposed view: a contiguous copy was 2.5x slower), streams the weights at the one-row speed.
One row is padded to two and three rows to four, which MKL computes faster than one and three.
Over all 211 weight matrices of SmolLM2-135M (``results/cpu_linear.json``): 4 rows 134 -> 70 ms,
1 row 58 -> 57 ms; a whole decoding pass of one token 96 -> 81 ms and of four 140 -> 95 ms.

Both the target alone and speculative decoding use it (``Engine``, the ``local`` and ``hf:``
backends), so a speedup from a draft is measured against a target that is already as fast as we
can make it one token at a time. Results differ from ``nn.Linear`` in the last bits (another
summation order); the deploy benchmark and report count greedy outputs identical to the target
alone rather than assume it. ``MEDVERIFY_CPU_LINEAR=plain`` keeps PyTorch's kernel everywhere.
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from medverify.backends.torch_runtime import import_torch
from medverify.errors import ConfigError

#: rows up to which the weight-as-left-operand product is used (longer inputs: prompts).
MAX_ROWS = 16
#: row counts computed as one more row (measured faster in ``benchmarks/cpu_linear.py``).
PADDED_ROWS = frozenset({1, 3})
#: environment switch: ``column`` (the default on CPU) or ``plain`` (PyTorch's own kernel).
ENV = "MEDVERIFY_CPU_LINEAR"


def cpu_linear_enabled(default: bool = True) -> bool:
    """Whether to use the kernel: ``MEDVERIFY_CPU_LINEAR`` (``column``/``plain``) or ``default``.

    Raises:
        ConfigError: the variable holds anything else.
    """
    value = os.environ.get(ENV, "").strip().lower()
    if not value:
        return default
    if value not in ("column", "plain"):
        raise ConfigError(f"{ENV} must be column or plain, got {value!r}")
    return value == "column"


def _column_forward(module: Any, x: Any, *, max_rows: int, plain: Any, cat: Any) -> Any:
    rows = x.numel() // x.shape[-1] if x.dim() and x.shape[-1] else 0
    if not 0 < rows <= max_rows or x.dtype != module.weight.dtype or x.requires_grad:
        return plain(x)
    flat = x.reshape(rows, x.shape[-1])
    if rows in PADDED_ROWS:
        flat = cat((flat, flat[-1:]))
    out = (module.weight @ flat.t()).t()[:rows]
    if module.bias is not None:
        out = out + module.bias
    return out.reshape(*x.shape[:-1], module.out_features)


def use_column_linear(model: Any, max_rows: int = MAX_ROWS) -> int:
    """Route ``model``'s float ``nn.Linear`` layers through the column product for few rows.

    Patches the instances (never the ``nn.Linear`` class), so other models in the process keep
    PyTorch's kernel. Quantized linear modules, longer inputs and anything that needs a
    gradient are left to PyTorch.

    Returns:
        How many layers were patched.
    """
    torch, _ = import_torch("local")
    patched = 0
    for module in model.modules():
        if type(module) is not torch.nn.Linear or getattr(module, "_column_linear", False):
            continue
        plain = module.forward
        module.forward = partial(
            _column_forward, module, max_rows=max_rows, plain=plain, cat=torch.cat
        )
        module._column_linear = True
        patched += 1
    return patched
