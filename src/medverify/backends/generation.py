"""What one generation yields, and the small hooks that transformers' ``generate`` takes.

The runtime (:mod:`medverify.backends.runtime`) and deployment's engine both return these
records and pass these hooks (a streamer that notes the first token, a stopping criterion that
ends a cancelled request between tokens); keeping them apart keeps the runtime about decoding.
torch and transformers are imported inside functions only: the core install has no torch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from medverify.errors import ConfigError

#: polled between generated tokens: True once the request's client is gone
Cancelled = Callable[[], bool]


class PromptTooLongError(ConfigError):
    """The prompt alone fills the model's context (the server answers it with HTTP 400)."""

    def __init__(self, message: str, *, prompt_tokens: int, max_context: int) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.max_context = max_context


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


def first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index of the earliest stop string in ``text``, or None."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None


def dtype_name(dtype: Any) -> str:
    """``float32`` for ``torch.float32``."""
    return str(dtype).removeprefix("torch.")


class CallCounter:
    """A forward pre-hook counting a module's forward passes."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *_: Any) -> None:
        """Count one pass."""
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

        def restart(self) -> None:
            """Forget a generation that failed before its first token."""
            self.token_cache, self.print_len, self.next_tokens_are_prompt = [], 0, True

    return _Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


def _cancel_criteria(rows: Sequence[Cancelled | None], n: int) -> Any:
    """A transformers stopping criterion ending each row whose ``cancelled`` check is true.

    transformers calls it after every new token (after every verified run with a draft), so an
    abandoned request stops within a token instead of running to ``max_new_tokens``.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    checks = list(rows) + [None] * (n - len(rows))

    class _Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            flags = [bool(c is not None and c()) for c in checks[: input_ids.shape[0]]]
            return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Cancelled()])
