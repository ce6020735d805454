"""medverify: the verifier system for medical language models.

A patient simulator, a clinical rubrics generator, graders, HealthBench, training rewards and
deployment checks, all on one async backend interface. Start with ``medverify demo``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("medverify")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

from medverify.backends import (
    Backend,
    BackendOptions,
    Completion,
    Message,
    SamplingParams,
    make_backend,
)
from medverify.errors import ConfigError, InputError, MedverifyError
from medverify.runs import RunStore

__all__ = [
    "Backend",
    "BackendOptions",
    "Completion",
    "ConfigError",
    "InputError",
    "MedverifyError",
    "Message",
    "RunStore",
    "SamplingParams",
    "__version__",
    "make_backend",
]
