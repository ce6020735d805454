"""Deployment on the local-model runtime: quantized targets, draft models and EAGLE heads.

``medverify serve`` on CPU, ``medverify deploy report`` and the speculative-decoding checks run a
target that may be a ``deploy quantize`` directory, optionally with a draft model of the same
tokenizer or an EAGLE head, and count what each reply cost (time to the first token, target and
draft forward passes, hence tokens per target pass and the draft's acceptance rate). Everything
else (chat template, generation config, stop strings, end of reply, batching) is the shared
runtime's, :class:`medverify.backends.runtime.Engine`; this subclass plugs in the deployment
loader (:func:`~medverify.deploy.quantize.load_causal_lm`), loads the draft, and decodes with
``transformers``' assisted decoding (``assistant_model=``, or prompt lookup for ``ngram``) or,
for an EAGLE head, :func:`medverify.deploy.eagle.speculate_greedy`. Batched throughput on GPUs is
vLLM's job (``medverify serve`` starts it there).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from medverify.backends import runtime
from medverify.backends.base import SamplingParams
from medverify.backends.cpu_linear import use_column_linear
from medverify.backends.runtime import CallCounter, Generation, GenerationStats
from medverify.backends.torch_runtime import import_torch
from medverify.deploy.common import check_same_tokenizer
from medverify.deploy.eagle import is_eagle_dir, load_head, speculate_greedy
from medverify.deploy.quantize import load_causal_lm, quantize_head_int8
from medverify.errors import ConfigError

__all__ = [
    "DEFAULT_DRAFT_TOKENS",
    "EAGLE_DRAFT_TOKENS",
    "EAGLE_LOOKUP",
    "EAGLE_MIN_CONFIDENCE",
    "NGRAM",
    "NGRAM_DRAFT_TOKENS",
    "Engine",
    "Generation",
    "GenerationStats",
    "is_ngram",
    "model_bytes",
]

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


class Engine(runtime.Engine):
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
        super().__init__(
            target, name=name, device=device, column_linear=column_linear, kind="deploy"
        )
        self.draft_head_int8 = draft_head_int8
        self.draft_schedule = draft_schedule
        self.draft_confidence = (
            EAGLE_MIN_CONFIDENCE if draft_confidence is None else float(draft_confidence)
        )
        self.ngram = is_ngram(draft)
        self.draft_path = Path(draft).expanduser() if draft is not None and not self.ngram else None
        for p in (self.target_path, self.draft_path):
            if p is not None and not p.is_dir():
                raise ConfigError(f"no such model directory: {p}")

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
        self.draft: Any = None
        self.eagle: Any = None
        self._draft_calls = CallCounter()

    def _load_target(self, device: Any, dtype: Any) -> tuple[Any, Any]:
        """A checkpoint or a quantized directory, in the dtype its format implies."""
        return load_causal_lm(self.target_path, device=str(device))

    def _load_extras(self, model: Any, tokenizer: Any, *, on_cpu: bool) -> None:
        """Load the draft model or EAGLE head and check that it shares the target's tokenizer."""
        if self.is_eagle:
            from transformers import AutoTokenizer

            draft_tok = AutoTokenizer.from_pretrained(self.draft_path)
            check_same_tokenizer(tokenizer, draft_tok, draft_path=self.draft_path)
            device = next(model.parameters()).device
            self.eagle = load_head(self.draft_path, target=model, device=str(device))
            if self.column_linear:
                use_column_linear(self.eagle)
        elif self.draft_path is not None:
            torch, _ = import_torch("deploy")
            draft, draft_tok = load_causal_lm(self.draft_path, device=self.device)
            check_same_tokenizer(tokenizer, draft_tok, draft_path=self.draft_path)
            draft.register_forward_pre_hook(self._draft_calls)
            head = draft.get_output_embeddings()
            if self.draft_head_int8 is None:
                self.draft_head_int8 = on_cpu and type(head) is torch.nn.Linear
            if self.draft_head_int8:
                quantize_head_int8(draft)
            draft.generation_config.num_assistant_tokens = self.draft_tokens
            draft.generation_config.num_assistant_tokens_schedule = self.draft_schedule
            self.draft = draft

    @property
    def has_draft(self) -> bool:
        """Whether generation can speculate (a draft model or n-gram lookup)."""
        return self.ngram or self.draft_path is not None

    @property
    def draft_label(self) -> str | None:
        """``ngram``, the draft directory, or None."""
        return NGRAM if self.ngram else (str(self.draft_path) if self.draft_path else None)

    def _decode(
        self,
        prompt: list[int],
        params: SamplingParams,
        streamer: Any,
        stopped: Callable[[], bool],
        use_draft: bool,
    ) -> tuple[list[int], int, int, int]:
        """Decode with the draft: EAGLE's loop for greedy requests, else assisted ``generate``."""
        if self.eagle is not None and use_draft and params.temperature == 0:
            ids, target_calls, draft_calls = self._eagle_greedy(
                prompt, params.max_tokens, streamer, stopped
            )
            return ids, params.max_tokens, target_calls, draft_calls
        extra: dict[str, Any] = {}
        if self.draft is not None and use_draft:
            extra["assistant_model"] = self.draft
        elif self.ngram and use_draft:
            extra["prompt_lookup_num_tokens"] = self.draft_tokens
        self._draft_calls.n = 0
        rows, max_new = self._generate_rows([prompt], params, streamer=streamer, **extra)
        return rows[0], max_new, self._target_calls.n, self._draft_calls.n

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
        super().close()
        self.draft = self.eagle = None


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
