"""Token usage per backend role and a rough cost estimate, so a user sees what a run costs.

Prices are USD per million tokens (input, output) as listed publicly by OpenAI in 2025; they
change, so the estimate is labelled as such. Local, scripted and self-hosted models cost 0 here
(the hardware is the user's); an unknown hosted model gives ``None`` rather than a guess.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from medverify.backends.base import Backend, UsageMeter
from medverify.runs.store import RunStore

#: ``progress(name, total)`` returns the callback that advances that bar.
Progress = Callable[[str, int], Callable[..., None]]

PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
}
_FREE_KINDS = ("local", "hf", "script", "mock")


def estimate_cost(spec: str, usage: UsageMeter, *, base_url: str | None = None) -> float | None:
    """USD for the tokens a backend used; 0 for local ones, ``None`` when the price is unknown."""
    kind, _, name = spec.partition(":")
    if kind in _FREE_KINDS:
        return 0.0
    if kind == "openai":
        if base_url and "api.openai.com" not in base_url:
            return 0.0  # self-hosted (vLLM, SGLang, llama.cpp): no per-token price
        model = name.split("/")[-1]
        for known in sorted(PRICES_PER_MTOK, key=len, reverse=True):
            if model == known or model.startswith(known + "-20"):
                price_in, price_out = PRICES_PER_MTOK[known]
                return round(
                    (usage.prompt_tokens * price_in + usage.completion_tokens * price_out) / 1e6, 6
                )
    return None


def usage_record(backend: Backend) -> dict[str, Any]:
    """A backend's usage this session, with its spec and endpoint (for the cost estimate)."""
    return {
        "spec": backend.spec,
        "base_url": getattr(backend, "base_url", None),
        "usage": backend.usage.model_dump(),
    }


def sum_usage(
    sessions: Iterable[dict[str, dict[str, Any]]],
) -> tuple[dict[str, UsageMeter], list[tuple[str, UsageMeter, str | None]]]:
    """Usage per role summed over the sessions of a run, and (spec, usage, url) for the cost."""
    totals: dict[str, UsageMeter] = {}
    endpoints: dict[str, tuple[str, str | None]] = {}
    for session in sessions:
        for role, record in session.items():
            meter = totals.setdefault(role, UsageMeter())
            for field, value in record["usage"].items():
                setattr(meter, field, getattr(meter, field) + value)
            endpoints[role] = (record["spec"], record["base_url"])
    parts = [(endpoints[role][0], meter, endpoints[role][1]) for role, meter in totals.items()]
    return totals, parts


def total_cost(parts: Sequence[tuple[str, UsageMeter, str | None]]) -> float | None:
    """Sum of per-backend cost estimates; ``None`` if any is unknown."""
    total = 0.0
    for spec, meter, base_url in parts:
        cost = estimate_cost(spec, meter, base_url=base_url)
        if cost is None:
            return None
        total += cost
    return round(total, 6)


class SessionUsage:
    """This session's usage per backend role, kept current in the run store.

    Saved at most once a second while the job runs and once more at its end, however it ends
    (an error, Ctrl-C), so the calls of an interrupted session still count in the usage of the
    run that finishes the job.
    """

    def __init__(self, store: RunStore, *, every_s: float = 1.0) -> None:
        self.store = store
        self.key = f"{time.time():.6f}"
        self.every_s = every_s
        self.backends: dict[str, Backend] = {}
        self._saved_at = 0.0

    def track(self, role: str, backend: Backend | None) -> None:
        """Count this backend's calls under ``role``."""
        if backend is not None:
            self.backends[role] = backend

    def save(self, *, force: bool = False) -> None:
        """Write the session's usage (unless written less than ``every_s`` ago)."""
        now = time.monotonic()
        if not force and now - self._saved_at < self.every_s:
            return
        self._saved_at = now
        record = {role: usage_record(backend) for role, backend in self.backends.items()}
        self.store.put("usage", self.key, record)

    def progress(self, inner: Progress | None) -> Progress:
        """Progress callbacks that also save the usage as units finish."""

        def add(name: str, total: int) -> Callable[..., None]:
            advance = inner(name, total) if inner is not None else None

            def step(*args: Any, **kwargs: Any) -> None:
                if advance is not None:
                    advance(*args, **kwargs)
                self.save()

            return step

        return add
