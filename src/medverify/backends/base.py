"""One async chat interface for every model medverify talks to.

The doctor under test, the simulated patient, the grader and the rubric writer are all a
:class:`Backend`: ``await backend.complete(messages, **sampling)`` returns a :class:`Completion`
with the text, token usage and latency. Everything that must be done once and right for all of
them lives here rather than in each implementation: validating the request, the response cache,
the concurrency limit, the per-call timeout and bounded retries with exponential backoff and full
jitter. Implementations only write :meth:`Backend._generate` and raise
:class:`~medverify.errors.TransientBackendError` for failures worth another try.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medverify.errors import BackendError, ConfigError, TransientBackendError

if TYPE_CHECKING:
    from medverify.backends.cache import ResponseCache

log = logging.getLogger(__name__)

if sys.version_info >= (3, 11):
    _timeout = asyncio.timeout
else:  # pragma: no cover - Python 3.10

    @contextlib.asynccontextmanager
    async def _timeout(delay: float | None) -> AsyncIterator[None]:
        task = asyncio.current_task()
        assert task is not None
        handle = (
            None if delay is None else asyncio.get_running_loop().call_later(delay, task.cancel)
        )
        try:
            yield
        except asyncio.CancelledError:
            if handle is not None and handle.when() <= asyncio.get_running_loop().time():
                raise TimeoutError from None
            raise
        finally:
            if handle is not None:
                handle.cancel()


def _raise_if_cancelled() -> None:
    """Re-raise a cancellation (Ctrl-C) that a failed attempt swallowed, instead of retrying.

    A cancellation that lands as the per-call timeout fires, or inside a client library that
    turns it into its own error, reaches the retry loop as a timeout or a transient failure;
    retrying then loses the user's Ctrl-C (the run finished and exited 0). The task still
    counts the request (``Task.cancelling``), so the loop can tell.
    """
    task = asyncio.current_task()
    if task is not None and sys.version_info >= (3, 11) and task.cancelling():
        raise asyncio.CancelledError


Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: str


class SamplingParams(BaseModel):
    """How to sample. Greedy by default so that evaluation is reproducible.

    ``seed`` doubles as the repeat index for repeated sampling: two requests that differ only in
    seed are different requests for the cache, so ``--n-repeats`` is not collapsed into one call.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, ge=1, le=131072)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: tuple[str, ...] = ()


class Usage(BaseModel):
    """Token counts reported by the backend (or counted by its tokenizer)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


class Completion(BaseModel):
    """What one call returned, with enough bookkeeping to account for cost and speed."""

    text: str
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    model: str = ""
    finish_reason: str | None = None
    cached: bool = False
    attempts: int = 1


class RetryPolicy(BaseModel):
    """Bounded retries: ``max_attempts`` calls in all, never an endless loop."""

    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(5, ge=1, le=50)
    base_delay_s: float = Field(0.5, ge=0.0)
    max_delay_s: float = Field(30.0, ge=0.0)


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full-jitter exponential backoff: uniform in ``[0, min(max, base * 2**attempt)]``.

    Full jitter (rather than a fixed doubling) keeps hundreds of concurrent callers that hit the
    same rate limit from retrying in lockstep.
    """
    ceiling = min(policy.max_delay_s, policy.base_delay_s * (2**attempt))
    return rng.uniform(0.0, ceiling)


