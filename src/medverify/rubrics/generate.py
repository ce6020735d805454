"""``generate_rubric``: the core, plus an optional LLM writer, merged, de-duplicated and reviewed.

The consultation benchmark calls ``await generate_rubric(case, transcript, writer=backend)`` for
every consultation and grades each item against the transcript, so the function must always
return a usable rubric: the deterministic core first (it cannot fail on a valid case), then the
writer's items, checked and capped so that they cannot outweigh the core (their positive points
are limited to ``writer_share`` of the core's), then exact and near duplicates removed with
MiniLM embeddings when available (token overlap otherwise), then a review of coverage and
balance. Every problem on the way is a warning in the result. ``medverify rubrics`` is the
command-line face of this function.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from medverify.backends.base import Backend
from medverify.cases.records import CaseRecord, Transcript
from medverify.errors import ConfigError
from medverify.rubrics.core import CoreOptions, build_core
from medverify.rubrics.records import Origin, Rubric
from medverify.rubrics.validate import dedupe_embeddings, dedupe_tokens, finish_rubric
from medverify.rubrics.writer import write_items

log = logging.getLogger(__name__)

DedupeMode = Literal["auto", "embeddings", "tokens"]


async def generate_rubric(
    case: CaseRecord,
    transcript: Transcript | None = None,
    *,
    writer: Backend | None = None,
    seed: int = 0,
    dedupe: DedupeMode = "auto",
    embedder: Any = None,
    options: CoreOptions | None = None,
    max_writer_items: int = 10,
    writer_share: float = 0.5,
) -> Rubric:
    """The rubric of a case (and of one consultation of it, when a transcript is given).

    Args:
        case: the case record.
        transcript: the consultation to grade; adds transcript-aware items.
        writer: a backend that writes case-specific criteria; ``None`` for the core only.
        seed: the writer's sampling seed (recorded; the core ignores it).
        dedupe: ``embeddings`` (MiniLM), ``tokens`` (word overlap), or ``auto``: embeddings when a
            writer added items and the model is installed, else tokens (core items never need
            embeddings: they are written not to repeat each other).
        embedder: an :class:`~medverify.text.embeddings.Embedder` (default: the shared one).
        options: core item limits.
        max_writer_items: most items taken from the writer.
        writer_share: the writer's positive points may be at most this share of the core's.

    Raises:
        InputError: the case cannot give a rubric, or the transcript is of another case.
        ConfigError: ``dedupe="embeddings"`` without the embedding model installed.
    """
    build = build_core(case, transcript, options)
    items = list(build.items)
    origins: list[Origin] = list(build.origins)
    warnings = list(build.warnings)
    generator = "core+transcript" if transcript is not None else "core"
    writer_added = 0
    if writer is not None:
        generator += "+writer"
        result = await write_items(
            writer, case, items, transcript, seed=seed, max_items=max_writer_items
        )
        warnings += result.warnings
        budget = writer_share * sum(i.points for i in items if i.points > 0)
        used = 0
        capped = 0
        for new in result.items:
            if new.points > 0 and used + new.points > budget:
                capped += 1
                continue
            used += max(new.points, 0)
            items.append(new)
            origins.append("writer")
            writer_added += 1
        if capped:
            warnings.append(
                f"writer: left out {capped} item(s) beyond {writer_share:.0%} of the core's "
                "positive points"
            )
        if not result.ok:
            log.warning("rubric writer failed for %s; using the core only", case.id)

    method = dedupe
    if dedupe == "auto":
        method = "embeddings" if writer_added else "tokens"
    if method == "embeddings":
        try:
            items, origins, removed = await asyncio.to_thread(
                dedupe_embeddings, items, origins, embedder
            )
        except ConfigError as exc:
            if dedupe == "embeddings":
                raise
            warnings.append(f"near-duplicates found by word overlap ({exc})")
            items, origins, removed = dedupe_tokens(items, origins)
    else:
        items, origins, removed = dedupe_tokens(items, origins)
    return finish_rubric(
        case.id,
        items,
        origins,
        removed,
        warnings,
        checks=build.checks,
        generator=generator,
        writer=writer.spec if writer is not None else None,
        seed=seed,
        transcript_aware=transcript is not None,
    )
