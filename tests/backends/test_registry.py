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


def test_the_grader_inherits_the_model_key_only_on_the_same_endpoint():
    from medverify.cli_common import grader_options_from

    local, other = "http://127.0.0.1:8000/v1", "https://api.example.com/v1"
    same = grader_options_from(None, None, local, "sk-model", False)
    assert (same.base_url, same.api_key) == (local, "sk-model")
    elsewhere = grader_options_from(other, None, local, "sk-model", False)
    assert (elsewhere.base_url, elsewhere.api_key) == (other, None)
    own = grader_options_from(other, "sk-grader", local, "sk-model", False, 5.0, 7)
    assert (own.api_key, own.timeout_s, own.concurrency) == ("sk-grader", 5.0, 7)
