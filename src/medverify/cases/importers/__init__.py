"""Importers that turn public case sets into case records (``medverify cases import``).

Each importer reads one source format and returns validated :class:`CaseRecord` objects; items
that cannot be converted are skipped with a reason. Supported: AgentClinic OSCE cases (MIT) and
MediQ diagnosis cases (CC BY 4.0), both derived from MedQA.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medverify.cases.importers.agentclinic import import_agentclinic, read_agentclinic
from medverify.cases.importers.common import ImportResult, SkippedItem
from medverify.cases.importers.mediq import import_mediq, is_diagnosis_item, read_mediq
from medverify.errors import ConfigError

Reader = Callable[..., ImportResult]
IMPORTERS: dict[str, Reader] = {"agentclinic": read_agentclinic, "mediq": read_mediq}


def read_cases(
    source_format: str,
    path: str | Path,
    *,
    limit: int | None = None,
    only: set[str] | None = None,
) -> ImportResult:
    """Convert a source file of the named format (``agentclinic`` or ``mediq``).

    Raises:
        ConfigError: Unknown format.
        InputError: The file cannot be read or nothing in it could be converted.
    """
    if source_format not in IMPORTERS:
        raise ConfigError(
            f"unknown case format {source_format!r}; known: {', '.join(sorted(IMPORTERS))}"
        )
    return IMPORTERS[source_format](path, limit=limit, only=only)


__all__ = [
    "IMPORTERS",
    "ImportResult",
    "SkippedItem",
    "import_agentclinic",
    "import_mediq",
    "is_diagnosis_item",
    "read_agentclinic",
    "read_cases",
    "read_mediq",
]
