"""What every deployment step shares: model specs, all-or-nothing output, manifests, tokenizers.

``medverify deploy quantize``, ``deploy distill-draft``, ``deploy report`` and ``medverify serve``
all start from a model spec, write a directory a later step loads, and must never leave a
half-written directory behind when they fail or are killed. So each writes into a temporary
sibling directory and renames it into place only once everything, ``manifest.json`` last, is
written (:func:`atomic_output_dir`). The manifest records what was done to which model, with which
library versions, and the tokenizer's fingerprint: a draft model is only ever paired with a target
whose tokenizer has the same vocabulary and special tokens (:func:`check_same_tokenizer`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from medverify.backends.hf import check_checkpoint
from medverify.backends.local import default_model_dir
from medverify.backends.local_doctor import DOCTOR_SPEC, doctor_model_dir
from medverify.errors import ConfigError, InputError

#: Written last into every output directory: its presence means the step finished.
MANIFEST = "manifest.json"

Kind = Literal["quantized", "draft"]


class DeployManifest(BaseModel):
    """What a quantized model or a draft directory holds and how it was made.

    Attributes:
        kind: ``quantized`` or ``draft``.
        method: the quantization method, or ``distill`` for a draft.
        target: the hardware or engine it is meant for (``cpu``, ``gpu``, ``vllm``, ``llamacpp``).
        source_model: the model spec the user gave.
        source_dir: the checkpoint directory the spec resolved to.
        tokenizer_sha256: :func:`tokenizer_fingerprint` of the tokenizer saved beside it.
        source_bytes: size of the source weights on disk.
        output_bytes: size of this directory's weights on disk.
        created_at: UTC time of writing.
        versions: library versions that wrote it.
        details: method-specific facts (layers, training loss, agreement checks...).
    """

    kind: Kind
    method: str
    target: str
    source_model: str
    source_dir: str
    tokenizer_sha256: str | None = None
    source_bytes: int = 0
    output_bytes: int = 0
    created_at: str = Field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    versions: dict[str, str] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` (missing ones are left out)."""
    found: dict[str, str] = {}
    for name in ("medverify", "torch", "transformers", *packages):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def read_manifest(directory: str | Path, *, kind: Kind | None = None) -> DeployManifest:
    """Read and validate ``directory/manifest.json``.

    Raises:
        ConfigError: the directory does not exist or holds no manifest (not made by medverify, or
            its writing never finished).
        InputError: the manifest is malformed (names the field), or is of another kind.
    """
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise ConfigError(f"no such directory: {directory}")
    path = directory / MANIFEST
    if not path.is_file():
        raise ConfigError(
            f"{directory} has no {MANIFEST}: it was not written by medverify deploy, "
            "or its writing did not finish"
        )
    try:
        manifest = DeployManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise InputError(err["msg"], path=path, field=field) from None
    if kind is not None and manifest.kind != kind:
        raise InputError(
            f"expected a {kind} directory, this is a {manifest.kind} one", path=path, field="kind"
        )
    return manifest


