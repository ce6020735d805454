"""Models for the deployment tests: a draft and an int8 copy of the tiny model (tests/conftest.py).

Every code path (quantize, draft, speculative decoding, server, report) runs on the tiny model in
milliseconds per token. Tests that need the real model are marked ``slow``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


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
