"""One model (fp, quantized, or either with a draft) answering chat requests, with measurements.

``medverify serve`` on CPU, ``medverify deploy report`` and the speculative-decoding checks all
need the same thing: load a target (a checkpoint or a ``deploy quantize`` directory), optionally a
draft model with the same tokenizer, and generate with ``transformers``' own assisted decoding
(``assistant_model=``) or, for an EAGLE head, :func:`medverify.deploy.eagle.speculate_greedy`,
streaming text as it is accepted, and counting what it cost: time to the
first token, target and draft forward passes (hence tokens per target pass and the draft's
acceptance rate). The model is not thread-safe, so one lock serialises generation; batched
throughput on GPUs is vLLM's job (``medverify serve`` starts it there).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from medverify.backends.base import Message, SamplingParams
from medverify.backends.cpu_linear import cpu_linear_enabled, use_column_linear
from medverify.backends.torch_runtime import configure_torch_threads, import_torch
from medverify.deploy.common import check_same_tokenizer
from medverify.deploy.quantize import load_causal_lm
from medverify.errors import ConfigError

log = logging.getLogger(__name__)

#: Draft tokens proposed per round before the target verifies them.
DEFAULT_DRAFT_TOKENS = 8
#: ``draft="ngram"``: no draft model; transformers' prompt-lookup decoding proposes the tokens that
#: followed the last n-gram's previous occurrence in the prompt or the reply so far.
NGRAM = "ngram"
#: n-gram tokens per round (measured on CPU, 6 prompts x 64 tokens: 3 -> 1.34x, 6 -> 1.08x; these
#: sweeps timed the target alone with PyTorch's kernel, ``benchmarks/cpu_linear.py``).
NGRAM_DRAFT_TOKENS = 3
#: most tokens an EAGLE head drafts per round (:mod:`medverify.deploy.eagle`). Measured on CPU
#: with the 2-layer SmolLM2 head (6 prompts x 64 tokens): 3 -> 1.21-1.29x, 4 -> 0.98x, 5 -> 0.79x.
EAGLE_DRAFT_TOKENS = 3
#: an EAGLE head stops drafting a round when its next guess is less likely than this (0.3-0.6
#: did not beat 0 in the same sweep).
EAGLE_MIN_CONFIDENCE = 0.0
#: before asking the head, look the last this many tokens up in the prompt and reply so far
#: (tokens per target pass 1.76 -> 1.83 in the same sweep).
EAGLE_LOOKUP = 3


def is_ngram(draft: str | Path | None) -> bool:
    """Whether a ``--draft`` value asks for n-gram prompt lookup rather than a draft directory."""
    return draft is not None and str(draft) == NGRAM


class GenerationStats(BaseModel):
    """What one generation cost.

    ``target_calls`` counts forward passes of the target (prefill included); with a draft each
    pass verifies a run of draft tokens and yields at least one token, so
    ``completion_tokens / target_calls`` is the speculative gain in passes.
    ``acceptance`` = accepted draft tokens / draft forward passes (each pass proposes one token).
    """

    prompt_tokens: int
    completion_tokens: int
    seconds: float
    first_token_s: float | None = None
    target_calls: int = 0
    draft_calls: int = 0
    finish_reason: str = "stop"

    @property
    def tokens_per_s(self) -> float:
        """Completion tokens per second of wall time."""
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def accepted(self) -> int:
        """Draft tokens the target accepted (every target pass adds one token of its own)."""
        return max(0, self.completion_tokens - self.target_calls) if self.draft_calls else 0

    @property
    def acceptance(self) -> float | None:
        """Accepted draft tokens per draft token proposed; None without a draft."""
        if not self.draft_calls:
            return None
        return min(1.0, self.accepted / self.draft_calls)


class Generation(BaseModel):
    """A finished reply and its stats."""

    text: str
    token_ids: list[int]
    stats: GenerationStats


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *_: Any) -> None:
        self.n += 1


def _make_streamer(tokenizer: Any, on_text: Callable[[str], None] | None, clock: dict) -> Any:
    """A ``TextStreamer`` that hands each decoded piece to ``on_text`` and notes the first one."""
    from transformers import TextStreamer

    class _Streamer(TextStreamer):
        def put(self, value: Any) -> None:
            if not self.next_tokens_are_prompt and "first" not in clock:
                clock["first"] = time.perf_counter()
            super().put(value)

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text and on_text is not None:
                on_text(text)

    return _Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


class Engine:
    """A target model, optionally with a draft, loaded once and used from one thread at a time.

    Args:
        target: a checkpoint directory or a ``deploy quantize`` directory.
        draft: a draft directory (``deploy distill-draft``), any checkpoint with the target's
            tokenizer, or ``"ngram"`` for draft-free prompt-lookup decoding.
        name: the model name the server reports.
        draft_tokens: draft tokens proposed per round (default 8, or 3 for ``ngram``).
        device: ``cpu`` or ``cuda``; default cuda when available.
        column_linear: run the target's (and an EAGLE head's) float linear layers through
            :mod:`medverify.backends.cpu_linear`'s kernel (default: on the CPU, where PyTorch's
            own is slow for one to a few rows, unless ``MEDVERIFY_CPU_LINEAR=plain``). The
            target alone gets it too, so a draft's speedup is measured against the same kernel.
        draft_head_int8: run a float draft's LM head in per-channel int8
            (:func:`~medverify.deploy.quantize.quantize_head_int8`; default: on the CPU).
        draft_confidence: an EAGLE head stops a round's drafting when its next guess has less
            than this probability (default :data:`EAGLE_MIN_CONFIDENCE`).
        draft_schedule: ``heuristic`` (transformers', the default: start at ``draft_tokens``,
            two more after a fully accepted round, one fewer otherwise) or ``constant``. On CPU
            with the 4-layer SmolLM2 draft, heuristic from 2 reached 1.00-1.15x and constant 5 0.90x
            of the target alone (``benchmarks/results/deploy_cpu*.json``).

    Raises:
        ConfigError: a missing directory, or a draft with another tokenizer (on :meth:`load`).
    """

    def __init__(
        self,
        target: str | Path,
        *,
        draft: str | Path | None = None,
        name: str | None = None,
        draft_tokens: int | None = None,
        device: str | None = None,
        column_linear: bool | None = None,
        draft_head_int8: bool | None = None,
        draft_schedule: str = "heuristic",
        draft_confidence: float | None = None,
    ) -> None:
        if draft_schedule not in ("constant", "heuristic"):
            raise ConfigError(f"draft_schedule must be constant or heuristic, got {draft_schedule}")
        self.column_linear = column_linear
        self.draft_head_int8 = draft_head_int8
        self.draft_schedule = draft_schedule
        self.draft_confidence = (
            EAGLE_MIN_CONFIDENCE if draft_confidence is None else float(draft_confidence)
        )
        self.target_path = Path(target).expanduser()
        self.ngram = is_ngram(draft)
        self.draft_path = Path(draft).expanduser() if draft is not None and not self.ngram else None
        for p in (self.target_path, self.draft_path):
            if p is not None and not p.is_dir():
                raise ConfigError(f"no such model directory: {p}")
        self.name = name or self.target_path.name
        from medverify.deploy.eagle import is_eagle_dir

        self.is_eagle = self.draft_path is not None and is_eagle_dir(self.draft_path)
        if draft_tokens is None:
            draft_tokens = (
                NGRAM_DRAFT_TOKENS
                if self.ngram
                else EAGLE_DRAFT_TOKENS
                if self.is_eagle
                else DEFAULT_DRAFT_TOKENS
            )
        if draft_tokens < 1:
            raise ConfigError(f"draft_tokens must be at least 1, got {draft_tokens}")
        self.draft_tokens = draft_tokens
        self.device = device
        self.model: Any = None
        self.tokenizer: Any = None
        self.draft: Any = None
        self.eagle: Any = None
        self.load_seconds: float | None = None
        self._lock = threading.Lock()
        self._target_calls = _Counter()
        self._draft_calls = _Counter()

    def load(self) -> Engine:
        """Load target and draft (blocking; idempotent) and check that their tokenizers match."""
        if self.model is not None:
            return self
        torch, _ = import_torch("deploy")
        start = time.perf_counter()
        if not torch.cuda.is_available() or self.device == "cpu":
            configure_torch_threads()
        model, tokenizer = load_causal_lm(self.target_path, device=self.device)
        model.register_forward_pre_hook(self._target_calls)
        on_cpu = next(model.parameters()).device.type == "cpu"
        if self.column_linear is None:
            self.column_linear = on_cpu and cpu_linear_enabled()
        if self.column_linear:
            use_column_linear(model)
        if self.is_eagle:
            from transformers import AutoTokenizer

            from medverify.deploy.eagle import load_head

            draft_tok = AutoTokenizer.from_pretrained(self.draft_path)
            check_same_tokenizer(tokenizer, draft_tok, draft_path=self.draft_path)
            device = next(model.parameters()).device
            self.eagle = load_head(self.draft_path, target=model, device=str(device))
            if self.column_linear:
                use_column_linear(self.eagle)
        elif self.draft_path is not None:
            draft, draft_tok = load_causal_lm(self.draft_path, device=self.device)
            check_same_tokenizer(tokenizer, draft_tok, draft_path=self.draft_path)
            draft.register_forward_pre_hook(self._draft_calls)
            head = draft.get_output_embeddings()
            if self.draft_head_int8 is None:
                self.draft_head_int8 = on_cpu and type(head) is torch.nn.Linear
            if self.draft_head_int8:
                from medverify.deploy.quantize import quantize_head_int8

                quantize_head_int8(draft)
            draft.generation_config.num_assistant_tokens = self.draft_tokens
            draft.generation_config.num_assistant_tokens_schedule = self.draft_schedule
            self.draft = draft
        self._adopt(model, tokenizer)
        self.load_seconds = time.perf_counter() - start
        return self

    @classmethod
    def from_loaded(cls, model: Any, tokenizer: Any, *, name: str = "model") -> Engine:
        """An engine around a model already in memory (training code reuses the batching)."""
        engine = cls.__new__(cls)
        engine.target_path, engine.draft_path, engine.name = Path("."), None, name
        engine.ngram = engine.is_eagle = False
        engine.draft_tokens, engine.device, engine.draft = DEFAULT_DRAFT_TOKENS, None, None
        engine.eagle = None
        engine.column_linear = engine.draft_head_int8 = False
        engine.draft_schedule = "constant"
        engine.draft_confidence = EAGLE_MIN_CONFIDENCE
        engine.load_seconds = 0.0
        engine._lock = threading.Lock()
        engine._target_calls, engine._draft_calls = _Counter(), _Counter()
        engine._adopt(model, tokenizer)
        return engine

    def _adopt(self, model: Any, tokenizer: Any) -> None:
        """Take the model's end and padding tokens, and the model."""
        gen = model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else tokenizer.eos_token_id
        self._eos = {eos} if isinstance(eos, int) else set(eos or ())
        if tokenizer.eos_token_id is not None:
            self._eos.add(tokenizer.eos_token_id)
        if not self._eos:
            raise ConfigError("the model defines no end-of-text token")
        pad = gen.pad_token_id if gen.pad_token_id is not None else tokenizer.pad_token_id
        self._pad = int(pad if pad is not None else min(self._eos))
        self._bos = gen.bos_token_id
        self.tokenizer, self.model = tokenizer, model

    @property
    def has_draft(self) -> bool:
        """Whether generation can speculate (a draft model or n-gram lookup)."""
        return self.ngram or self.draft_path is not None

    @property
    def draft_label(self) -> str | None:
        """``ngram``, the draft directory, or None."""
        return NGRAM if self.ngram else (str(self.draft_path) if self.draft_path else None)

    @property
    def eos_ids(self) -> set[int]:
        """The token ids that end a reply."""
        return set(self._eos)

    @property
    def input_device(self) -> Any:
        """Where input ids go (the target's first parameter's device)."""
        return next(self.model.parameters()).device

    def encode(self, messages: Sequence[Message | dict[str, str]]) -> list[int]:
        """The chat-templated prompt's token ids."""
        self.load()
        turns = [m.model_dump() if isinstance(m, Message) else dict(m) for m in messages]
        try:
            text = self.tokenizer.apply_chat_template(
                turns, add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # jinja raises its own TemplateError
            raise ConfigError(f"the chat template rejected the messages: {exc}") from None
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _config(self, params: SamplingParams, max_new: int) -> Any:
        from transformers import GenerationConfig

        base: dict[str, Any] = {
            "max_new_tokens": max_new,
            "eos_token_id": sorted(self._eos),
            "pad_token_id": self._pad,
            "bos_token_id": self._bos,
        }
        if params.temperature == 0:
            return GenerationConfig(**base, do_sample=False)
        return GenerationConfig(
            **base, do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0
        )

    def generate(
        self,
        messages: Sequence[Message | dict[str, str]],
        params: SamplingParams | None = None,
        *,
        on_text: Callable[[str], None] | None = None,
        use_draft: bool = True,
    ) -> Generation:
        """One reply, with its stats; ``on_text`` receives the text piece by piece as it is made.

        Stop strings end the reply at their first occurrence (the stop string is not included).
        """
        params = params or SamplingParams()
        self.load()
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
    ) -> Generation:
        """Like :meth:`generate`, for an encoded prompt."""
        torch, _ = import_torch("deploy")
        self.load()
        stops = [s for s in params.stop if s]
        emitted: list[str] = []
        stopped = False

        def relay(piece: str) -> None:
            nonlocal stopped
            if stopped or (on_text is None and not stops):
                return
            seen = "".join(emitted) + piece
            cut = _first_stop(seen, stops)
            if cut is not None:
                stopped = True
                piece = seen[:cut][len("".join(emitted)) :]
            emitted.append(piece)
            if piece and on_text is not None:
                on_text(piece)

        with self._lock:
            clock: dict[str, float] = {}
            streamer = _make_streamer(self.tokenizer, relay, clock)
            kwargs: dict[str, Any] = {
                "input_ids": torch.tensor([prompt], device=self.input_device),
                "attention_mask": torch.ones(
                    (1, len(prompt)), dtype=torch.long, device=self.input_device
                ),
                "generation_config": self._config(params, params.max_tokens),
                "streamer": streamer,
            }
            if stops:
                kwargs["stop_strings"] = stops
                kwargs["tokenizer"] = self.tokenizer
            if self.draft is not None and use_draft:
                kwargs["assistant_model"] = self.draft
            elif self.ngram and use_draft:
                kwargs["prompt_lookup_num_tokens"] = self.draft_tokens
            if params.temperature > 0 and params.seed is not None:
                torch.manual_seed(params.seed)
            self._target_calls.n = self._draft_calls.n = 0
            start = time.perf_counter()
            if self.eagle is not None and use_draft and params.temperature == 0:
                ids, target_calls, draft_calls = self._eagle_greedy(
                    prompt, params.max_tokens, streamer, lambda: stopped
                )
            else:
                with torch.inference_mode():
                    out = self.model.generate(**kwargs)
                ids = out[0, len(prompt) :].tolist()
                target_calls, draft_calls = self._target_calls.n, self._draft_calls.n
            seconds = time.perf_counter() - start
        end = next((i for i, t in enumerate(ids) if t in self._eos), None)
        return self._finished(
            prompt,
            ids if end is None else ids[:end],
            params,
            seconds=seconds,
            first_token_s=(clock["first"] - start) if "first" in clock else None,
            target_calls=target_calls,
            draft_calls=draft_calls,
        )

    def _eagle_greedy(
        self, prompt: list[int], max_new: int, streamer: Any, stopped: Callable[[], bool]
    ) -> tuple[list[int], int, int]:
        """Greedy tokens through the EAGLE head's own loop (transformers cannot host it).

        Sampled requests go through ``generate`` without the head: the loop verifies greedily.
        """
        torch, _ = import_torch("deploy")
        streamer.put(torch.tensor([prompt]))  # the streamer skips the prompt

        def relay(new: list[int]) -> bool:
            streamer.put(torch.tensor(new))
            return stopped()

        ids, stats = self.speculate(prompt, max_new, on_tokens=relay)
        streamer.end()
        return ids, stats.target_calls, stats.draft_calls

    def speculate(
        self,
        prompt: list[int],
        max_new: int,
        *,
        on_tokens: Callable[[list[int]], bool] | None = None,
    ) -> tuple[list[int], Any]:
        """The EAGLE loop with this engine's settings (draft tokens, confidence, lookup).

        Returns the greedy ids (end token included) and the loop's
        :class:`~medverify.deploy.eagle.SpeculationStats`, for benchmarks that count rounds.
        """
        from medverify.deploy.eagle import speculate_greedy

        self.load()
        if self.eagle is None:
            raise ConfigError(f"this engine has no EAGLE head (draft: {self.draft_label})")
        return speculate_greedy(
            self.model,
            self.eagle,
            prompt,
            max_new,
            eos_ids=self._eos,
            draft_tokens=self.draft_tokens,
            min_confidence=self.draft_confidence,
            lookup=EAGLE_LOOKUP,
            on_tokens=on_tokens,
        )

    def _finished(
        self, prompt: list[int], tokens: list[int], params: SamplingParams, **stats: Any
    ) -> Generation:
        """The reply for ``tokens`` (cut at the end token): text cut at the first stop string.

        A reply shorter than ``max_tokens`` ended at the end token or a stop string: ``stop``.
        """
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        finish = "stop" if len(tokens) < params.max_tokens else "length"
        cut = _first_stop(text, params.stop)
        if cut is not None:
            text, finish = text[:cut], "stop"
        return Generation(
            text=text,
            token_ids=tokens,
            stats=GenerationStats(
                prompt_tokens=len(prompt),
                completion_tokens=len(tokens),
                finish_reason=finish,
                **stats,
            ),
        )

    def generate_many(
        self, conversations: Sequence[Sequence[Message | dict[str, str]]], params: SamplingParams
    ) -> list[Generation]:
        """Greedy replies to several conversations in one batch (the server's concurrent users).

        Stop strings are applied to each reply afterwards. No draft: transformers' assisted
        decoding takes one sequence at a time, and for several users batching pays more.

        Raises:
            ConfigError: ``params`` asks for sampling (batched sampling would tie every reply to
                the batch it landed in).
        """
        if params.temperature > 0:
            raise ConfigError("generate_many is greedy only; sample one request at a time")
        prompts = [self.encode(m) for m in conversations]
        rows, seconds = self.generate_batch(prompts, params.max_tokens)
        return [
            self._finished(prompt, tokens, params, seconds=seconds)
            for prompt, tokens in zip(prompts, rows, strict=True)
        ]

    def generate_batch(
        self, prompts: list[list[int]], max_new_tokens: int
    ) -> tuple[list[list[int]], float]:
        """Greedy replies for several prompts in one left-padded batch, and the seconds it took.

        No draft here: transformers' assisted decoding takes one sequence at a time.
        """
        torch, _ = import_torch("deploy")
        self.load()
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p)
            mask[i, width - len(p) :] = 1
        cfg = self._config(SamplingParams(max_tokens=max_new_tokens), max_new_tokens)
        with self._lock, torch.inference_mode():
            start = time.perf_counter()
            out = self.model.generate(
                input_ids=ids.to(self.input_device),
                attention_mask=mask.to(self.input_device),
                generation_config=cfg,
            )
            seconds = time.perf_counter() - start
        rows = []
        for row in out[:, width:].tolist():
            end = next((i for i, t in enumerate(row) if t in self._eos or t == self._pad), None)
            rows.append(row if end is None else row[:end])
        return rows, seconds

    def memory_bytes(self) -> dict[str, int]:
        """Bytes of parameters and buffers (packed int8 weights included) of target and draft."""
        return {
            "target": model_bytes(self.model),
            "draft": model_bytes(self.draft)
            if self.draft is not None
            else model_bytes(self.eagle)
            if self.eagle is not None
            else 0,
        }

    def close(self) -> None:
        """Drop the models."""
        self.model = self.draft = self.eagle = self.tokenizer = None


def model_bytes(model: Any) -> int:
    """Parameter and buffer bytes of a model, counting packed dynamic-int8 weights too."""
    torch, _ = import_torch("deploy")
    seen: set[int] = set()
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    for module in model.modules():
        packed = getattr(module, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            weight, bias = packed._weight_bias()
            total += weight.numel() * weight.element_size()
            if isinstance(bias, torch.Tensor):
                total += bias.numel() * bias.element_size()
    return total


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None
