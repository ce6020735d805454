"""Clinical rubrics: weighted, checkable criteria for a case record and a consultation.

``core_rubric(case, transcript=None)`` is the deterministic core (no model);
``await generate_rubric(case, transcript, writer=backend, seed=0)`` adds case-specific criteria
from an LLM writer, validated and merged, falling back to the core with a warning when the writer
fails. Both return a :class:`Rubric` whose ``items`` are HealthBench rubric items tagged with
one ``dimension:`` and one ``axis:`` each. Command: ``medverify rubrics --case ID``.
"""

from __future__ import annotations

from medverify.rubrics.core import CoreOptions, core_rubric
from medverify.rubrics.generate import generate_rubric
from medverify.rubrics.records import (
    AXES,
    DIMENSIONS,
    GENERATOR_VERSION,
    Rubric,
    axis_of,
    dimension_of,
)
from medverify.rubrics.validate import check_case, dedupe_embeddings, dedupe_tokens, review

__all__ = [
    "AXES",
    "DIMENSIONS",
    "GENERATOR_VERSION",
    "CoreOptions",
    "Rubric",
    "axis_of",
    "check_case",
    "core_rubric",
    "dedupe_embeddings",
    "dedupe_tokens",
    "dimension_of",
    "generate_rubric",
    "review",
]
