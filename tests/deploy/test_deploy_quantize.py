from __future__ import annotations

import json

import pytest

from medverify.deploy import quantize as q
from medverify.deploy.engine import Engine, model_bytes
from medverify.errors import ConfigError


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown quantization method 'int3'.*int8-dynamic"):
        q.check_method("int3")


def test_cuda_only_methods_fail_clearly_without_a_gpu(monkeypatch):
    monkeypatch.setattr(q, "_importable", lambda module: True)
    monkeypatch.setattr(q, "cuda_available", lambda: False)
    for method in ("bnb-nf4", "bnb-int8", "torchao-int4"):
        with pytest.raises(ConfigError, match=f"method {method} needs a CUDA GPU"):
            q.check_method(method)
    assert q.check_method("w4a16").target == "vllm"


def test_missing_libraries_say_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(q, "_importable", lambda module: False)
    with pytest.raises(ConfigError, match="needs llm-compressor: pip install llmcompressor"):
        q.quantize("local", "w4a16", tmp_path / "out")
    with pytest.raises(ConfigError, match=r"needs llama.cpp: pip install 'medverify\[llamacpp\]'"):
        q.quantize("local", "gguf-q8_0", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_gguf_methods_need_a_gguf_source(monkeypatch, tmp_path, tiny_dir):
    import sys
    import types

    monkeypatch.setattr(q, "_importable", lambda module: True)
    monkeypatch.setitem(sys.modules, "llama_cpp", types.SimpleNamespace())
    with pytest.raises(ConfigError, match="needs a GGUF source: convert"):
        q.quantize(f"hf:{tiny_dir}", "gguf-q4_k_m", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_model_is_a_clear_error_and_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match="no such checkpoint directory"):
        q.quantize(f"hf:{tmp_path / 'nope'}", "int8-dynamic", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_int8_dynamic_roundtrip(tiny_dir, tiny_int8):
    manifest = json.loads((tiny_int8 / "manifest.json").read_text())
    assert manifest["kind"] == "quantized"
    assert manifest["method"] == "int8-dynamic"
    assert manifest["source_dir"] == str(tiny_dir)
    assert manifest["output_bytes"] > 0
    model, _tok = q.load_causal_lm(tiny_int8)
    import torch

    assert model.model.layers[0].mlp.up_proj.weight().dtype == torch.qint8
    assert model.lm_head.weight().dtype == torch.qint8
    fp, _ = q.load_causal_lm(tiny_dir)
    assert torch.equal(
        model.model.layers[1].mlp.down_proj.weight().dequantize().round(decimals=1),
        torch.quantize_per_tensor(
            fp.model.layers[1].mlp.down_proj.weight,
            model.model.layers[1].mlp.down_proj.weight().q_scale(),
            0,
            torch.qint8,
        )
        .dequantize()
        .round(decimals=1),
    )
    from medverify.backends.base import SamplingParams

    gen = Engine(tiny_int8).generate(
        [{"role": "user", "content": "hi"}], SamplingParams(max_tokens=8)
    )
    assert gen.stats.completion_tokens > 0


def test_a_failure_while_saving_leaves_nothing_behind(monkeypatch, tmp_path, tiny_dir):
    import torch

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        q.quantize(f"hf:{tiny_dir}", "int8-dynamic", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_gguf_directories_are_not_loaded_by_transformers(tmp_path):
    from medverify.deploy.common import DeployManifest, write_manifest

    write_manifest(
        tmp_path,
        DeployManifest(
            kind="quantized",
            method="gguf-q8_0",
            target="llamacpp",
            source_model="local",
            source_dir="x.gguf",
        ),
    )
    with pytest.raises(ConfigError, match=r"GGUF model for llama.cpp"):
        q.load_causal_lm(tmp_path)


@pytest.mark.slow
def test_embedded_model_int8_halves_memory_and_mostly_agrees(embedded_dir, tmp_path):
    out = tmp_path / "q8"
    result = q.quantize(f"hf:{embedded_dir}", "int8-dynamic", out)
    m = result.manifest
    assert m.output_bytes <= 0.5 * m.source_bytes
    fp, int8 = Engine(embedded_dir).load(), Engine(out).load()
    assert model_bytes(int8.model) <= 0.5 * model_bytes(fp.model)
    prompt = [{"role": "user", "content": "What is a normal body temperature?"}]
    from medverify.backends.base import SamplingParams

    a = fp.generate(prompt, SamplingParams(max_tokens=8))
    b = int8.generate(prompt, SamplingParams(max_tokens=8))
    assert b.stats.completion_tokens == 8
    # int8 arithmetic may change greedy text; the first tokens of a plain answer agree
    assert a.token_ids[:2] == b.token_ids[:2]
