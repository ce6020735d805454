"""Chat models behind one async interface: ``await backend.complete(messages, **sampling)``."""

from medverify.backends.base import (
    Backend,
    Completion,
    Message,
    RetryPolicy,
    SamplingParams,
    Usage,
    UsageMeter,
)
from medverify.backends.cache import ResponseCache
from medverify.backends.registry import BackendOptions, make_backend

__all__ = [
    "Backend",
    "BackendOptions",
    "Completion",
    "Message",
    "ResponseCache",
    "RetryPolicy",
    "SamplingParams",
    "Usage",
    "UsageMeter",
    "make_backend",
]
