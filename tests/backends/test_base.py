import asyncio
import random

import pytest

from medverify.backends.base import (
    Completion,
    Message,
    RetryPolicy,
    SamplingParams,
    backoff_delay,
    request_key,
)
from medverify.backends.cache import ResponseCache
from medverify.backends.mock import MockBackend
from medverify.errors import BackendError, ConfigError, TransientBackendError

FAST = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.01)


class CacheableMock(MockBackend):
    cacheable = True


def test_backoff_is_bounded_and_jittered():
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.5, max_delay_s=4.0)
    rng = random.Random(0)
    delays = [backoff_delay(a, policy, rng) for a in range(10) for _ in range(50)]
    assert all(0.0 <= d <= 4.0 for d in delays)
    first = [backoff_delay(0, policy, rng) for _ in range(200)]
    assert max(first) <= 0.5
    assert len({round(d, 6) for d in first}) > 150  # jitter, not a fixed value
    late = [backoff_delay(8, policy, rng) for _ in range(200)]
    assert max(late) > 2.0  # grows to the cap


async def test_transient_failures_are_retried_then_succeed():
    failures = iter([True, True, False])

    def flaky(messages, params):
        if next(failures):
            raise TransientBackendError("503 from server")
        return "fine"

    backend = MockBackend(flaky, retry=FAST)
    completion = await backend.complete([{"role": "user", "content": "hi"}])
    assert completion.text == "fine"
    assert completion.attempts == 3
    assert backend.usage.retries == 2
    assert backend.usage.calls == 1


async def test_retries_are_bounded_and_failure_is_recorded():
    def always_down(messages, params):
        raise TransientBackendError("connection refused")

    backend = MockBackend(always_down, retry=FAST)
    with pytest.raises(BackendError, match="gave up after 4 attempts: connection refused"):
        await backend.complete([{"role": "user", "content": "hi"}])
    assert backend.calls == 4
    assert backend.usage.failures == 1


async def test_permanent_errors_are_not_retried():
    def broken(messages, params):
        raise BackendError("HTTP 400: bad request")

    backend = MockBackend(broken, retry=FAST)
    with pytest.raises(BackendError, match="HTTP 400"):
        await backend.complete([{"role": "user", "content": "hi"}])
    assert backend.calls == 1


async def test_a_call_that_hangs_times_out_and_is_retried():
    backend = MockBackend(
        delay_s=10.0, timeout_s=0.05, retry=RetryPolicy(max_attempts=2, base_delay_s=0.0)
    )
    with pytest.raises(BackendError, match=r"no reply within 0.05 s"):
        await backend.complete([{"role": "user", "content": "hi"}])
    assert backend.calls == 2


class SwallowsCancellation(MockBackend):
    """A client library that turns a cancellation into its own transient error."""

    async def _generate(self, messages, params):
        self.calls += 1
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise TransientBackendError("connection reset") from None
        raise AssertionError("not reached")


async def test_a_cancellation_swallowed_by_an_attempt_is_not_retried():
    """Ctrl-C cancels the run; an attempt that hides it must not turn into a retry (exit 0)."""
    backend = SwallowsCancellation(retry=RetryPolicy(max_attempts=5, base_delay_s=0.0))
    call = asyncio.create_task(backend.complete([{"role": "user", "content": "hi"}]))
    await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert backend.calls == 1


async def test_a_timeout_alone_is_still_retried_after_the_fix():
    backend = MockBackend(
        delay_s=10.0, timeout_s=0.02, retry=RetryPolicy(max_attempts=3, base_delay_s=0.0)
    )
    with pytest.raises(BackendError, match="gave up after 3 attempts"):
        await backend.complete([{"role": "user", "content": "hi"}])
    assert backend.calls == 3


async def test_concurrency_limit_is_respected():
    class Tracking(MockBackend):
        in_flight = 0
        peak = 0

        async def _generate(self, messages, params):
            Tracking.in_flight += 1
            Tracking.peak = max(Tracking.peak, Tracking.in_flight)
            try:
                await asyncio.sleep(0.01)
                return Completion(text="ok")
            finally:
                Tracking.in_flight -= 1

    backend = Tracking(concurrency=4)
    results = await asyncio.gather(
        *[backend.complete([{"role": "user", "content": str(i)}]) for i in range(40)]
    )
    assert len(results) == 40
    assert Tracking.peak == 4


async def test_identical_requests_are_answered_from_cache(tmp_path):
    cache_path = tmp_path / "c.sqlite"
    backend = CacheableMock(cache=ResponseCache(cache_path))
    msgs = [{"role": "user", "content": "what is a fever?"}]
    first = await backend.complete(msgs, max_tokens=20)
    second = await backend.complete(msgs, max_tokens=20)
    assert backend.calls == 1
    assert not first.cached and second.cached
    assert second.text == first.text
    assert backend.usage.cache_hits == 1
    # A different seed is a different request (n-repeats are not collapsed).
    await backend.complete(msgs, max_tokens=20, seed=1)
    assert backend.calls == 2
    await backend.aclose()
    # The cache outlives the process's backend object.
    again = CacheableMock(cache=ResponseCache(cache_path))
    third = await again.complete(msgs, max_tokens=20)
    assert third.cached and again.calls == 0


async def test_cache_is_off_for_scripts_and_mocks(tmp_path):
    backend = MockBackend(cache=ResponseCache(tmp_path / "c.sqlite"))
    assert backend.cache is None


def test_request_key_depends_on_everything_that_shapes_a_reply():
    msgs = [Message(role="user", content="a")]
    base = request_key("m", msgs, SamplingParams())
    assert base == request_key("m", msgs, SamplingParams())
    assert base != request_key("m2", msgs, SamplingParams())
    assert base != request_key("m", [Message(role="user", content="b")], SamplingParams())
    assert base != request_key("m", msgs, SamplingParams(temperature=0.7))
    assert base != request_key("m", msgs, SamplingParams(max_tokens=7))


async def test_bad_requests_are_config_errors():
    backend = MockBackend()
    with pytest.raises(ConfigError, match="message 0 field 'role'"):
        await backend.complete([{"role": "robot", "content": "x"}])
    with pytest.raises(ConfigError, match="at least one message"):
        await backend.complete([])
    with pytest.raises(ConfigError, match="sampling argument 'temperature'"):
        await backend.complete([{"role": "user", "content": "x"}], temperature=9)
    with pytest.raises(ConfigError, match="sampling argument 'frequency'"):
        await backend.complete([{"role": "user", "content": "x"}], frequency=1)
    with pytest.raises(ConfigError, match="concurrency"):
        MockBackend(concurrency=0)
