"""Shared fixtures: a fake OpenAI-compatible server on 127.0.0.1 and a CLI runner."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from medverify.testing.fake_openai import FakeOpenAIServer


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real ``medverify`` entry point in a subprocess (exit codes, stderr and all)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "medverify.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def embedded_dir(tmp_path_factory) -> Path:
    """The embedded SmolLM2 checkpoint: the user's converted copy, or one made for the session."""
    pytest.importorskip("transformers")
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
    """A 2-layer, 64-wide random model with the embedded model's tokenizer and chat template.

    Every code path that loads a model runs on it in milliseconds per token.
    """
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
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
