"""Sampling several replies of a local policy to one conversation, in one batched call.

The search of :mod:`medverify.train.guided_search` asks for a dozen replies per doctor turn;
they are drawn as one batch from one read of the prompt (its cache copied ``n`` times), where
the serving runtime (:class:`~medverify.backends.runtime.Engine`) samples one request at a time.
Prompts are encoded by the runtime's own chat-template code, so what the policy learns on is
exactly what ``local:doctor`` is later shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medverify.backends.base import Message
from medverify.backends.runtime import Engine
from medverify.backends.torch_runtime import cache_keyword


class LocalSampler:
    """Samples from a loaded transformers causal LM.

    Args:
        model: the policy (on CPU or GPU).
        tokenizer: its tokenizer (with a chat template).
        temperature: sampling temperature.
        top_p: nucleus sampling mass.
        seed: torch's seed before every call, advanced per call (a rerun samples the same).
    """

    def __init__(
        self, model: Any, tokenizer: Any, *, temperature: float, top_p: float, seed: int = 0
    ) -> None:
        self.engine = Engine.from_loaded(model, tokenizer, name="policy")
        self.model = model
        self.tokenizer = tokenizer
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.calls = 0

    def sample(
        self,
        messages: Sequence[Message],
        *,
        n: int,
        max_new_tokens: int,
        prefix: str = "",
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        """``n`` replies, each ending at a ``stop`` string.

        By default a question turn (no prefix) ends at its question mark; generation ends once
        every reply has stopped.
        """
        import torch

        ids = self.engine.encode(list(messages))
        if prefix:
            ids += self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        torch.manual_seed(self.seed * 1_000_003 + self.calls)
        self.calls += 1
        extra: dict[str, Any] = {}
        stops = list(stop) if stop is not None else ([] if prefix else ["?"])
        if stops:
            extra = {"stop_strings": stops, "tokenizer": self.tokenizer}
        from transformers import DynamicCache

        prompt = torch.tensor([ids], device=self.model.device)
        inputs = prompt.repeat(n, 1)
        with torch.inference_mode():
            # The prompt is read once and its cache copied n times: num_return_sequences alone
            # would read it n times (2x slower on 2 cores for a 600-token consultation).
            cache = DynamicCache()
            key = cache_keyword(self.model)
            self.model(prompt[:, :-1], use_cache=True, **{key: cache})
            cache.batch_repeat_interleave(n)
            out = self.model.generate(
                inputs,
                attention_mask=torch.ones_like(inputs),
                **{key: cache},
                do_sample=True,
                temperature=self.temperature,
                top_p=self.top_p,
                max_new_tokens=max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                **extra,
            )
        texts = self.tokenizer.batch_decode(out[:, len(ids) :], skip_special_tokens=True)
        return [prefix + t if prefix else t for t in texts]