class UsageMeter(BaseModel):
    """Running totals for one backend, written into every run's results."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, completion: Completion) -> None:
        """Count one finished call."""
        if completion.cached:
            self.cache_hits += 1
            return
        self.calls += 1
        self.retries += completion.attempts - 1
        self.prompt_tokens += completion.usage.prompt_tokens
        self.completion_tokens += completion.usage.completion_tokens


MessagesLike = Sequence[Message | dict[str, Any]]


def to_messages(messages: MessagesLike) -> list[Message]:
    """Validate chat messages given as records or plain dicts."""
    out = []
    for i, m in enumerate(messages):
        try:
            out.append(m if isinstance(m, Message) else Message.model_validate(m))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"message {i} field '{field}': {err['msg']}") from None
    if not out:
        raise ConfigError("a chat request needs at least one message")
    return out


def request_key(identity: str, messages: Sequence[Message], params: SamplingParams) -> str:
    """A stable hash of everything that determines a reply (never includes credentials)."""
    payload = {
        "backend": identity,
        "messages": [m.model_dump() for m in messages],
        "sampling": params.model_dump(mode="json"),
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


class Backend(ABC):
    """A chat model. Subclasses implement :meth:`_generate`; callers use :meth:`complete`.

    Args:
        spec: the spec string the user gave (``openai:gpt-4.1``), recorded in results.
        concurrency: most calls in flight at once through this object.
        timeout_s: limit for one attempt; ``None`` for no limit (local CPU generation).
        retry: how often and how patiently to retry transient failures.
        cache: response cache; identical requests are answered from it without a call.
    """

    #: Whether identical requests may be answered from the cache. Off for backends whose reply
    #: is cheap and must not be frozen (scripts, mocks).
    cacheable: bool = True

    def __init__(
        self,
        spec: str,
        *,
        concurrency: int = 8,
        timeout_s: float | None = 120.0,
        retry: RetryPolicy | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"concurrency must be at least 1, got {concurrency}")
        self.spec = spec
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.cache = cache if self.cacheable else None
        self.usage = UsageMeter()
        self._semaphore: asyncio.Semaphore | None = None
        self._rng = random.Random()

    def identity(self) -> str:
        """What identifies this model's replies in the cache; override to add more."""
        return self.spec

    async def complete(self, messages: MessagesLike, **sampling: Any) -> Completion:
        """Answer a chat request, from the cache when possible, retrying transient failures.

        Raises:
            ConfigError: the messages or sampling arguments are invalid.
            BackendError: the call failed for good (after ``retry.max_attempts`` attempts).
        """
        msgs = to_messages(messages)
        try:
            params = SamplingParams(**sampling)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"sampling argument '{field}': {err['msg']}") from None
        key = request_key(self.identity(), msgs, params) if self.cache is not None else ""
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                completion = hit.model_copy(update={"cached": True})
                self.usage.add(completion)
                return completion
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.concurrency)
        async with self._semaphore:
            completion = await self._with_retries(msgs, params)
        self.usage.add(completion)
        if self.cache is not None:
            self.cache.put(key, completion)
        return completion

    async def _with_retries(self, msgs: list[Message], params: SamplingParams) -> Completion:
        last: TransientBackendError | None = None
        for attempt in range(self.retry.max_attempts):
            start = time.perf_counter()
            try:
                # asyncio.timeout, unlike wait_for, does not wrap the call in a new task: at
                # hundreds of calls in flight that task was a large share of our overhead.
                async with _timeout(self.timeout_s):
                    completion = await self._generate(msgs, params)
            except TimeoutError:
                last = TransientBackendError(
                    f"no reply within {self.timeout_s:g} s", spec=self.spec
                )
            except TransientBackendError as exc:
                last = exc
            else:
                return completion.model_copy(
                    update={
                        "attempts": attempt + 1,
                        "latency_s": completion.latency_s or time.perf_counter() - start,
                    }
                )
            _raise_if_cancelled()
            if attempt + 1 < self.retry.max_attempts:
                delay = backoff_delay(attempt, self.retry, self._rng)
                if last.retry_after_s is not None:
                    delay = max(delay, min(last.retry_after_s, self.retry.max_delay_s))
                log.debug(
                    "%s: attempt %d failed (%s), retrying in %.2fs",
                    self.spec,
                    attempt + 1,
                    last,
                    delay,
                )
                await asyncio.sleep(delay)
        self.usage.failures += 1
        assert last is not None
        raise BackendError(
            f"gave up after {self.retry.max_attempts} attempts: {last.reason}", spec=self.spec
        )

    @abstractmethod
    async def _generate(self, messages: list[Message], params: SamplingParams) -> Completion:
        """Make one attempt. Raise TransientBackendError for failures worth retrying."""

    async def aclose(self) -> None:
        """Release connections, threads or models held by this backend."""
        if self.cache is not None:
            self.cache.close()

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
