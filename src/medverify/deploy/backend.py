"""A deployed model (fp, quantized, with or without its draft) as a medverify backend.

``medverify deploy report`` grades each deployment configuration with the same pipeline as any
other model, and its consultation-benchmark hook receives a backend; this gives an
:class:`~medverify.deploy.engine.Engine` that interface without a server in between, through the
same engine-backed backend as ``hf:`` models. Replies are not cached (a deployment is measured,
not replayed), requests go one at a time by default (each with the draft when asked), and
closing the backend leaves the engine, which the report shares between variants, loaded.
"""

from __future__ import annotations

from typing import Any

from medverify.backends import hf
from medverify.deploy.engine import Engine


class EngineBackend(hf.EngineBackend):
    """A deployment :class:`Engine` behind the backend interface.

    Args:
        engine: the engine (loaded on first use).
        spec: recorded as the backend's spec (default ``deploy:<name>``).
        use_draft: generate with the engine's draft when it has one.
        **kwargs: passed to :class:`medverify.backends.hf.EngineBackend` (concurrency, default 1;
            timeout_s; retry; max_batch_size).
    """

    def __init__(
        self, engine: Engine, *, spec: str | None = None, use_draft: bool = True, **kwargs: Any
    ) -> None:
        kwargs.setdefault("concurrency", 1)
        super().__init__(
            engine, spec=spec or f"deploy:{engine.name}", use_draft=use_draft, **kwargs
        )
        self.engine: Engine = engine

    def identity(self) -> str:
        """The target and draft directories."""
        return f"deploy:{self.engine.target_path}:{self.engine.draft_path}:{self.use_draft}"
