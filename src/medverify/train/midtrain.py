"""Mid-training: continued pre-training on a mixture of local corpora, streamed and packed.

Baichuan-M2 adapts its base model to the medical domain before SFT with a medical : general :
math mix of 2:2:1. Here each corpus is a ``datasets`` stream (local ``.txt``/``.jsonl`` files,
or the shipped case texts and HealthBench conversations), the streams are interleaved with
probabilities proportional to the configured ratio (categories with no corpus are dropped and
the rest renormalised, with a warning), and TRL's ``SFTTrainer`` trains on packed sequences of
plain text (LoRA or full). Runs as the ``mid_train`` stage of ``medverify train pipeline``.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator
from typing import Any

from medverify.errors import ConfigError
from medverify.train.config import CorpusSource, MidTrainSettings
from medverify.train.data import load_case_set, load_healthbench

log = logging.getLogger(__name__)


def bundled_texts(name: str) -> Iterator[str]:
    """Plain texts of a shipped corpus: ``cases`` (case vignettes) or ``healthbench``."""
    if name == "cases":
        for case in load_case_set():
            facts = " ".join(f.text for f in case.all_facts())
            yield f"{case.chief_complaint} {facts} Diagnosis: {case.diagnosis}."
    elif name == "healthbench":
        for ex in load_healthbench():
            yield "\n".join(f"{t.role}: {t.content}" for t in ex.prompt)
    else:
        raise ConfigError(f"unknown bundled corpus 'bundled:{name}' (use cases or healthbench)")


def corpus_stream(source: CorpusSource) -> Any:
    """A ``datasets.IterableDataset`` with one ``text`` column for one corpus."""
    from datasets import Dataset, load_dataset

    if source.path.startswith("bundled:"):
        texts = list(bundled_texts(source.path.split(":", 1)[1]))
        return Dataset.from_dict({"text": texts}).to_iterable_dataset()
    files = sorted(glob.glob(source.path))
    if not files:
        raise ConfigError(f"mid-training corpus {source.path!r}: no such file")
    kind = "json" if files[0].endswith((".jsonl", ".json")) else "text"
    stream = load_dataset(kind, data_files=files, split="train", streaming=True)
    if kind == "json" and source.text_field != "text":
        stream = stream.rename_column(source.text_field, "text")
    return stream.select_columns(["text"])


def mixture_probabilities(settings: MidTrainSettings) -> dict[str, float]:
    """Sampling probability of each category that has a corpus (ratio renormalised)."""
    present = {s.category for s in settings.sources}
    weights = {c: w for c, w in settings.ratio.items() if c in present and w > 0}
    missing = sorted(c for c, w in settings.ratio.items() if w > 0 and c not in present)
    if missing:
        log.warning("no corpus for %s: mixing the other categories in their ratio", missing)
    if not weights:
        raise ConfigError("mid-training: no corpus for any category with a positive ratio")
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()}


def mixture(settings: MidTrainSettings, seed: int = 0) -> Any:
    """The interleaved stream: each category's corpora concatenated, categories by ratio."""
    from datasets import concatenate_datasets, interleave_datasets

    probs = mixture_probabilities(settings)
    streams, weights = [], []
    for category, p in probs.items():
        parts = [corpus_stream(s) for s in settings.sources if s.category == category]
        streams.append(parts[0] if len(parts) == 1 else concatenate_datasets(parts))
        weights.append(p)
    if len(streams) == 1:
        return streams[0]
    return interleave_datasets(
        streams, probabilities=weights, seed=seed, stopping_strategy="all_exhausted"
    )
