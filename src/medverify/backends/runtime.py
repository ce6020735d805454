"""The local-model runtime: a transformers checkpoint loaded once, chat requests in, replies out.

Every model medverify runs on this machine must answer a request the same way wherever the
request comes from (an evaluation, a training rollout, the CPU server, a deployment
measurement): the same chat-template encoding, the same ``GenerationConfig`` (the request's
:class:`SamplingParams` alone decide how to decode; the checkpoint's own sampling defaults are
dropped), the same end-of-reply rules (end token, padding, first stop string) and the same token
counts. :class:`Engine` is that single implementation. It holds the target model and tokenizer,
serialises generation (a torch model is not thread-safe) and generates one request (streamed,
timed, with forward passes counted) or several greedy ones in one left-padded batch.

Deployment extends it through hooks rather than a second copy: :meth:`Engine._load_target`
(quantized directories), :meth:`Engine._load_extras` (a draft model or an EAGLE head) and
:meth:`Engine._decode` (assisted or EAGLE decoding). Grouping concurrent requests into batches is
:mod:`medverify.backends.batching`'s job.

torch and transformers are imported inside functions only: the core install has no torch.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medverify.backends.base import Message, SamplingParams
from medverify.backends.cpu_linear import cpu_linear_enabled, use_column_linear
from medverify.backends.generation import (
    CallCounter,
    Cancelled,
    Generation,
    GenerationStats,
    PromptTooLongError,
    _cancel_criteria,
    _make_streamer,
    dtype_name,
    first_stop,
)
from medverify.backends.torch_runtime import (
    configure_torch_threads,
    dtype_kwarg,
    import_torch,
    quiet_progress_bars,
)
from medverify.errors import ConfigError

__all__ = [
    "CallCounter",
    "Cancelled",
    "Conversation",
    "Engine",
    "Generation",
    "GenerationStats",
    "PromptTooLongError",
    "dtype_name",
    "first_stop",
]

log = logging.getLogger(__name__)

Conversation = Sequence[Message | dict[str, str]]


class Engine:
    """A causal LM with a chat template, loaded once and generating from one thread at a time.

    Args:
        target: the checkpoint directory.
        name: the model name replies report (default: the directory's name).
        spec: prefixed to error messages (``hf:<dir>: ...``); none by default.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default cuda when available, else cpu.
        dtype: torch dtype or its name (``"bfloat16"``); default bfloat16 on cuda, float32 on cpu.
        threads: torch intra-op threads on CPU (default
            :func:`~medverify.backends.torch_runtime.cpu_threads`).
        column_linear: run the float32 linear layers on the CPU through
            :mod:`medverify.backends.cpu_linear`'s few-row kernel (default: yes, unless
            ``MEDVERIFY_CPU_LINEAR=plain``). After :meth:`load`, whether the kernel is in use.
        kind: the backend named when torch or transformers is missing.
    """

    def __init__(
        self,
        target: str | Path,
        *,
        name: str | None = None,
        spec: str | None = None,
        device: str | None = None,
        dtype: Any = None,
        threads: int | None = None,
        column_linear: bool | None = None,
        kind: str = "local",
    ) -> None:
        self.target_path = Path(target).expanduser()
        self.name = name or self.target_path.name
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self.threads = threads
        self.column_linear = column_linear
        self.kind = kind
        self.model: Any = None
        self.tokenizer: Any = None
        self.load_seconds: float | None = None
        self.max_context: int | None = None
        self._eos: set[int] = set()
        self._pad = 0
        self._bos: int | None = None
        self._stop_strings_ok = True
        self._lock = threading.Lock()  # one generation at a time
        # per prompt row of the running generation (set under the lock): stop the row once true
        self._cancel_rows: list[Cancelled | None] | None = None
        self._load_lock = threading.Lock()
        self._target_calls = CallCounter()

    @classmethod
    def from_loaded(cls, model: Any, tokenizer: Any, *, name: str = "model") -> Engine:
        """An engine around a model already in memory (training code reuses the batching).

        The model is used as it is: no kernel, no hooks, its generation config left alone.
        """
        engine = cls(Path("."), name=name, column_linear=False)
        engine._adopt(model, tokenizer)
        engine.load_seconds = 0.0
        engine.tokenizer, engine.model = tokenizer, model
        return engine

    # -- loading --------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"{self.spec}: " if self.spec else ""

    def placement(self) -> tuple[Any, Any]:
        """The torch device and dtype the model is (or will be) loaded on and in.

        Raises:
            ConfigError: an unknown dtype name.
        """
        torch, _ = import_torch(self.kind)
        device = torch.device(self.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = self.dtype
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        elif isinstance(dtype, str):
            resolved = getattr(torch, dtype.removeprefix("torch."), None)
            if not isinstance(resolved, torch.dtype):
                raise ConfigError(f"{self._where()}unknown torch dtype {dtype!r}")
            dtype = resolved
        return device, dtype

    def load(self) -> Engine:
        """Load the model (blocking; idempotent and thread-safe; retried after a failure)."""
        if self.model is not None:
            return self
        with self._load_lock:
            if self.model is None:
                self._load()
        return self

    def _load(self) -> None:
        torch, transformers = import_torch(self.kind)
        device, dtype = self.placement()
        if device.type == "cpu":
            configure_torch_threads(self.threads)
        start = time.perf_counter()
        model, tokenizer = self._load_target(device, dtype)
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                f"{self._where()}the tokenizer in {self.target_path} has no chat template"
            )
        model.register_forward_pre_hook(self._target_calls)
        on_cpu = next(model.parameters()).device.type == "cpu"
        wanted = cpu_linear_enabled() if self.column_linear is None else self.column_linear
        self.column_linear = bool(wanted and on_cpu and model.dtype == torch.float32)
        if self.column_linear:
            use_column_linear(model)
        self._adopt(model, tokenizer)
        # Only the special token ids survive from the checkpoint's generation config: the
        # request's SamplingParams alone decide how to decode.
        model.generation_config = transformers.GenerationConfig(
            bos_token_id=self._bos, eos_token_id=sorted(self._eos), pad_token_id=self._pad
        )
        self._load_extras(model, tokenizer, on_cpu=on_cpu)
        self.tokenizer, self.model = tokenizer, model
        self.load_seconds = time.perf_counter() - start
        log.info(
            "%sloaded %s on %s (%s, %d threads) in %.1f s",
            self._where(),
            self.target_path,
            device,
            dtype_name(model.dtype),
            torch.get_num_threads(),
            self.load_seconds,
        )

    def _load_target(self, device: Any, dtype: Any) -> tuple[Any, Any]:
        """Load ``(model, tokenizer)`` from :attr:`target_path`, the model on ``device``."""
        _, transformers = import_torch(self.kind)
        path = self.target_path
        try:
            with quiet_progress_bars():
                tokenizer = transformers.AutoTokenizer.from_pretrained(path)
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    path, **{dtype_kwarg(transformers): dtype}
                )
        except (OSError, ValueError, KeyError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"{self._where()}cannot load {path} as a transformers checkpoint: {reason}"
            ) from None
        model.to(device)
        return model.eval(), tokenizer

    def _load_extras(self, model: Any, tokenizer: Any, *, on_cpu: bool) -> None:
        """Load what generates alongside the target (a draft); nothing here."""

    def _adopt(self, model: Any, tokenizer: Any) -> None:
        """Take the model's end, padding and start tokens and its context length."""
        gen = model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else tokenizer.eos_token_id
        eos_ids = {eos} if isinstance(eos, int) else set(eos or ())
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        if not eos_ids:
            raise ConfigError(f"{self._where()}{self.target_path} defines no end-of-text token")
        pad = gen.pad_token_id if gen.pad_token_id is not None else tokenizer.pad_token_id
        self._eos = eos_ids
        self._pad = int(pad if pad is not None else min(eos_ids))
        self._bos = gen.bos_token_id
        self.max_context = getattr(model.config, "max_position_embeddings", None)

    def close(self) -> None:
        """Drop the model (a later request loads it again)."""
        with self._load_lock, self._lock:
            self.model = self.tokenizer = None
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- encoding and configuration -------------------------------------------------------------

    @property
    def eos_ids(self) -> set[int]:
        """The token ids that end a reply."""
        return set(self._eos)

    @property
    def input_device(self) -> Any:
        """Where input ids go (the target's first parameter's device)."""
        return next(self.model.parameters()).device

    def encode(self, messages: Conversation) -> list[int]:
        """The chat-templated prompt's token ids.

        Raises:
            ConfigError: the template rejects the messages.
            PromptTooLongError: the prompt fills the context.
        """
        self.load()
        turns = [m.model_dump() if isinstance(m, Message) else dict(m) for m in messages]
        try:
            text = self.tokenizer.apply_chat_template(
                turns, add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # jinja raises its own TemplateError from inside the template
            raise ConfigError(
                f"{self._where()}the chat template rejected the messages: {exc}"
            ) from None
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if self.max_context is not None and len(ids) >= self.max_context:
            raise PromptTooLongError(
                f"{self._where()}the prompt is {len(ids)} tokens, the model's context is "
                f"{self.max_context}",
                prompt_tokens=len(ids),
                max_context=self.max_context,
            )
        return ids

    def generation_config(
        self, params: SamplingParams, max_new: int, *, stop_strings: bool = False
    ) -> Any:
        """The ``GenerationConfig`` for a request: greedy at temperature 0, else plain sampling."""
        from transformers import GenerationConfig

        stops = [s for s in params.stop if s]
        base: dict[str, Any] = {
            "max_new_tokens": max_new,
            "bos_token_id": self._bos,
            "eos_token_id": sorted(self._eos),
            "pad_token_id": self._pad,
            "stop_strings": stops if stop_strings and stops else None,
        }
        if params.temperature == 0:
            return GenerationConfig(**base, do_sample=False)
        return GenerationConfig(
            **base, do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0
        )

    # -- generation -----------------------------------------------------------------------------

    def generate(
        self,
        messages: Conversation,
        params: SamplingParams | None = None,
        *,
        on_text: Callable[[str], None] | None = None,
        use_draft: bool = True,
    ) -> Generation:
        """One reply, with its stats; ``on_text`` receives the text piece by piece as it is made.

        Stop strings end the reply at their first occurrence (the stop string is not included).
        """
        params = params or SamplingParams()
        return self.generate_ids(
            self.encode(messages), params, on_text=on_text, use_draft=use_draft
        )

    def generate_ids(
        self,
        prompt: list[int],
        params: SamplingParams,
        *,
        on_text: Callable[[str], None] | None = None,
        use_draft: bool = True,
        cancelled: Cancelled | None = None,
    ) -> Generation:
        """Like :meth:`generate`, for an encoded prompt.

        ``cancelled`` is polled between tokens: once it returns True the generation ends there
        (the server's client went away) and the reply is whatever was made so far.
        """
        self.load()
        stops = [s for s in params.stop if s]
        emitted: list[str] = []
        stopped = False

        def relay(piece: str) -> None:
            nonlocal stopped
            if stopped or (on_text is None and not stops):
                return
            seen = "".join(emitted) + piece
            cut = first_stop(seen, stops)
            if cut is not None:
                stopped = True
                piece = seen[:cut][len("".join(emitted)) :]
            emitted.append(piece)
            if piece and on_text is not None:
                on_text(piece)

        def done() -> bool:
            return stopped or (cancelled is not None and cancelled())

        with self._lock:
            clock: dict[str, float] = {}
            streamer = _make_streamer(self.tokenizer, relay, clock)
            self._target_calls.n = 0
            self._cancel_rows = [cancelled] if cancelled is not None else None
            start = time.perf_counter()
            try:
                ids, max_new, target_calls, draft_calls = self._decode(
                    prompt, params, streamer, done, use_draft
                )
            finally:
                self._cancel_rows = None
            seconds = time.perf_counter() - start
        return self.finish(
            len(prompt),
            ids,
            params,
            max_new,
            seconds=seconds,
            first_token_s=(clock["first"] - start) if "first" in clock else None,
            target_calls=target_calls,
            draft_calls=draft_calls,
        )

    def _decode(
        self,
        prompt: list[int],
        params: SamplingParams,
        streamer: Any,
        stopped: Callable[[], bool],
        use_draft: bool,
    ) -> tuple[list[int], int, int, int]:
        """Generate one reply (the lock is held).

        Returns:
            The new token ids, the ``max_new`` they were limited to, target and draft passes.
        """
        rows, max_new = self._generate_rows([prompt], params, streamer=streamer)
        return rows[0], max_new, self._target_calls.n, 0

    def generate_many(
        self, conversations: Sequence[Conversation], params: SamplingParams
    ) -> list[Generation]:
        """Greedy replies to several conversations in one left-padded batch.

        No draft: transformers' assisted decoding takes one sequence at a time, and for several
        requests batching pays more.

        Raises:
            ConfigError: ``params`` asks for sampling (batched sampling would tie every reply to
                the batch it landed in).
        """
        self._check_greedy(params)
        return self.generate_many_ids([self.encode(m) for m in conversations], params)

    def generate_many_ids(
        self,
        prompts: Sequence[list[int]],
        params: SamplingParams,
        *,
        cancelled: Sequence[Cancelled | None] | None = None,
    ) -> list[Generation]:
        """Like :meth:`generate_many`, for encoded prompts.

        ``cancelled`` (one per prompt) is polled between tokens; a row whose check returns True
        stops there while the others go on.
        """
        self._check_greedy(params)
        self.load()
        with self._lock:
            start = time.perf_counter()
            self._cancel_rows = list(cancelled) if cancelled is not None else None
            try:
                rows, max_new = self._generate_rows(prompts, params)
            finally:
                self._cancel_rows = None
            seconds = time.perf_counter() - start
        return [
            self.finish(len(p), row, params, max_new, seconds=seconds)
            for p, row in zip(prompts, rows, strict=True)
        ]

    @staticmethod
    def _check_greedy(params: SamplingParams) -> None:
        if params.temperature > 0:
            raise ConfigError("generate_many is greedy only; sample one request at a time")

    def generate_batch(
        self, prompts: list[list[int]], max_new_tokens: int
    ) -> tuple[list[list[int]], float]:
        """Greedy token ids for several prompts (cut at the end token), and the seconds it took."""
        self.load()
        with self._lock:
            start = time.perf_counter()
            rows, _ = self._generate_rows(prompts, SamplingParams(max_tokens=max_new_tokens))
            seconds = time.perf_counter() - start
        return [self._until_end(row) for row in rows], seconds

    def _generate_rows(
        self,
        prompts: Sequence[list[int]],
        params: SamplingParams,
        *,
        streamer: Any = None,
        **extra: Any,
    ) -> tuple[list[list[int]], int]:
        """One ``model.generate`` call over left-padded prompts (the lock is held).

        Returns:
            Each prompt's new token ids (padding after an early end included) and the
            ``max_new_tokens`` used (``params.max_tokens``, less where the context is shorter).
        """
        torch, _ = import_torch(self.kind)
        n, width = len(prompts), max(len(p) for p in prompts)
        input_ids = torch.full((n, width), self._pad, dtype=torch.long)
        attention = torch.zeros((n, width), dtype=torch.long)
        for i, p in enumerate(prompts):
            input_ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            attention[i, width - len(p) :] = 1
        max_new = params.max_tokens
        if self.max_context is not None:
            max_new = max(1, min(max_new, self.max_context - width))
        use_stops = any(params.stop) and self._stop_strings_ok
        kwargs: dict[str, Any] = {
            "input_ids": input_ids.to(self.input_device),
            "attention_mask": attention.to(self.input_device),
            "generation_config": self.generation_config(params, max_new, stop_strings=use_stops),
            **extra,
        }
        if streamer is not None:
            kwargs["streamer"] = streamer
        if self._cancel_rows is not None and any(c is not None for c in self._cancel_rows):
            kwargs["stopping_criteria"] = _cancel_criteria(self._cancel_rows, n)
        if use_stops:
            kwargs["tokenizer"] = self.tokenizer
        with torch.inference_mode():
            try:
                out = self._call_generate(kwargs, params)
            except Exception as exc:
                if not use_stops:
                    raise
                # a tokenizer transformers cannot map stop strings for: truncate afterwards
                log.warning(
                    "%sstop_strings unsupported (%s); truncating after generation instead",
                    self._where(),
                    exc,
                )
                self._stop_strings_ok = False
                del kwargs["tokenizer"]
                kwargs["generation_config"] = self.generation_config(params, max_new)
                if streamer is not None:
                    streamer.restart()
                out = self._call_generate(kwargs, params)
        return out[:, width:].tolist(), max_new

    def _call_generate(self, kwargs: dict[str, Any], params: SamplingParams) -> Any:
        if params.temperature > 0 and params.seed is not None:
            torch, _ = import_torch(self.kind)
            torch.manual_seed(params.seed)
        return self.model.generate(**kwargs)

    # -- replies --------------------------------------------------------------------------------

    def _until_end(self, ids: list[int]) -> list[int]:
        """``ids`` up to (without) the first end or padding token."""
        ends = self._eos | {self._pad}
        end = next((i for i, t in enumerate(ids) if t in ends), None)
        return ids if end is None else ids[:end]

    def finish(
        self, prompt_len: int, ids: list[int], params: SamplingParams, max_new: int, **stats: Any
    ) -> Generation:
        """The reply for generated ``ids``: cut at the end token, then at the first stop string.

        ``finish_reason`` is ``stop`` when the reply ended (end token or stop string) before
        ``max_new`` tokens, ``length`` otherwise. After a stop string, only the fewest tokens
        whose text already contains it are counted (and returned).
        """
        tokens = self._until_end(ids)
        decode = self.tokenizer.decode
        text = decode(tokens, skip_special_tokens=True)
        ended = len(tokens) < len(ids)
        finish = "stop" if ended or len(tokens) < max_new else "length"
        cut = first_stop(text, params.stop)
        if cut is not None:
            text, finish = text[:cut], "stop"
            lo, hi = 1, len(tokens)
            while lo < hi:
                mid = (lo + hi) // 2
                if first_stop(decode(tokens[:mid], skip_special_tokens=True), params.stop) is None:
                    lo = mid + 1
                else:
                    hi = mid
            tokens = tokens[:lo]
        return Generation(
            text=text,
            token_ids=tokens,
            stats=GenerationStats(
                prompt_tokens=prompt_len,
                completion_tokens=len(tokens),
                finish_reason=finish,
                **stats,
            ),
        )
