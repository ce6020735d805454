"""Micro-batching for a local model: concurrent greedy requests share one ``generate`` call.

A torch model is not safe to call from two threads at once, so one worker thread drives the
:class:`~medverify.backends.runtime.Engine`. Greedy requests that queue up while it is busy and
share ``max_tokens`` and ``stop`` are generated together (up to ``max_batch_size``,
left-padded). On CPU in float32 this gave each request exactly the tokens it gets alone in every
check so far (``tests/backends/test_hf.py``, ``tests/deploy/test_deploy_serve.py``; 8/8 prompts x
64 tokens in ``benchmarks/local_generation.py``) at several times the throughput of single
requests on 2 cores. Padding changes the shapes of the reductions, so a near tie could in
principle flip, more likely in bfloat16 on a GPU (not measured); ``max_batch_size=1`` keeps
bit-exact single-request replay. A request alone goes through
:meth:`~medverify.backends.runtime.Engine.generate_ids` (with the engine's draft, if any);
sampled and streamed requests are always generated alone, so a seed alone determines a text.

Cancelling a request's future (``asyncio.wrap_future`` does when the awaiting task is cancelled,
e.g. because the server's client disconnected) drops it while queued and, once running, stops
its generation at the next token (:class:`Job`); it then fails with ``CancelledError``.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from medverify.backends.base import Message, SamplingParams
from medverify.errors import ConfigError

if TYPE_CHECKING:
    from medverify.backends.runtime import Engine

log = logging.getLogger(__name__)

_STOP = object()


class BatchStats(BaseModel):
    """How the micro-batcher grouped requests (for tests, benchmarks and run logs)."""

    batches: int = 0
    requests: int = 0
    max_batch: int = 0
    #: requests cancelled while they were being generated (stopped early, result dropped)
    abandoned: int = 0


class Job(concurrent.futures.Future[Any]):
    """A queued request's future; :meth:`cancel` also stops it while it is generating.

    ``concurrent.futures.Future.cancel`` cannot cancel running work; here it additionally sets
    :attr:`abandoned`, which the engine polls between tokens, and the future then ends with
    ``CancelledError`` rather than a truncated reply.
    """

    def __init__(self) -> None:
        super().__init__()
        self.abandoned = threading.Event()

    def cancel(self) -> bool:
        """Cancel a queued request, or stop a running one at its next token."""
        self.abandoned.set()
        return super().cancel()

    def is_abandoned(self) -> bool:
        """Whether the request was cancelled (the engine's between-token check)."""
        return self.abandoned.is_set()


@dataclass
class _Request:
    messages: list[Message]
    params: SamplingParams
    on_text: Callable[[str], None] | None = None
    prompt: list[int] | None = None
    future: Job = field(default_factory=Job)

    @property
    def batch_key(self) -> tuple[int, tuple[str, ...]] | None:
        """Requests with equal keys may share a batch; sampled and streamed ones never do."""
        if self.params.temperature > 0 or self.on_text is not None:
            return None
        return (self.params.max_tokens, self.params.stop)


class Batcher:
    """One worker thread generating an engine's queued requests, greedy ones in batches.

    Args:
        engine: the engine (loaded on the worker's first request if not yet).
        max_batch_size: most greedy requests generated together; 1 turns batching off.
        batch_window_s: after an idle spell, how long the worker waits for more requests to
            arrive before starting a batch (negligible against generation time).
        use_draft: let a request generated alone use the engine's draft.
        name: names the worker thread and log lines.

    Raises:
        ConfigError: ``max_batch_size`` below 1.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch_size: int = 8,
        batch_window_s: float = 0.01,
        use_draft: bool = True,
        name: str | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_s
        self.use_draft = use_draft
        self.name = name or engine.name
        self.stats = BatchStats()
        #: sizes of the batches formed from requests that could share one (greedy, not streamed;
        #: none when batching is off)
        self.sizes: list[int] = []
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    def submit(
        self,
        messages: list[Message],
        params: SamplingParams,
        *,
        on_text: Callable[[str], None] | None = None,
        prompt: list[int] | None = None,
    ) -> Job:
        """Queue one request (thread-safe); ``on_text`` streams its text and keeps it alone.

        ``prompt``: the messages already encoded (:meth:`Engine.encode`), so that the worker does
        not tokenize. Cancelling the future before the worker takes the request drops it;
        cancelling it later stops its generation at the next token.
        """
        request = _Request(list(messages), params, on_text, prompt)
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._worker_main, name=f"generate {self.name}", daemon=True
                )
                self._worker.start()
            self._queue.put(request)
        return request.future

    def close(self) -> None:
        """Finish the queued requests and stop the worker thread (blocking)."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            self._queue.put(_STOP)
            worker.join()

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
                log.exception("%s: the generation worker failed", self.name)
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
        self.sizes.append(len(batch))
        return batch

    def _cancel_kwargs(self, method: str, cancelled: Any) -> dict[str, Any]:
        """``{"cancelled": ...}`` when the engine's ``method`` polls it (any runtime Engine)."""
        try:
            params = inspect.signature(getattr(self.engine, method)).parameters
        except (TypeError, ValueError):
            return {}
        return {"cancelled": cancelled} if "cancelled" in params else {}

    def _run_batch(self, batch: list[_Request]) -> None:
        if not batch:
            return
        prompts: list[list[int]] = []
        live: list[_Request] = []
        for req in batch:
            try:
                prompts.append(
                    req.prompt if req.prompt is not None else self.engine.encode(req.messages)
                )
            except Exception as exc:
                req.future.set_exception(exc)
            else:
                live.append(req)
        if not live:
            return
        first = live[0]
        try:
            if len(live) == 1:
                extra = self._cancel_kwargs("generate_ids", first.future.is_abandoned)
                results = [
                    self.engine.generate_ids(
                        prompts[0],
                        first.params,
                        on_text=first.on_text,
                        use_draft=self.use_draft,
                        **extra,
                    )
                ]
            else:
                cancelled = [r.future.is_abandoned for r in live]
                extra = self._cancel_kwargs("generate_many_ids", cancelled)
                results = self.engine.generate_many_ids(prompts, first.params, **extra)
        except BaseException as exc:
            log.debug("%s: generation failed: %r", self.name, exc)
            for req in live:
                req.future.set_exception(exc)
            return
        self.stats.batches += 1
        self.stats.requests += len(live)
        self.stats.max_batch = max(self.stats.max_batch, len(live))
        for req, generation in zip(live, results, strict=True):
            if req.future.is_abandoned():
                self.stats.abandoned += 1
                log.info(
                    "%s: request cancelled by its client; stopped after %d tokens",
                    self.name,
                    generation.stats.completion_tokens,
                )
                req.future.set_exception(concurrent.futures.CancelledError())
            else:
                req.future.set_result(generation)
