"""HealthBench files: load and validate every line, or say exactly which line and field is wrong.

Accepts any file in the HealthBench JSONL format (the official ``oss_eval``, ``hard`` and
``consensus`` files or any subset of them). Nothing is downloaded: the official files are
published with OpenAI's simple-evals (MIT) and the user keeps them in a data directory
(``--data-dir``, default ``$MEDVERIFY_DATA``), where ``--subset all|hard|consensus`` finds them
by their standard names. Used by ``medverify healthbench run|grade|meta-eval``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medverify.errors import ConfigError, InputError
from medverify.grading.records import RubricItem

Subset = Literal["all", "hard", "consensus"]

#: Standard file names of the official release, with their size and sha256.
OFFICIAL_FILES: dict[str, tuple[str, int, str]] = {
    "all": (
        "2025-05-07-06-14-12_oss_eval.jsonl",
        60258154,
        "e99dd3c6372c10d6fcc5e385c5fae69d0dd40392dae56836ef9493ae324ecd2f",
    ),
    "hard": (
        "hard_2025-05-08-21-00-10.jsonl",
        12581564,
        "b0320430e5cd974e746585594c1dd10b5a3fc2aff9c72b26106c2c4a069d74e9",
    ),
    "consensus": (
        "consensus_2025-05-09-20-00-46.jsonl",
        36921504,
        "fabe37553327238928b05357d8b309737b5d426d6dee432a3376da618d0969d6",
    ),
    "meta_eval": (
        "2025-05-07-06-14-12_oss_meta_eval.jsonl",
        136224466,
        "6a343ed3fcb6f28353c2c6c157ae30ddf2db874c947b27ba474ad54da9c5dbac",
    ),
}
OFFICIAL_SOURCE = (
    "https://openaipublic.blob.core.windows.net/simple-evals/healthbench/ (see openai/simple-evals"
    " healthbench_eval.py for the exact URLs)"
)


class ChatTurn(BaseModel):
    """One turn of a HealthBench conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant"]
    content: str


class HealthBenchExample(BaseModel):
    """One HealthBench row: a conversation, its physician-written rubric and its tags."""

    model_config = ConfigDict(extra="allow")

    prompt_id: str = Field(min_length=1)
    prompt: list[ChatTurn] = Field(min_length=1)
    rubrics: list[RubricItem] = Field(min_length=1)
    example_tags: list[str] = Field(default_factory=list)
    ideal_completions_data: dict[str, Any] | None = None
    canary: str | None = None

    def messages(self) -> list[dict[str, str]]:
        """The conversation as chat messages (``developer`` is sent as ``system``)."""
        return [
            {"role": "system" if t.role == "developer" else t.role, "content": t.content}
            for t in self.prompt
        ]


class LoadedData(BaseModel):
    """Examples read from one file, with what was skipped and the file's hash."""

    path: str
    examples: list[HealthBenchExample]
    skipped: list[str] = Field(default_factory=list)
    sha256: str


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def load_examples(path: str | Path, *, skip_invalid: bool = False) -> LoadedData:
    """Read and validate a HealthBench JSONL file.

    Raises:
        InputError: naming file, line and field of the first bad line (unless ``skip_invalid``,
            which skips bad lines and lists them in ``LoadedData.skipped``).
    """
    file = Path(path)
    if not file.is_file():
        raise InputError("file not found", path=file)
    raw = file.read_bytes()
    examples: list[HealthBenchExample] = []
    skipped: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"not valid JSON ({exc.msg} at column {exc.colno})", path=file, line=number
                ) from None
            except RecursionError:
                raise InputError(
                    "not valid JSON (nested too deeply)", path=file, line=number
                ) from None
            if not isinstance(record, dict):
                raise InputError("a line must be a JSON object", path=file, line=number)
            try:
                example = HealthBenchExample.model_validate(record)
            except ValidationError as exc:
                err = exc.errors()[0]
                more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
                raise InputError(
                    f"{err['msg']}{more}", path=file, line=number, field=_field_path(err["loc"])
                ) from None
            if example.prompt_id in seen:
                raise InputError(
                    f"duplicate prompt_id {example.prompt_id!r} (first on line "
                    f"{seen[example.prompt_id]})",
                    path=file,
                    line=number,
                    field="prompt_id",
                )
        except InputError as exc:
            if not skip_invalid:
                raise
            skipped.append(str(exc))
            continue
        seen[example.prompt_id] = number
        examples.append(example)
    if not examples:
        raise InputError("no valid examples", path=file)
    return LoadedData(
        path=str(file), examples=examples, skipped=skipped, sha256=hashlib.sha256(raw).hexdigest()
    )


def data_dir(explicit: str | Path | None = None) -> Path | None:
    """The data directory from ``--data-dir`` or ``$MEDVERIFY_DATA``."""
    value = explicit or os.environ.get("MEDVERIFY_DATA")
    return Path(value).expanduser() if value else None


def resolve_data(
    data: str | Path | None, subset: Subset | None, data_directory: str | Path | None
) -> Path:
    """The file to evaluate: ``--data FILE``, or ``--subset`` found in the data directory."""
    if data is not None:
        return Path(data)
    if subset is None:
        raise ConfigError("give --data FILE or --subset all|hard|consensus")
    directory = data_dir(data_directory)
    name = OFFICIAL_FILES[subset][0]
    if directory is None:
        raise ConfigError(
            f"--subset {subset} needs a data directory holding {name}: pass --data-dir or set "
            f"MEDVERIFY_DATA (download the official files from {OFFICIAL_SOURCE})"
        )
    path = directory / name
    if not path.is_file():
        raise ConfigError(f"{path} not found; download it from {OFFICIAL_SOURCE}")
    return path
