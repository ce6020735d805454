"""Run any local transformers checkpoint as a medverify backend (``hf:<path>``).

Evaluating a fine-tuned model, scoring training rollouts and checking a deployment all need the
model to answer on this machine, with no API in between; ``medverify healthbench run --model
hf:<dir>`` and the embedded ``local`` model (:mod:`medverify.backends.local`, a subclass) go
through this module.

What it does that a plain ``model.generate`` loop does not:

* **Lazy, loop-friendly loading.** The checkpoint is loaded on the first request (or an explicit
  :meth:`HFBackend.load`) in a background thread, so the event loop keeps serving other backends;
  concurrent first requests wait for the one load.
* **Greedy by default, reproducible sampling.** ``temperature == 0`` decodes greedily with no
  sampling knobs set (no transformers warnings); otherwise the request's ``seed`` seeds torch before
  sampling. The checkpoint's own ``generation_config.json`` sampling defaults (temperature, top-k,
  repetition penalty...) are deliberately ignored: the request's :class:`SamplingParams` alone
  decide how to decode, as for every other backend.
* **Micro-batching.** A torch model is not safe to call from two threads at once, so one worker
  thread owns the model and the tokenizer. Greedy requests that queue up while it is busy and share
  ``max_tokens`` and ``stop`` are generated together (up to ``max_batch_size``, left-padded).
  On CPU in float32 this gave each request exactly the tokens it gets alone in every check so
  far (``tests/backends/test_hf.py``; 8/8 prompts x 64 tokens in
  ``benchmarks/local_generation.py``) at four times the throughput of 8 single requests on 2
  cores. Padding changes the shapes of the reductions, so a near tie could in principle flip,
  more likely in bfloat16 on a GPU (not measured); pass ``max_batch_size=1`` where bit-exact
  single-request replay matters more than throughput.
  Sampling requests are generated one at a time so their seed alone determines their text.
* **Thread hygiene on CPU.** torch's intra-op threads are set to the cores this process may use
  (``MEDVERIFY_THREADS`` overrides) and inter-op threads to one: oversubscribing a small machine
  halves throughput.
* **Cache-safe identity.** :meth:`HFBackend.identity` hashes the sizes and modification times of the
  checkpoint's files, so retraining into the same directory never serves stale cached replies.

torch and transformers are imported inside functions only: the core install has no torch, and
``import medverify.backends.hf`` must still work there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from medverify.backends.base import (
    Backend,
    Completion,
    Message,
    RetryPolicy,
    SamplingParams,
    Usage,
)
from medverify.backends.cpu_linear import cpu_linear_enabled, use_column_linear
from medverify.backends.torch_runtime import (
    configure_torch_threads,
    dtype_kwarg,
    import_torch,
    quiet_progress_bars,
    require_local_extra,
)
from medverify.errors import BackendError, ConfigError

if TYPE_CHECKING:
    from medverify.backends.cache import ResponseCache

log = logging.getLogger(__name__)

#: Files whose presence marks a directory as holding transformers weights.
_WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pth", "*.pt", "*.safetensors.index.json")

_STOP = object()


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


class BatchStats(BaseModel):
    """How the micro-batcher grouped requests (for tests, benchmarks and run logs)."""

    batches: int = 0
    requests: int = 0
    max_batch: int = 0


@dataclass
class _Request:
    messages: list[Message]
    params: SamplingParams
    future: concurrent.futures.Future[Completion] = field(default_factory=concurrent.futures.Future)

    @property
    def batch_key(self) -> tuple[int, tuple[str, ...]] | None:
        """Requests with equal keys may share a batch; sampling requests never do."""
        if self.params.temperature > 0:
            return None
        return (self.params.max_tokens, self.params.stop)


class HFBackend(Backend):
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
        super().__init__(
            spec or f"hf:{path}",
            concurrency=concurrency,
            timeout_s=timeout_s,
            retry=retry,
            cache=cache,
        )
        if max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_s
        self.threads = threads
        self.column_linear = cpu_linear_enabled() if column_linear is None else column_linear
        self.stats = BatchStats()
        self._device_arg = device
        self._dtype_arg = dtype
        self._validate()
        require_local_extra(self._backend_kind)
        self._identity: str | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._torch: Any = None
        self._device: Any = None
        self._dtype: Any = None
        self._eos_ids: set[int] = set()
        self._pad_id = 0
        self._max_context: int | None = None
        self._stop_strings_ok = True
        self._state_lock = threading.Lock()
        self._load_future: concurrent.futures.Future[None] | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    # -- hooks for subclasses -------------------------------------------------------------------

    def _validate(self) -> None:
        """Check the configuration cheaply at construction (no torch import)."""
        check_checkpoint(self.path, self.spec)

    def _prepare_checkpoint(self) -> Path:
        """Return the checkpoint directory to load; runs in the load thread."""
        return self.path

    @property
    def model_name(self) -> str:
        """Recorded as :attr:`Completion.model`."""
        return self.path.name

    # -- public ---------------------------------------------------------------------------------

    def identity(self) -> str:
        """The checkpoint's path, a fingerprint of its files and the dtype it runs in."""
        if self._identity is None:
            self._identity = (
                f"hf:{self.path.resolve()}:{checkpoint_fingerprint(self.path)}"
                f":{self._dtype_name(self.dtype)}"
            )
        return self._identity

    @property
    def model(self) -> Any:
        """The loaded transformers model (loads it on first access)."""
        self.load_sync()
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The loaded tokenizer (loads the model on first access)."""
        self.load_sync()
        return self._tokenizer

    @property
    def device(self) -> str:
        """The device the model is (or will be) loaded on."""
        if self._device is not None:
            return str(self._device)
        if self._device_arg:
            return self._device_arg
        torch, _ = import_torch(self._backend_kind)
        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def dtype(self) -> Any:
        """The torch dtype the model is (or will be) loaded in."""
        if self._dtype is not None:
            return self._dtype
        torch, _ = import_torch(self._backend_kind)
        return self._resolve_device_dtype(torch)[1]

    async def load(self) -> None:
        """Load the model in a background thread; concurrent callers share the one load."""
        if self._model is not None:
            return
        await asyncio.wrap_future(self._start_load())

    def load_sync(self) -> None:
        """Load the model in this thread's caller (blocking); a no-op once loaded."""
        if self._model is not None:
            return
        self._start_load().result()

    def close(self) -> None:
        """Finish queued requests, stop the worker thread and free the model (blocking)."""
        with self._state_lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            self._queue.put(_STOP)
            worker.join()
        with self._state_lock:
            self._model = None
            self._tokenizer = None
            self._load_future = None
        if self._torch is not None and self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()

    async def aclose(self) -> None:
        """Like :meth:`close`, without blocking the event loop; also closes the cache."""
        await asyncio.to_thread(self.close)
        await super().aclose()

    # -- loading --------------------------------------------------------------------------------

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

    @staticmethod
    def _dtype_name(dtype: Any) -> str:
        return str(dtype).removeprefix("torch.")

    def _resolve_device_dtype(self, torch: Any) -> tuple[Any, Any]:
        device = torch.device(self._device_arg or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = self._dtype_arg
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        elif isinstance(dtype, str):
            resolved = getattr(torch, dtype.removeprefix("torch."), None)
            if not isinstance(resolved, torch.dtype):
                raise ConfigError(f"{self.spec}: unknown torch dtype {dtype!r}")
            dtype = resolved
        return device, dtype

    def _load_model(self) -> None:
        torch, transformers = import_torch(self._backend_kind)
        device, dtype = self._resolve_device_dtype(torch)
        if device.type == "cpu":
            configure_torch_threads(self.threads)
        ckpt = self._prepare_checkpoint()
        start = time.perf_counter()
        try:
            with quiet_progress_bars():
                tokenizer = transformers.AutoTokenizer.from_pretrained(ckpt)
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    ckpt, **{dtype_kwarg(transformers): dtype}
                )
        except (OSError, ValueError, KeyError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"{self.spec}: cannot load {ckpt} as a transformers checkpoint: {reason}"
            ) from None
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(f"{self.spec}: the tokenizer in {ckpt} has no chat template")
        model.to(device)
        model.eval()
        if device.type == "cpu" and dtype == torch.float32 and self.column_linear:
            use_column_linear(model)
        gen = model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else tokenizer.eos_token_id
        eos_ids = {eos} if isinstance(eos, int) else set(eos or ())
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        if not eos_ids:
            raise ConfigError(f"{self.spec}: the checkpoint in {ckpt} defines no end-of-text token")
        pad = gen.pad_token_id if gen.pad_token_id is not None else tokenizer.pad_token_id
        if pad is None:
            pad = min(eos_ids)
        # Only the special token ids survive from the checkpoint's generation config: the
        # request's SamplingParams alone decide how to decode.
        model.generation_config = transformers.GenerationConfig(
            bos_token_id=gen.bos_token_id, eos_token_id=sorted(eos_ids), pad_token_id=pad
        )
        self._eos_ids = eos_ids
        self._pad_id = int(pad)
        self._max_context = getattr(model.config, "max_position_embeddings", None)
        self._torch = torch
        self._device = device
        self._dtype = dtype
        self._tokenizer = tokenizer
        self._model = model
        log.info(
            "%s: loaded %s on %s (%s, %d threads) in %.1f s",
            self.spec,
            ckpt,
            device,
            self._dtype_name(dtype),
            torch.get_num_threads(),
            time.perf_counter() - start,
        )

    # -- generation -----------------------------------------------------------------------------

    async def _generate(self, messages: list[Message], params: SamplingParams) -> Completion:
        await self.load()
        return await asyncio.wrap_future(self.submit(messages, params))

    def submit(
        self, messages: list[Message], params: SamplingParams
    ) -> concurrent.futures.Future[Completion]:
        """Queue one request for the worker thread (thread-safe; the model must be loaded).

        This bypasses the cache, retries and usage meter of :meth:`Backend.complete`; it is for
        callers that drive the model from threads (training loops, benchmarks).
        """
        if self._model is None:
            raise BackendError("the model is not loaded; call load() first", spec=self.spec)
        request = _Request(list(messages), params)
        with self._state_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._worker_main, name=f"generate {self.spec}", daemon=True
                )
                self._worker.start()
            self._queue.put(request)
        return request.future

    def _worker_main(self) -> None:
        pending: deque[_Request] = deque()
        stopping = False
        while pending or not stopping:
            if not pending:
                item = self._queue.get()
                if item is _STOP:
                    break
                pending.append(item)
                # Requests sent together (asyncio.gather) arrive microseconds apart: give them a
                # moment so the first one does not start a batch of one.
                deadline = time.monotonic() + self.batch_window_s
                while len(pending) < self.max_batch_size:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=left)
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stopping = True
                        break
                    pending.append(item)
            while True:  # collect whatever queued up while the last batch ran
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                else:
                    pending.append(item)
            batch = self._take_batch(pending)
            try:
                self._run_batch(batch)
            except BaseException as exc:  # a bug here must fail the requests, not strand them
                log.exception("%s: the generation worker failed", self.spec)
                for req in batch:
                    if not req.future.done():
                        req.future.set_exception(exc)

    def _take_batch(self, pending: deque[_Request]) -> list[_Request]:
        """Pop the oldest live request and the queued requests that may share its batch."""
        while pending:
            first = pending.popleft()
            if first.future.set_running_or_notify_cancel():
                break
        else:
            return []
        batch = [first]
        key = first.batch_key
        if key is None or self.max_batch_size == 1:
            return batch
        rest: deque[_Request] = deque()
        while pending:
            req = pending.popleft()
            if len(batch) < self.max_batch_size and req.batch_key == key:
                if req.future.set_running_or_notify_cancel():
                    batch.append(req)
            else:
                rest.append(req)
        pending.extend(rest)
        return batch

    def _run_batch(self, batch: list[_Request]) -> None:
        if not batch:
            return
        prompts: list[list[int]] = []
        live: list[_Request] = []
        for req in batch:
            try:
                prompts.append(self._encode(req.messages))
            except Exception as exc:
                req.future.set_exception(exc)
            else:
                live.append(req)
        if not live:
            return
        try:
            results = self.generate_ids(prompts, live[0].params)
        except BaseException as exc:
            log.debug("%s: generation failed: %r", self.spec, exc)
            for req in live:
                req.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.requests += len(live)
        self.stats.max_batch = max(self.stats.max_batch, len(live))
        for req, completion in zip(live, results, strict=True):
            req.future.set_result(completion)

    def _encode(self, messages: list[Message]) -> list[int]:
        tok = self._tokenizer
        try:
            text = tok.apply_chat_template(
                [m.model_dump() for m in messages], add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # jinja raises its own TemplateError from inside the template
            raise ConfigError(
                f"{self.spec}: the chat template rejected the messages: {exc}"
            ) from None
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if self._max_context is not None and len(ids) >= self._max_context:
            raise ConfigError(
                f"{self.spec}: the prompt is {len(ids)} tokens, the model's context is "
                f"{self._max_context}"
            )
        return list(ids)

    def generate_ids(self, prompts: list[list[int]], params: SamplingParams) -> list[Completion]:
        """Generate replies for already-encoded prompts in one ``model.generate`` call.

        Called from the worker thread only (the model is not thread-safe). Prompts are left-padded;
        every prompt gets the same sampling parameters.
        """
        torch = self._torch
        n, width = len(prompts), max(len(p) for p in prompts)
        input_ids = torch.full((n, width), self._pad_id, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        for i, p in enumerate(prompts):
            input_ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            attention[i, width - len(p) :] = 1
        max_new = params.max_tokens
        if self._max_context is not None:
            max_new = max(1, min(max_new, self._max_context - width))
        use_stop_strings = bool(params.stop) and self._stop_strings_ok
        kwargs: dict[str, Any] = {
            "input_ids": input_ids.to(self._device),
            "attention_mask": attention.to(self._device),
            "generation_config": self._generation_config(params, max_new, use_stop_strings),
        }
        if use_stop_strings:
            kwargs["tokenizer"] = self._tokenizer
        with torch.inference_mode():
            try:
                out = self._call_generate(kwargs, params)
            except Exception as exc:
                if not use_stop_strings:
                    raise
                # a tokenizer transformers cannot map stop strings for: truncate afterwards
                log.warning(
                    "%s: stop_strings unsupported (%s); truncating after generation instead",
                    self.spec,
                    exc,
                )
                self._stop_strings_ok = False
                del kwargs["tokenizer"]
                kwargs["generation_config"] = self._generation_config(params, max_new, False)
                out = self._call_generate(kwargs, params)
        new_tokens = out[:, width:].tolist()
        return [
            self._finish(len(p), ids, params, max_new)
            for p, ids in zip(prompts, new_tokens, strict=True)
        ]

    def _call_generate(self, kwargs: dict[str, Any], params: SamplingParams) -> Any:
        if params.temperature > 0 and params.seed is not None:
            self._torch.manual_seed(params.seed)
        return self._model.generate(**kwargs)

    def _generation_config(self, params: SamplingParams, max_new: int, stop_strings: bool) -> Any:
        gen = self._model.generation_config
        base = {
            "max_new_tokens": max_new,
            "bos_token_id": gen.bos_token_id,
            "eos_token_id": gen.eos_token_id,
            "pad_token_id": gen.pad_token_id,
            "stop_strings": list(params.stop) if stop_strings else None,
        }
        if params.temperature == 0:
            cfg = {"do_sample": False}
        else:
            cfg = {
                "do_sample": True,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "top_k": 0,
            }
        return type(gen)(**base, **cfg)

    def _finish(
        self, prompt_len: int, ids: list[int], params: SamplingParams, max_new: int
    ) -> Completion:
        """Cut one generated row at its end token or stop string and count its tokens."""
        ends = self._eos_ids | {self._pad_id}
        end = next((i for i, t in enumerate(ids) if t in ends), None)
        tokens = ids if end is None else ids[:end]
        decode = self._tokenizer.decode
        text = decode(tokens, skip_special_tokens=True)
        finish = "stop" if end is not None or len(tokens) < max_new else "length"
        cut = _first_stop(text, params.stop)
        if cut is not None:
            text = text[:cut]
            finish = "stop"
            # the fewest tokens whose text already contains a stop string
            lo, hi = 1, len(tokens)
            while lo < hi:
                mid = (lo + hi) // 2
                if _first_stop(decode(tokens[:mid], skip_special_tokens=True), params.stop) is None:
                    lo = mid + 1
                else:
                    hi = mid
            tokens = tokens[:lo]
        return Completion(
            text=text,
            usage=Usage(prompt_tokens=prompt_len, completion_tokens=len(tokens)),
            model=self.model_name,
            finish_reason=finish,
        )


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    """Index of the earliest stop string in ``text``, or None."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None
