"""Training curves: reward, completion length, KL and entropy over the stages of a run.

Reads each stage's ``log_history.json`` (the trainer's logged metrics) and draws one panel per
metric, the stages one after the other on a shared step axis, into ``curves.png`` in the run
directory (matplotlib, headless). A metric a stage does not log is skipped for that stage: SFT
stages have no reward, and TRL logs KL only when the KL term is on (``beta > 0``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PANELS = (
    ("reward", "reward (mean)"),
    ("completions/mean_length", "completion length (tokens)"),
    ("kl", "KL to reference (logged only with kl: true)"),
    ("entropy", "entropy (per token)"),
)


def stage_series(history: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """``(steps, values)`` of one logged metric."""
    steps, values = [], []
    for row in history:
        if key == "entropy" and row.get("dynamic_sampling/dropped_frac") == 1.0:
            continue  # every token was out of the loss mask: TRL logs 0, not an entropy
        if row.get(key) is not None and "step" in row:
            steps.append(int(row["step"]))
            values.append(float(row[key]))
    return steps, values


def load_histories(run_dir: Path, stage_names: list[str]) -> dict[str, list[dict[str, Any]]]:
    """The log histories of the stages that have one, in order."""
    out = {}
    for name in stage_names:
        path = run_dir / "stages" / name / "log_history.json"
        if path.is_file():
            out[name] = json.loads(path.read_text())
    return out


def plot_curves(histories: dict[str, list[dict[str, Any]]], out: Path) -> Path | None:
    """Draw the curves into ``out`` (PNG); ``None`` if matplotlib is missing or nothing logged."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not histories:
        return None
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {name: palette[i % len(palette)] for i, name in enumerate(histories)}
    for ax, (key, title) in zip(axes.flat, PANELS, strict=True):
        offset = 0
        drawn = False
        for name, history in histories.items():
            steps, values = stage_series(history, key)
            last = max((int(r.get("step", 0)) for r in history), default=0)
            if steps:
                xs = [s + offset for s in steps]
                ax.plot(xs, values, marker="o", ms=3, label=name, color=colors[name])
                drawn = True
            offset += last
            ax.axvline(offset, color="0.85", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("step (stages in order)")
        if drawn:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
