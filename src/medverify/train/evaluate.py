"""The evaluation run before training and after every stage of ``medverify train pipeline``.

Three small slices, scored by the same code as the rewards (so a rising reward and a rising
evaluation mean the same thing): held-out MCQ accuracy (exact answer), a HealthBench slice
(rubric graded by the configured grader, HealthBench example score) and consultations in the
offline simulator (the case's rubric on the whole transcript plus process measures: diagnosis
named, fact recall). The model is loaded as ``hf:<stage checkpoint>``, greedy, so two runs of
the same checkpoint give the same numbers.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from medverify.backends.hf import HFBackend
from medverify.cases.records import CaseRecord
from medverify.grading import VerdictCache, make_grader
from medverify.simulator.consult import run_consultation
from medverify.train.config import EvalSettings
from medverify.train.rewards import (
    ConsultationReward,
    RubricScorer,
    parse_rubric,
    rule_score,
)

log = logging.getLogger(__name__)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


async def evaluate_checkpoint(
    model_dir: str | Path,
    settings: EvalSettings,
    *,
    mcq_rows: list[dict[str, Any]],
    rubric_rows: list[dict[str, Any]],
    cases: list[CaseRecord],
    cache_path: str | None = None,
) -> dict[str, Any]:
    """Scores of one checkpoint on the three slices (``None`` where a slice is empty)."""
    policy = HFBackend(model_dir, spec=f"hf:{model_dir}", max_batch_size=8)
    result: dict[str, Any] = {"model": str(model_dir)}
    grader = None
    try:
        mcq = mcq_rows[: settings.mcq]
        scores = []
        for row in mcq:
            out = await policy.complete(row["prompt"], max_tokens=16)
            options = json.loads(row["options"]) if row.get("options") else None
            scores.append(rule_score(out.text, row["answer"], options))
        result["mcq_accuracy"] = _mean(scores)
        result["mcq_n"] = len(scores)

        need_grader = (settings.healthbench and rubric_rows) or (settings.cases and cases)
        scorer = None
        if need_grader:
            grader = make_grader(settings.grader)
            scorer = RubricScorer(
                grader, cache=VerdictCache(cache_path), max_items=settings.max_rubric_items
            )
        hb_scores, hb_failed = [], 0
        for row in rubric_rows[: settings.healthbench]:
            out = await policy.complete(row["prompt"], max_tokens=settings.max_new_tokens)
            assert scorer is not None
            s = await scorer.score(row["prompt"], out.text, parse_rubric(row["rubric"]))
            if s is None:
                hb_failed += 1
            else:
                hb_scores.append(s)
        result["healthbench_score"] = (
            float(np.clip(np.mean(hb_scores), 0, 1)) if hb_scores else None
        )
        result["healthbench_n"] = len(hb_scores)
        result["healthbench_failed"] = hb_failed

        consult_scores, process, diagnosed, c_failed = [], [], [], 0
        if settings.cases and cases:
            assert scorer is not None
            reward = ConsultationReward(scorer, {c.id: c for c in cases}, process_weight=0.0)
            for case in cases[: settings.cases]:
                transcript = await run_consultation(case, policy, max_turns=settings.max_turns)
                scored = await reward.evaluate(case, transcript)
                process.append(scored.process_score)
                diagnosed.append(float(transcript.final_diagnosis is not None))
                if scored.score is None:
                    c_failed += 1
                else:
                    consult_scores.append(scored.score)
        result["consult_rubric_score"] = _mean(consult_scores)
        result["consult_process_score"] = _mean(process)
        result["consult_diagnosis_given"] = _mean(diagnosed)
        result["consult_n"] = len(process)
        result["consult_failed"] = c_failed
        result["grader"] = settings.grader if grader is not None else None
    finally:
        await policy.aclose()
        if grader is not None:
            await grader.aclose()
    return result
