"""Models for the deployment tests: the embedded one (converted once per session) and a tiny one.

The tiny model has the embedded model's tokenizer and chat template but two 64-wide layers of
random weights: every code path (quantize, draft, speculative decoding, server, report) runs on
it in milliseconds per token. Tests that need the real model are marked ``slow``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="session")
def embedded_dir(tmp_path_factory) -> Path:
    """The embedded SmolLM2 checkpoint: the user's converted copy, or one made for the session."""
    from medverify.backends.local import (
        converted_model_dir,
        ensure_converted,
        find_default_gguf,
        is_converted,
    )

    gguf = find_default_gguf()
    existing = converted_model_dir(gguf)
    if is_converted(existing):  # read only: saves the ~30 s conversion
        return existing
    cache = tmp_path_factory.getbasetemp() / "medverify-cache"
    return ensure_converted(gguf, converted_model_dir(gguf, cache))


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, embedded_dir) -> Path:
    """A 2-layer, 64-wide random model with the embedded model's tokenizer."""
    out = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    config = transformers.AutoConfig.from_pretrained(embedded_dir)
    config = copy.deepcopy(config)
    config.update(
        {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
        }
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = transformers.GenerationConfig.from_pretrained(embedded_dir)
    model.save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(embedded_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_draft(tmp_path_factory, tiny_dir) -> Path:
    """A 1-layer draft of the tiny model, trained for 3 steps on 4 prompts."""
    from medverify.deploy.draft import DraftConfig, distill_draft

    out = tmp_path_factory.mktemp("drafts") / "tiny-draft"
    config = DraftConfig(layers=1, steps=3, gen_tokens=8, max_prompts=4, holdout=1, batch_size=2)
    distill_draft(f"hf:{tiny_dir}", out, config)
    return out


@pytest.fixture(scope="session")
def tiny_int8(tmp_path_factory, tiny_dir) -> Path:
    """The tiny model quantized with int8-dynamic."""
    from medverify.deploy.quantize import quantize

    out = tmp_path_factory.mktemp("quantized") / "tiny-int8"
    quantize(f"hf:{tiny_dir}", "int8-dynamic", out)
    return out
