"""A faster kernel for the target's verification pass on CPU.

Speculative decoding pays off only if the target checks ``k`` drafted tokens in about the time it
takes to produce one. On the CPUs we measured (2-core AMD EPYC, PyTorch 2.13 with MKL) it does
not: ``nn.Linear`` on 2 to 16 rows falls off MKL's one-row (GEMV) path, and the 576 x 49152 LM head
of SmolLM2-135M goes from 12 ms for one row to 32 ms for five. The same product computed with the
weight as the left operand, ``(W @ x.T).T``, takes 16 ms for one to five rows, and the whole
target's 5-token verification step drops from 1.8x to about 1.3x a 1-token step
(``benchmarks/deploy_cpu.py`` records both).

Only forward passes over 2..``max_rows`` rows change. Decoding one token at a time (the target
alone) and long prompts keep PyTorch's own kernel, so the reference the speculative output is
compared with is untouched. Results can differ from ``nn.Linear`` in the last bits (another
summation order); the deploy benchmark and report count greedy outputs identical to the target
alone rather than assume it.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from medverify.backends.torch_runtime import import_torch

#: rows up to which the weight-as-left-operand product is used (drafts propose at most this many).
MAX_ROWS = 16


def _column_forward(module: Any, x: Any, *, max_rows: int, plain: Any) -> Any:
    rows = x.numel() // x.shape[-1] if x.dim() else 0
    if not 1 < rows <= max_rows or x.dtype != module.weight.dtype:
        return plain(x)
    flat = x.reshape(rows, x.shape[-1])
    out = (module.weight @ flat.t()).t()
    if module.bias is not None:
        out = out + module.bias
    return out.reshape(*x.shape[:-1], module.out_features)


def use_column_linear(model: Any, max_rows: int = MAX_ROWS) -> int:
    """Route ``model``'s float ``nn.Linear`` layers through the column product for few rows.

    Patches the instances (never the ``nn.Linear`` class), so other models in the process keep
    PyTorch's kernel. Quantized linear modules are left alone.

    Returns:
        How many layers were patched.
    """
    torch, _ = import_torch("deploy")
    patched = 0
    for module in model.modules():
        if type(module) is not torch.nn.Linear or getattr(module, "_column_linear", False):
            continue
        plain = module.forward
        module.forward = partial(_column_forward, module, max_rows=max_rows, plain=plain)
        module._column_linear = True
        patched += 1
    return patched