def write_manifest(directory: Path, manifest: DeployManifest) -> None:
    """Write the manifest (the last file of a finished output directory)."""
    (directory / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")


def resolve_model(spec: str) -> Path:
    """The local checkpoint directory a model spec names.

    ``local`` is the embedded SmolLM2-135M-Instruct (converted once, cached), ``local:doctor``
    the trained doctor (merged once, cached); ``hf:<dir>`` or a
    bare directory is any transformers checkpoint. Endpoints (``openai:``) hold no weights to
    quantize or distil.

    Raises:
        ConfigError: an endpoint spec, a missing directory, or one that is not a checkpoint.
    """
    spec = spec.strip()
    if spec in ("local", "local:transformers"):
        return default_model_dir()
    if spec == DOCTOR_SPEC:
        return doctor_model_dir()
    if spec.startswith(("openai:", "script:", "mock", "local:llamacpp")):
        raise ConfigError(
            f"{spec!r} names no local weights; deployment steps need 'local', 'hf:<dir>' "
            "or a checkpoint directory"
        )
    path = Path(spec.removeprefix("hf:")).expanduser()
    check_checkpoint(path, spec)
    return path


_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.gguf")


def weights_bytes(directory: Path) -> int:
    """Bytes of weight files in a directory (safetensors, bin, pt, gguf)."""
    total = 0
    for pattern in _WEIGHT_PATTERNS:
        total += sum(f.stat().st_size for f in directory.glob(pattern) if f.is_file())
    return total


_SAMPLE_BYTES = 1 << 20


def checkpoint_fingerprint(directory: Path) -> str:
    """SHA-256 identifying a checkpoint's weights wherever the directory lies.

    Run stores record it instead of the path, so a run directory moved to another machine (or a
    checkpoint copied elsewhere) still resumes, while replies of another checkpoint are refused.
    It hashes each weight file's name and size with its first and last MiB rather than all of it:
    reading a 60 GB checkpoint to open a run would take minutes, and fine-tuned weights already
    differ in those bytes.
    """
    digest = hashlib.sha256()
    files = sorted(
        f for pattern in _WEIGHT_PATTERNS for f in directory.glob(pattern) if f.is_file()
    )
    for path in files:
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        with path.open("rb") as fh:
            digest.update(fh.read(_SAMPLE_BYTES))
            if size > _SAMPLE_BYTES:
                fh.seek(max(_SAMPLE_BYTES, size - _SAMPLE_BYTES))
                digest.update(fh.read(_SAMPLE_BYTES))
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_output_dir(out: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``out`` only if the block finishes.

    The temporary directory is a hidden sibling of ``out`` (same file system, so the final rename
    is atomic). On any exception, or a kill, ``out`` is untouched and the temporary directory is
    removed (a kill leaves a hidden ``.name.tmp-*`` that the next run may delete).

    Raises:
        ConfigError: ``out`` exists and is not empty, and ``overwrite`` is false.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(
            f"--out {out} exists and is not empty; choose another or pass --overwrite"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def tokenizer_identity(tokenizer: Any) -> dict[str, Any]:
    """What must match between a draft's and a target's tokenizer: vocabulary and special tokens."""
    special = {
        name: getattr(tokenizer, f"{name}_token_id", None) for name in ("bos", "eos", "pad", "unk")
    }
    return {
        "vocab": sorted(tokenizer.get_vocab().items()),
        "special_ids": special,
        "all_special_tokens": sorted(tokenizer.all_special_tokens),
    }


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """SHA-256 of :func:`tokenizer_identity`: equal fingerprints mean interchangeable token ids."""
    blob = json.dumps(tokenizer_identity(tokenizer), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def check_same_tokenizer(target: Any, draft: Any, *, draft_path: str | Path = "draft") -> None:
    """Refuse a draft whose token ids mean something else than the target's.

    Speculative decoding compares token ids: a draft with another vocabulary would be verified
    against the wrong tokens (at best never accepted, at worst silently different text).

    Raises:
        ConfigError: naming what differs (vocabulary size, entries, or which special token).
    """
    a, b = tokenizer_identity(target), tokenizer_identity(draft)
    if a == b:
        return
    if len(a["vocab"]) != len(b["vocab"]):
        why = f"vocabulary of {len(b['vocab'])} tokens, the target's has {len(a['vocab'])}"
    elif a["vocab"] != b["vocab"]:
        differ = sum(1 for x, y in zip(a["vocab"], b["vocab"], strict=True) if x != y)
        why = f"{differ} vocabulary entries differ from the target's"
    elif a["special_ids"] != b["special_ids"]:
        names = [k for k in a["special_ids"] if a["special_ids"][k] != b["special_ids"][k]]
        why = "special token ids differ: " + ", ".join(
            f"{n} {b['special_ids'][n]} vs target {a['special_ids'][n]}" for n in names
        )
    else:
        why = "the special tokens differ from the target's"
    raise ConfigError(f"the draft in {draft_path} does not share the target's tokenizer: {why}")
