from __future__ import annotations

import json

import pytest

from medverify.deploy.common import (
    DeployManifest,
    atomic_output_dir,
    check_same_tokenizer,
    checkpoint_fingerprint,
    read_manifest,
    resolve_model,
    tokenizer_fingerprint,
    write_manifest,
)
from medverify.errors import ConfigError, InputError


def test_atomic_output_dir_moves_into_place_only_when_finished(tmp_path):
    out = tmp_path / "q"
    with atomic_output_dir(out) as tmp:
        (tmp / "a.txt").write_text("x")
        assert not out.exists()
    assert (out / "a.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["q"]


def test_atomic_output_dir_leaves_nothing_on_failure(tmp_path):
    out = tmp_path / "q"
    with pytest.raises(RuntimeError), atomic_output_dir(out) as tmp:
        (tmp / "half.bin").write_bytes(b"123")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_dir_refuses_a_non_empty_dir(tmp_path):
    out = tmp_path / "q"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"), atomic_output_dir(out):
        pass
    assert (out / "keep.txt").read_text() == "mine"
    with atomic_output_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("n")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]


def test_read_manifest_errors_name_the_file_and_field(tmp_path):
    with pytest.raises(ConfigError, match="no such directory"):
        read_manifest(tmp_path / "missing")
    with pytest.raises(ConfigError, match=r"has no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"kind": "weird", "method": "x"}))
    with pytest.raises(InputError) as err:
        read_manifest(tmp_path)
    assert err.value.field == "kind"
    assert str(tmp_path / "manifest.json") in str(err.value)


def test_read_manifest_checks_the_kind(tmp_path):
    m = DeployManifest(
        kind="draft", method="distill", target="any", source_model="local", source_dir="/x"
    )
    write_manifest(tmp_path, m)
    assert read_manifest(tmp_path, kind="draft").method == "distill"
    with pytest.raises(InputError, match="expected a quantized directory"):
        read_manifest(tmp_path, kind="quantized")


def test_resolve_model_rejects_endpoints_and_missing_dirs(tmp_path):
    with pytest.raises(ConfigError, match="names no local weights"):
        resolve_model("openai:gpt-4.1")
    with pytest.raises(ConfigError, match="no such checkpoint directory"):
        resolve_model(f"hf:{tmp_path / 'nope'}")
    with pytest.raises(ConfigError, match=r"no config.json"):
        resolve_model(str(tmp_path))


def test_tokenizer_check_names_what_differs(tiny_dir):
    from transformers import AutoTokenizer

    a = AutoTokenizer.from_pretrained(tiny_dir)
    b = AutoTokenizer.from_pretrained(tiny_dir)
    check_same_tokenizer(a, b)
    assert tokenizer_fingerprint(a) == tokenizer_fingerprint(b)
    b.add_tokens(["<medverify-extra>"])
    with pytest.raises(ConfigError, match="vocabulary of 49153 tokens"):
        check_same_tokenizer(a, b, draft_path="d")
    c = AutoTokenizer.from_pretrained(tiny_dir)
    c.pad_token = c.convert_ids_to_tokens(5)
    with pytest.raises(ConfigError, match="special token ids differ: pad"):
        check_same_tokenizer(a, c)
    assert tokenizer_fingerprint(a) != tokenizer_fingerprint(c)


def test_checkpoint_fingerprint_follows_the_weights_not_the_path(tmp_path):
    import os

    a = tmp_path / "a"
    a.mkdir()
    (a / "config.json").write_text("{}")
    big = os.urandom(3 << 20)  # longer than the two sampled MiB
    (a / "model.safetensors").write_bytes(big)
    b = tmp_path / "elsewhere" / "b"
    b.mkdir(parents=True)
    (b / "model.safetensors").write_bytes(big)
    assert checkpoint_fingerprint(a) == checkpoint_fingerprint(b)
    tuned = bytearray(big)
    tuned[-10] ^= 1  # a change in the last MiB
    (b / "model.safetensors").write_bytes(bytes(tuned))
    assert checkpoint_fingerprint(a) != checkpoint_fingerprint(b)
    (b / "model.safetensors").write_bytes(big + b"x")  # another size
    assert checkpoint_fingerprint(a) != checkpoint_fingerprint(b)


@pytest.mark.slow
def test_the_trained_doctor_is_a_checkpoint_for_serve_and_deploy(tmp_path_factory, monkeypatch):
    from medverify.backends.local_doctor import adapter_hash

    # the session's shared cache: the embedded model is converted once for all tests
    monkeypatch.setenv(
        "MEDVERIFY_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "medverify-cache")
    )
    path = resolve_model("local:doctor")
    assert path.name.endswith(f"-doctor-{adapter_hash()}")
    assert (path / "config.json").is_file() and (path / "medverify-conversion.json").is_file()
