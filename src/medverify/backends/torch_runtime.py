"""torch on a small machine: optional import, thread counts, quiet loading.

The core install has no torch, so every torch import goes through :func:`import_torch`, which
turns a missing install into an actionable :class:`~medverify.errors.ConfigError`. Thread counts
follow the cores this process may use: on 2 cores, one thread too many halved throughput.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Iterator
from typing import Any

from medverify.errors import ConfigError

log = logging.getLogger(__name__)

#: How to get torch and transformers; shown when they are missing.
LOCAL_EXTRA_HINT = "pip install torch==2.13.0 && pip install 'medverify[local]'"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError, AttributeError):
        return False


def require_local_extra(backend: str = "local") -> None:
    """Fail with an actionable message when torch or transformers is not installed.

    Checks without importing (importing torch takes seconds), so a backend can fail fast when it
    is constructed rather than after the run has started.

    Raises:
        ConfigError: torch or transformers cannot be imported.
    """
    if not (_importable("torch") and _importable("transformers")):
        raise ConfigError(f"the {backend} backend needs the 'local' extra: {LOCAL_EXTRA_HINT}")


def import_torch(backend: str = "local") -> tuple[Any, Any]:
    """Import and return ``(torch, transformers)``, or raise :class:`ConfigError` with the fix."""
    try:
        import torch
        import transformers
    except ImportError:
        raise ConfigError(
            f"the {backend} backend needs the 'local' extra: {LOCAL_EXTRA_HINT}"
        ) from None
    return torch, transformers


def cpu_threads() -> int:
    """The number of torch threads to use: ``MEDVERIFY_THREADS`` or the cores this process may use.

    Raises:
        ConfigError: ``MEDVERIFY_THREADS`` is set but not a positive integer.
    """
    env = os.environ.get("MEDVERIFY_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"MEDVERIFY_THREADS must be a positive integer, got {env!r}")
        return n
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def configure_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to ``threads`` (default :func:`cpu_threads`), inter-op to 1.

    The inter-op pool can only be sized before torch has run parallel work; after that the call is
    skipped (and logged at debug level) instead of failing.

    Returns:
        The intra-op thread count now in effect.
    """
    torch, _ = import_torch()
    n = threads or cpu_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    try:
        if torch.get_num_interop_threads() != 1:
            torch.set_num_interop_threads(1)
    except RuntimeError as exc:
        log.debug("could not set torch inter-op threads: %s", exc)
    return torch.get_num_threads()


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Hide transformers' per-load progress bars (they clutter the CLI's own progress display)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def dtype_kwarg(transformers: Any) -> str:
    """The dtype keyword of ``from_pretrained``: ``torch_dtype`` before transformers 4.56."""
    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
