"""A deployed model (fp, quantized, with or without its draft) as a medverify backend.

``medverify deploy report`` grades each deployment configuration with the same pipeline as any
other model, and its consultation-benchmark hook receives a backend; this adapter gives an
:class:`~medverify.deploy.engine.Engine` that interface without a server in
between. Replies are not cached (a deployment is measured, not replayed).
"""

from __future__ import annotations

import asyncio
from typing import Any

from medverify.backends.base import Backend, Completion, Message, SamplingParams, Usage
from medverify.deploy.engine import Engine


class EngineBackend(Backend):
    """An :class:`Engine` behind the backend interface.

    Args:
        engine: the engine (loaded on first use).
        spec: recorded as the backend's spec (default ``deploy:<name>``).
        use_draft: generate with the engine's draft when it has one.
        **kwargs: passed to :class:`Backend` (concurrency, timeout_s, retry).
    """

    cacheable = False

    def __init__(
        self, engine: Engine, *, spec: str | None = None, use_draft: bool = True, **kwargs: Any
    ) -> None:
        kwargs.setdefault("timeout_s", None)
        kwargs.setdefault("concurrency", 1)
        super().__init__(spec or f"deploy:{engine.name}", **kwargs)
        self.engine = engine
        self.use_draft = use_draft

    def identity(self) -> str:
        """The target and draft directories."""
        return f"deploy:{self.engine.target_path}:{self.engine.draft_path}:{self.use_draft}"

    async def _generate(self, messages: list[Message], params: SamplingParams) -> Completion:
        gen = await asyncio.to_thread(
            self.engine.generate, messages, params, use_draft=self.use_draft
        )
        return Completion(
            text=gen.text,
            usage=Usage(
                prompt_tokens=gen.stats.prompt_tokens,
                completion_tokens=gen.stats.completion_tokens,
            ),
            model=self.engine.name,
            finish_reason=gen.stats.finish_reason,
        )
