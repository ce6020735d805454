"""Backend specs: the strings users type (``local``, ``openai:gpt-4.1``...) turned into backends.

One parser for every ``--model``, ``--doctor``, ``--patient``, ``--grader`` and ``--writer`` flag,
so each accepts the same forms and fails with the same clear message.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from medverify.backends.base import Backend, RetryPolicy
from medverify.backends.cache import ResponseCache
from medverify.errors import ConfigError

SPEC_FORMS = (
    "local (embedded SmolLM2-135M-Instruct on CPU, transformers)",
    "local:doctor (the embedded model with medverify's trained doctor adapter)",
    "local:doctor:<dir> (the embedded model with another LoRA adapter, e.g. a training round's)",
    "local:llamacpp (the same model through llama.cpp, optional fast path)",
    "hf:<path> (a local transformers checkpoint)",
    "openai:<model> (any OpenAI-compatible endpoint)",
    "script:<file> (replays one reply per line)",
    "mock (echoes; for tests)",
)


class BackendOptions(BaseModel):
    """Settings shared by every backend a command creates; the CLI fills them from flags."""

    model_config = ConfigDict(frozen=True)

    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False, exclude=True)
    concurrency: int | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=50)
    use_cache: bool = True
    cache_path: Path | None = None


def make_backend(spec: str, options: BackendOptions | None = None) -> Backend:
    """Create the backend a spec names.

    Raises:
        ConfigError: the spec has an unknown form or names something that does not exist.
    """
    opts = options or BackendOptions()
    kind, _, arg = spec.strip().partition(":")
    common: dict = {"retry": RetryPolicy(max_attempts=opts.max_attempts)}
    if opts.concurrency is not None:
        common["concurrency"] = opts.concurrency
    if opts.timeout_s is not None:
        common["timeout_s"] = opts.timeout_s
    if opts.use_cache and kind in ("local", "hf", "openai"):
        common["cache"] = ResponseCache(opts.cache_path)

    if kind == "local" and arg in ("", "transformers"):
        from medverify.backends.local import LocalBackend

        return LocalBackend(**common)
    if kind == "local" and (arg == "doctor" or arg.startswith("doctor:")):
        from medverify.backends.local_doctor import DoctorBackend

        adapter = arg.removeprefix("doctor").removeprefix(":") or None
        return DoctorBackend(spec.strip(), adapter=adapter, **common)
    if kind == "local" and arg == "llamacpp":
        from medverify.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(**common)
    if kind == "hf" and arg:
        from medverify.backends.hf import HFBackend

        return HFBackend(arg, **common)
    if kind == "openai" and arg:
        from medverify.backends.openai_compat import OpenAIBackend

        return OpenAIBackend(arg, base_url=opts.base_url, api_key=opts.api_key, **common)
    if kind == "script" and arg:
        from medverify.backends.script import ScriptBackend

        return ScriptBackend(arg, **common)
    if kind == "mock" and not arg:
        from medverify.backends.mock import MockBackend

        return MockBackend(**common)
    raise ConfigError(f"unknown backend spec {spec!r}; use one of: " + "; ".join(SPEC_FORMS))
