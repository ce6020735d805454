"""Run any local transformers checkpoint as a medverify backend (``hf:<path>``).

Evaluating a fine-tuned model, scoring training rollouts and checking a deployment all need the
model to answer on this machine, with no API in between, behind the same async
:class:`~medverify.backends.base.Backend` interface (cache, retries, usage) as a remote model.
Generation itself is the local-model runtime's (:class:`~medverify.backends.runtime.Engine`:
chat template, greedy by default, the request's :class:`SamplingParams` alone deciding how to
decode, stop strings, CPU kernel and threads) and its micro-batcher's
(:class:`~medverify.backends.batching.Batcher`); this module adds what a backend needs on top:

* **Lazy, loop-friendly loading.** The checkpoint is loaded on the first request (or an explicit
  :meth:`EngineBackend.load`) in a background thread, so the event loop keeps serving other
  backends; concurrent first requests wait for the one load.
* **Checked paths, cache-safe identity.** A path that is not a checkpoint fails when the backend
  is created; :meth:`HFBackend.identity` hashes the sizes and modification times of the
  checkpoint's files, so retraining into the same directory never serves stale cached replies.

torch and transformers are imported inside functions only: the core install has no torch, and
``import medverify.backends.hf`` must still work there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import threading
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
from medverify.backends.batching import Batcher, BatchStats
from medverify.backends.runtime import Engine, Generation, dtype_name
from medverify.backends.torch_runtime import require_local_extra
from medverify.errors import BackendError, ConfigError

if TYPE_CHECKING:
    from medverify.backends.cache import ResponseCache

__all__ = ["BatchStats", "EngineBackend", "HFBackend", "check_checkpoint", "checkpoint_fingerprint"]

#: Files whose presence marks a directory as holding transformers weights.
_WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pth", "*.pt", "*.safetensors.index.json")


def check_checkpoint(path: Path, spec: str) -> None:
    """Check that ``path`` looks like a transformers checkpoint directory, without loading it.

    Raises:
        ConfigError: the directory is missing, or has no ``config.json`` or no weights.
    """
    if not path.exists():
        raise ConfigError(f"{spec}: no such checkpoint directory: {path}")
    if not path.is_dir():
        raise ConfigError(f"{spec}: {path} is not a directory (expected a transformers checkpoint)")
    if not (path / "config.json").is_file():
        raise ConfigError(f"{spec}: {path} is not a transformers checkpoint (no config.json)")
    if not any(any(path.glob(g)) for g in _WEIGHT_GLOBS):
        raise ConfigError(f"{spec}: {path} has no model weights (*.safetensors or *.bin)")


def checkpoint_fingerprint(path: Path) -> str:
    """A short hash of the names, sizes and modification times of a checkpoint's files.

    Cheap (no file is read) and changes whenever weights, config, tokenizer or chat template are
    rewritten, which is what the response cache needs to know.
    """
    h = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.name.startswith(".") or not f.is_file():
            continue
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def to_completion(generation: Generation, model: str) -> Completion:
    """A finished :class:`Generation` as the backend interface's :class:`Completion`."""
    stats = generation.stats
    return Completion(
        text=generation.text,
        usage=Usage(prompt_tokens=stats.prompt_tokens, completion_tokens=stats.completion_tokens),
        model=model,
        finish_reason=stats.finish_reason,
    )


