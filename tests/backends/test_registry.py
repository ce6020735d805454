import pytest

from medverify.backends.mock import MockBackend
from medverify.backends.openai_compat import OpenAIBackend
from medverify.backends.registry import BackendOptions, make_backend
from medverify.backends.script import ScriptBackend
from medverify.errors import ConfigError


def test_spec_forms(tmp_path):
    script = tmp_path / "s.txt"
    script.write_text("hello\n")
    opts = BackendOptions(base_url="http://127.0.0.1:1/v1", api_key="", use_cache=False)
    assert isinstance(make_backend("mock"), MockBackend)
    assert isinstance(make_backend(f"script:{script}"), ScriptBackend)
    backend = make_backend("openai:my-model", opts.model_copy(update={"concurrency": 3}))
    assert isinstance(backend, OpenAIBackend)
    assert backend.model == "my-model" and backend.concurrency == 3
    assert backend.cache is None


@pytest.mark.parametrize("spec", ["", "gpt4", "openai:", "hf:", "script:", "mock:x", "vllm:m"])
def test_unknown_specs_list_the_valid_forms(spec):
    with pytest.raises(ConfigError, match=r"unknown backend spec .*openai:<model>"):
        make_backend(spec)


def test_hf_spec_with_a_missing_path_is_a_config_error(tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(ConfigError, match="nowhere"):
        make_backend(f"hf:{tmp_path / 'nowhere'}", BackendOptions(use_cache=False))
