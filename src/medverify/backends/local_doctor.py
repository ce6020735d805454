"""The trained doctor (``--model local:doctor``): the embedded model with medverify's own LoRA.

The adapter in ``medverify/data/doctor/`` was trained by ``medverify train pipeline --config
configs/train/doctor_cpu.yaml`` (expert iteration against the verifier; how it was made and how
it scored are in ``doctor.json`` beside it). On first use it is merged into the converted base
checkpoint, once, under the same lock-and-rename as the GGUF conversion, so every later load
is an ordinary transformers checkpoint: generation, batching, ``serve`` and the response cache
work exactly as for ``local``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medverify.backends.local import (
    MARKER,
    MODEL_NAME,
    LocalBackend,
    build_once,
    cache_root,
    ensure_converted,
)
from medverify.backends.torch_runtime import quiet_progress_bars
from medverify.errors import ConfigError

#: The shipped adapter and its provenance.
DOCTOR_DIR = Path(__file__).resolve().parent.parent / "data" / "doctor"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
PROVENANCE = "doctor.json"
#: The backend spec of the trained doctor shipped in the package.
DOCTOR_SPEC = "local:doctor"


def adapter_hash(adapter: Path = DOCTOR_DIR) -> str:
    """A short hash of the adapter's weights and config (a new adapter merges anew)."""
    digest = hashlib.sha256()
    for name in ADAPTER_FILES:
        digest.update((adapter / name).read_bytes())
    return digest.hexdigest()[:12]


def check_adapter(adapter: Path, spec: str) -> None:
    """Raises ConfigError when the adapter's files are missing."""
    missing = [n for n in ADAPTER_FILES if not (adapter / n).is_file()]
    if missing:
        raise ConfigError(f"{spec}: the trained doctor's adapter is missing {missing} in {adapter}")


def provenance(adapter: Path = DOCTOR_DIR) -> dict[str, Any]:
    """How the shipped adapter was made (config, data split, commit, scores)."""
    path = adapter / PROVENANCE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def merge_adapter(base: Path, adapter: Path, out_dir: Path) -> None:
    """Write ``base`` with ``adapter`` merged into it as a plain checkpoint in ``out_dir``."""
    try:
        from peft import PeftModel
    except ImportError:
        raise ConfigError(
            "local:doctor needs peft: pip install -e '.[local]' (it is in the local extra)"
        ) from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # peft asks a deprecated transformers property while merging: a FutureWarning the user
    # can do nothing about, printed in the middle of the demo's progress.
    with quiet_progress_bars(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        model = AutoModelForCausalLM.from_pretrained(base)
        merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        merged.save_pretrained(out_dir)
        AutoTokenizer.from_pretrained(base).save_pretrained(out_dir)
    marker = {
        "base": str(base),
        "adapter": str(adapter),
        "adapter_hash": adapter_hash(adapter),
        "merged_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out_dir / MARKER).write_text(json.dumps(marker, indent=2) + "\n")


class DoctorBackend(LocalBackend):
    """The embedded model with the shipped doctor adapter merged in (spec ``local:doctor``).

    Args:
        spec: the spec string recorded in results.
        adapter: the adapter directory (default: the one shipped in the package).
        cache_dir: cache root (default ``MEDVERIFY_CACHE_DIR`` or ``~/.cache/medverify``).
        **kwargs: passed to :class:`~medverify.backends.local.LocalBackend`.
    """

    def __init__(
        self,
        spec: str = DOCTOR_SPEC,
        *,
        adapter: str | Path | None = None,
        cache_dir: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        self.adapter = Path(adapter).expanduser() if adapter is not None else DOCTOR_DIR
        check_adapter(self.adapter, spec)
        self.adapter_hash = adapter_hash(self.adapter)
        super().__init__(spec, cache_dir=cache_dir, **kwargs)
        self.base_dir = self.path
        root = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
        self.path = root / "models" / f"{MODEL_NAME}-{self.gguf_hash}-doctor-{self.adapter_hash}"
        self.engine.target_path = self.path

    def _prepare_checkpoint(self) -> Path:
        base = ensure_converted(self.gguf, self.base_dir)
        return build_once(
            self.path,
            lambda tmp: merge_adapter(base, self.adapter, tmp),
            what="merging the trained doctor's adapter",
            took="5 s",
        )

    def _model_name(self) -> str:
        return f"{MODEL_NAME}-doctor"

    def _weights_identity(self) -> str:
        """``local:doctor:<model>:<gguf hash>:<adapter hash>``."""
        return f"{DOCTOR_SPEC}:{MODEL_NAME}:{self.gguf_hash}:{self.adapter_hash}"


def doctor_model_dir() -> Path:
    """The trained doctor as a transformers checkpoint directory, merging it on first use.

    ``medverify serve --model local:doctor`` and the deployment steps start from it.
    """
    backend = DoctorBackend()
    return backend._prepare_checkpoint()
