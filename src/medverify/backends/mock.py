"""``mock`` — a deterministic in-process backend, so whole pipelines run in tests without a model.

By default it echoes the last user message; tests pass any function of the messages to play a
patient, a grader that answers JSON verdicts, or a model that fails on cue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from medverify.backends.base import Backend, Completion, Message, SamplingParams, Usage

Responder = Callable[[list[Message], SamplingParams], str]


def echo(messages: list[Message], params: SamplingParams) -> str:
    """Echo the last user message."""
    last = next((m.content for m in reversed(messages) if m.role == "user"), "")
    return f"echo: {last}"


class MockBackend(Backend):
    """Answers with ``responder(messages, params)``, optionally after a delay.

    The responder may raise :class:`~medverify.errors.TransientBackendError` to exercise retries.
    """

    cacheable = False

    def __init__(self, responder: Responder = echo, *, delay_s: float = 0.0, **kwargs: Any) -> None:
        kwargs.setdefault("concurrency", 1024)
        super().__init__(kwargs.pop("spec", "mock"), **kwargs)
        self.responder = responder
        self.delay_s = delay_s
        self.calls = 0

    async def _generate(self, messages: list[Message], params: SamplingParams) -> Completion:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        text = self.responder(messages, params)
        return Completion(
            text=text,
            usage=Usage(
                prompt_tokens=sum(len(m.content.split()) for m in messages),
                completion_tokens=len(text.split()),
            ),
            model="mock",
            finish_reason="stop",
        )
