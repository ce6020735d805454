"""Ship a trained doctor: the adapter of an expert-iteration stage, with how it was made.

``medverify train export-doctor --run-dir DIR`` copies ``<DIR>/stages/<stage>/adapter`` (the
LoRA weights and config) into the package's ``data/doctor/`` (or ``--out``), where
``local:doctor`` loads it, and writes ``doctor.json`` beside it: the recipe, the training cases,
the commit, the per-round statistics and, when given, the held-out benchmark's numbers. An
adapter without its provenance cannot be trusted, so the two travel together.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from medverify.backends.local_doctor import ADAPTER_FILES, DOCTOR_DIR, PROVENANCE
from medverify.cases.loading import load_cases
from medverify.errors import ConfigError
from medverify.train.config import PipelineConfig
from medverify.train.git_commit import git_commit
from medverify.train.round_validation import RoundValidation

#: The shipped adapter must stay small enough to live inside the wheel.
MAX_ADAPTER_MB = 20.0


def best_round(rounds: list[dict[str, Any]]) -> int | None:
    """The round whose adapter did best on the training side, or ``None`` for the last one.

    Round ``k``'s searched consultations are played by the adapter of round ``k - 1``, so
    ``rounds[k]["mean_reward"]`` measures that adapter on training cases (round 0 measures the
    base model); the last round's adapter is never measured. The best measured adapter is
    chosen, as ReST-EM picks its iteration, but on the training cases' verifier reward rather
    than on any held-out case. ``None`` when no adapter beat the base model's reward, or there
    are not two rounds to compare: then the last adapter is all there is.
    """
    rewards = [r.get("mean_reward") for r in rounds]
    if len(rewards) < 2 or any(r is None for r in rewards):
        return None
    k = max(range(1, len(rewards)), key=lambda i: rewards[i])
    return k - 1 if rewards[k] > rewards[0] else None


def _chosen_by(chosen: int | None, validation: RoundValidation | None) -> str:
    if validation is not None:
        return (
            "the best mean verifier score on validation cases (training cases no round drew), "
            "each adapter played greedily; no held-out case is looked at"
        )
    if chosen is None:
        return "the last round"
    return (
        "the best training-side search reward (the next round's mean_reward; "
        "no held-out case is looked at)"
    )


def export_doctor(
    cfg: PipelineConfig,
    config_path: Path,
    run_dir: Path,
    *,
    stage: str = "doctor",
    out: Path = DOCTOR_DIR,
    heldout: dict[str, Any] | None = None,
    round_choice: str = "best",
    validation: RoundValidation | None = None,
) -> Path:
    """Copy the stage's adapter to ``out`` and write its provenance.

    Args:
        cfg: the recipe the run was trained with.
        config_path: its file (recorded in doctor.json).
        run_dir: the finished run.
        stage: the expert_iteration stage to export.
        out: where the adapter and doctor.json go (default: the package's own).
        heldout: a held-out benchmark summary to record beside the adapter.
        round_choice: ``best`` (the adapter with the best training-side reward,
            :func:`best_round`), ``last``, or a round number; ignored when ``validation``
            is given.
        validation: every round's adapter played on validation cases
            (:func:`~medverify.train.round_validation.validate_rounds`); its choice is shipped
            and its results recorded.

    Raises:
        ConfigError: the stage is not in the config, has no finished adapter, or the adapter
            is larger than :data:`MAX_ADAPTER_MB`.
    """
    stages = {s.name: s for s in cfg.stages}
    if stage not in stages or stages[stage].kind != "expert_iteration":
        raise ConfigError(f"{config_path}: no expert_iteration stage named {stage!r}")
    stage_dir = run_dir / "stages" / stage
    rounds_file = stage_dir / "rounds.json"
    rounds = json.loads(rounds_file.read_text()) if rounds_file.is_file() else []
    if validation is not None:
        chosen = validation.chosen
    elif round_choice == "best":
        chosen = best_round(rounds)
    elif round_choice == "last":
        chosen = None
    elif round_choice.isdigit() and int(round_choice) < max(len(rounds), 1):
        chosen = int(round_choice)
    else:
        raise ConfigError(
            f"--round must be validated, best, last or a round number, got {round_choice!r}"
        )
    if chosen is not None and chosen == len(rounds) - 1:
        chosen = None  # the last round's adapter is the stage's own
    adapter = stage_dir / "adapter" if chosen is None else stage_dir / f"rounds/{chosen}/adapter"
    missing = [n for n in ADAPTER_FILES if not (adapter / n).is_file()]
    if missing:
        raise ConfigError(f"{adapter}: no finished adapter ({', '.join(missing)} missing)")
    size_mb = sum((adapter / n).stat().st_size for n in ADAPTER_FILES) / 1e6
    if size_mb > MAX_ADAPTER_MB:
        raise ConfigError(f"{adapter}: {size_mb:.1f} MB, over the {MAX_ADAPTER_MB:.0f} MB limit")
    source = stages[stage].data.source
    train_ids = [c.id for c in load_cases(source)][: stages[stage].data.limit]
    out.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        shutil.copyfile(adapter / name, out / name)
    record = {
        "what": "LoRA adapter of SmolLM2-135M-Instruct trained by expert iteration against "
        "medverify's verifier (offline simulator, evidence-checked rubric, offline grader)",
        "made_by": f"medverify train pipeline --config {config_path} --run-dir <dir>",
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),  # the exporting code
        "trained_at": sorted({r["commit"] for r in rounds if r.get("commit")}) or None,
        "config": cfg.model_dump(mode="json"),
        "adapter_mb": round(size_mb, 2),
        "training_cases": {"source": source, "n": len(train_ids), "ids": train_ids},
        "held_out": "benchmarks/data/heldout_agentclinic_extended20.jsonl (20) and the demo's "
        "four bundled cases; none is a training case, and no training case has a held-out "
        "diagnosis",
        "rounds": rounds,
        "adapter_of_round": len(rounds) - 1 if chosen is None else chosen,
        "adapter_chosen_by": _chosen_by(chosen, validation),
        "total_seconds": sum(
            r.get("sample_seconds", 0) + r.get("train_seconds", 0) for r in rounds
        ),
    }
    if validation is not None:
        record["validation"] = validation.model_dump(mode="json")
    if heldout is not None:
        record["heldout_benchmark"] = heldout
    (out / PROVENANCE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out
