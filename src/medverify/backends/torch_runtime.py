"""torch on a small machine: optional import, thread counts, quiet loading.

The core install has no torch, so every torch import goes through :func:`import_torch`, which
turns a missing install into an actionable :class:`~medverify.errors.ConfigError`. Thread counts
follow the cores this process may use: on 2 cores, one thread too many halved throughput.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import inspect
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
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


def usable_cores() -> list[int]:
    """The CPUs this process may run on (all of them where affinity is unknown)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return list(range(os.cpu_count() or 1))


def _cpu_ticks(cpus: set[int]) -> tuple[int, int] | None:
    """(idle, total) ticks summed over ``cpus`` from /proc/stat, or None where unreadable."""
    idle = total = 0
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        ticks = [int(v) for v in rest.split()]
        idle += ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
        total += sum(ticks[:8])  # guest time is already counted in user
    return (idle, total) if total else None


def busy_cores(interval: float = 0.1) -> float:
    """How many of this process's cores other work keeps busy now (0.0 where unknown).

    Two reads of /proc/stat ``interval`` seconds apart while this process sleeps, so its own
    work is not counted. Only the CPUs of this process's affinity count: in a container pinned
    to two cores of a large host, the host's other cores are not ours to weigh.
    """
    cpus = set(usable_cores())
    before = _cpu_ticks(cpus)
    if before is None:
        return 0.0
    time.sleep(interval)
    after = _cpu_ticks(cpus)
    if after is None or after[1] <= before[1]:
        return 0.0
    idle, total = after[0] - before[0], after[1] - before[1]
    return max(0.0, min(1.0, 1.0 - idle / total)) * len(cpus)


def cpu_threads() -> int:
    """The number of torch threads to use: ``MEDVERIFY_THREADS``, else the cores not busy now.

    torch's thread pool waits at every operation for its slowest thread, and a thread that
    shares its core with another process is slow: on 2 cores with one busy-looping process,
    ``chat --max-tokens 48`` took 13.8 s with two threads and 10.5 s with one (a user reported
    70 s against 15 s on a busier machine; ``benchmarks/cpu_threads.py``). So the default is
    the usable cores minus those other work keeps busy when the model is loaded (at least 1);
    on an idle machine that is every core.

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
    cores = len(usable_cores())
    taken = int(busy_cores() + 0.5)
    if taken:
        log.debug("%d of %d cores busy: using %d torch threads", taken, cores, cores - taken)
    return max(1, cores - taken)


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


def cache_keyword(model: Any) -> str:
    """The KV-cache argument's name: ``cache`` from transformers 5.24, ``past_key_values`` before.

    The old name still works in 5.x but warns on every call (thousands of lines in a training
    log), and goes in 6.0.
    """
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def checkpointing_kwarg(enabled: bool) -> dict[str, bool]:
    """A TRL config's checkpointing switch: ``activation_checkpointing`` from transformers 5.25.

    Before it the name was ``gradient_checkpointing``, which still works and warns whenever a
    config is built (every training round).
    """
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    key = (
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing"
    )
    return {key: enabled}
