"""Stage checkpoints: resumable training, and a plain HF checkpoint at the end of every stage.

Each stage trains in ``<run>/stages/<name>/checkpoints`` (TRL/transformers ``checkpoint-N``
directories, every ``save_steps``); a rerun resumes from the last one. When the stage finishes,
its model -- LoRA merged into the weights -- is written to ``<run>/stages/<name>/final`` through a
temporary directory and a rename, with a marker file written last, so the next stage (and any
``hf:<dir>`` backend) always starts from a complete, ordinary checkpoint.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

MARKER = "medverify-stage.json"


def last_checkpoint(checkpoints_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` directory to resume from, or ``None``."""
    if not checkpoints_dir.is_dir():
        return None
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(checkpoints_dir))


def is_final(path: Path) -> bool:
    """Whether ``path`` holds a finished stage model."""
    return (path / MARKER).is_file() and (path / "config.json").is_file()


def save_final(model: Any, tokenizer: Any, final_dir: Path, info: dict[str, Any]) -> Path:
    """Write ``model`` (a peft model is merged first) and ``tokenizer`` as ``final_dir``.

    Returns:
        ``final_dir``.
    """
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    tmp = final_dir.with_name(final_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / MARKER).write_text(json.dumps({**info, "saved_at": time.time()}, indent=2) + "\n")
    if final_dir.exists():
        shutil.rmtree(final_dir)
    tmp.rename(final_dir)
    return final_dir


def write_log_history(stage_dir: Path, history: list[dict[str, Any]]) -> Path:
    """The trainer's log history (metrics per logging step) as JSON beside the stage."""
    path = stage_dir / "log_history.json"
    path.write_text(json.dumps(history, indent=1) + "\n")
    return path