class EngineBackend(Backend):
    """An :class:`~medverify.backends.runtime.Engine` behind the backend interface.

    Replies are not cached (an engine alone has no content identity; :class:`HFBackend` has).

    Args:
        engine: the engine (loaded on first use, in a background thread).
        spec: recorded as the backend's spec (default ``engine:<name>``).
        use_draft: generate a request that runs alone with the engine's draft, if it has one.
        max_batch_size: most greedy requests generated together; 1 turns batching off.
        batch_window_s: how long the first request of an idle spell waits for company.
        concurrency: requests admitted at once; the extra ones queue for the batcher.
        timeout_s: per-attempt limit; ``None`` by default because CPU generation can be slow.
        retry: retry policy (local generation has no transient failures, so rarely used).
        cache: response cache (for cacheable subclasses).
    """

    cacheable = False

    def __init__(
        self,
        engine: Engine,
        *,
        spec: str | None = None,
        use_draft: bool = True,
        max_batch_size: int = 8,
        batch_window_s: float = 0.01,
        concurrency: int = 64,
        timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        super().__init__(
            spec or f"engine:{engine.name}",
            concurrency=concurrency,
            timeout_s=timeout_s,
            retry=retry,
            cache=cache,
        )
        self.engine = engine
        self.use_draft = use_draft
        self.batcher = Batcher(
            engine,
            max_batch_size=max_batch_size,
            batch_window_s=batch_window_s,
            use_draft=use_draft,
            name=self.spec,
        )
        self._state_lock = threading.Lock()
        self._load_future: concurrent.futures.Future[None] | None = None
        #: whether :meth:`close` frees the engine's model (not when it was handed in)
        self.owns_engine = False

    @property
    def stats(self) -> BatchStats:
        """How the micro-batcher grouped this backend's requests."""
        return self.batcher.stats

    @property
    def max_batch_size(self) -> int:
        """Most greedy requests generated together."""
        return self.batcher.max_batch_size

    @property
    def batch_window_s(self) -> float:
        """How long the first request of an idle spell waits for company."""
        return self.batcher.batch_window_s

    @property
    def model_name(self) -> str:
        """Recorded as :attr:`Completion.model`."""
        return self.engine.name

    @property
    def model(self) -> Any:
        """The loaded transformers model (loads it on first access)."""
        self.load_sync()
        return self.engine.model

    @property
    def tokenizer(self) -> Any:
        """The loaded tokenizer (loads the model on first access)."""
        self.load_sync()
        return self.engine.tokenizer

    async def load(self) -> None:
        """Load the model in a background thread; concurrent callers share the one load."""
        if self.engine.model is not None:
            return
        await asyncio.wrap_future(self._start_load())

    def load_sync(self) -> None:
        """Load the model in this thread's caller (blocking); a no-op once loaded."""
        if self.engine.model is not None:
            return
        self._start_load().result()

    def _start_load(self) -> concurrent.futures.Future[None]:
        with self._state_lock:
            fut = self._load_future
            if fut is None or (fut.done() and fut.exception() is not None):
                fut = concurrent.futures.Future()
                # Running: a cancelled waiter (asyncio.wrap_future cancels its source) must not
                # cancel the load that the other waiters share.
                fut.set_running_or_notify_cancel()
                self._load_future = fut
                threading.Thread(
                    target=self._load_into, args=(fut,), name=f"load {self.spec}", daemon=True
                ).start()
            return fut

    def _load_into(self, fut: concurrent.futures.Future[None]) -> None:
        try:
            self._load_model()
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(None)

    def _load_model(self) -> None:
        """Load the engine; runs in the load thread."""
        self.engine.load()

    def close(self) -> None:
        """Finish queued requests and stop the worker thread (blocking); free an owned model."""
        self.batcher.close()
        with self._state_lock:
            if self.owns_engine:
                self.engine.close()
                self._load_future = None

    async def aclose(self) -> None:
        """Like :meth:`close`, without blocking the event loop; also closes the cache."""
        await asyncio.to_thread(self.close)
        await super().aclose()

    def submit(
        self, messages: list[Message], params: SamplingParams
    ) -> concurrent.futures.Future[Completion]:
        """Queue one request for the worker thread (thread-safe; the model must be loaded).

        This bypasses the cache, retries and usage meter of :meth:`Backend.complete`; it is for
        callers that drive the model from threads (training loops, benchmarks).
        """
        if self.engine.model is None:
            raise BackendError("the model is not loaded; call load() first", spec=self.spec)
        out: concurrent.futures.Future[Completion] = concurrent.futures.Future()

        def done(fut: concurrent.futures.Future[Generation]) -> None:
            if fut.cancelled():
                out.cancel()
            elif fut.exception() is not None:
                out.set_exception(fut.exception())
            else:
                out.set_result(to_completion(fut.result(), self.model_name))

        self.batcher.submit(messages, params).add_done_callback(done)
        return out

    async def _generate(self, messages: list[Message], params: SamplingParams) -> Completion:
        await self.load()
        generation = await asyncio.wrap_future(self.batcher.submit(messages, params))
        return to_completion(generation, self.model_name)


class HFBackend(EngineBackend):
    """A local transformers causal LM with a chat template, on CPU or GPU.

    Args:
        path: checkpoint directory (``config.json``, weights, tokenizer with a chat template).
        spec: the spec string recorded in results (default ``hf:<path>``).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default cuda when available, else cpu.
        dtype: torch dtype or its name (``"bfloat16"``); default bfloat16 on cuda, float32 on cpu.
        max_batch_size: most greedy requests generated together; 1 turns batching off.
        batch_window_s: after an idle spell, how long the worker waits for more requests to
            arrive before starting a batch (negligible against generation time).
        threads: torch intra-op threads on CPU (default :func:`cpu_threads`).
        concurrency: requests admitted at once; the extra ones queue for the batcher.
        timeout_s: per-attempt limit; ``None`` by default because CPU generation can be slow.
        retry: retry policy (local generation has no transient failures, so rarely used).
        cache: response cache.
        column_linear: on CPU in float32, run the linear layers through
            :mod:`medverify.backends.cpu_linear`'s few-row kernel (default: yes, unless
            ``MEDVERIFY_CPU_LINEAR=plain``). Like batching, it can change a near tie in the
            last bits; ``benchmarks/local_generation.py`` counts replies equal to PyTorch's.

    Raises:
        ConfigError: the path is not a transformers checkpoint or torch/transformers are missing.
    """

    cacheable = True
    #: The extra named in the "install torch" message.
    _backend_kind = "hf"

    def __init__(
        self,
        path: str | Path,
        *,
        spec: str | None = None,
        device: str | None = None,
        dtype: Any = None,
        max_batch_size: int = 8,
        batch_window_s: float = 0.01,
        threads: int | None = None,
        concurrency: int = 64,
        timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
        cache: ResponseCache | None = None,
        column_linear: bool | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        spec = spec or f"hf:{path}"
        engine = Engine(
            self.path,
            name=self._model_name(),
            spec=spec,
            device=device,
            dtype=dtype,
            threads=threads,
            column_linear=column_linear,
            kind=self._backend_kind,
        )
        super().__init__(
            engine,
            spec=spec,
            max_batch_size=max_batch_size,
            batch_window_s=batch_window_s,
            concurrency=concurrency,
            timeout_s=timeout_s,
            retry=retry,
            cache=cache,
        )
        self.owns_engine = True
        self._validate()
        require_local_extra(self._backend_kind)
        self._identity: str | None = None

    # -- hooks for subclasses -------------------------------------------------------------------

    def _validate(self) -> None:
        """Check the configuration cheaply at construction (no torch import)."""
        check_checkpoint(self.path, self.spec)

    def _prepare_checkpoint(self) -> Path:
        """Make sure the checkpoint directory exists; runs in the load thread."""
        return self.path

    def _model_name(self) -> str:
        """Recorded as :attr:`Completion.model`."""
        return self.path.name

    # -- public ---------------------------------------------------------------------------------

    def identity(self) -> str:
        """The checkpoint's path, a fingerprint of its files and the dtype it runs in."""
        if self._identity is None:
            self._identity = (
                f"hf:{self.path.resolve()}:{checkpoint_fingerprint(self.path)}"
                f":{dtype_name(self.dtype)}"
            )
        return self._identity

    @property
    def device(self) -> str:
        """The device the model is (or will be) loaded on."""
        return str(self.engine.placement()[0])

    @property
    def dtype(self) -> Any:
        """The torch dtype the model is (or will be) loaded in."""
        return self.engine.placement()[1]

    @property
    def column_linear(self) -> bool | None:
        """Whether the CPU kernel is asked for (before loading) or in use (after)."""
        return self.engine.column_linear

    def _load_model(self) -> None:
        self._prepare_checkpoint()
        self.engine.load()
