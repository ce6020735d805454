"""Which code a training round ran and an adapter was exported from (for its provenance)."""

from __future__ import annotations

import subprocess
from pathlib import Path

#: The checkout this package runs from (a wheel install has none: git_commit gives None).
CHECKOUT = Path(__file__).resolve().parents[3]


def git_commit(repo: Path = CHECKOUT) -> str | None:
    """The commit checked out in ``repo``, ``+changes`` when the tree differs from it.

    ``None`` outside a git checkout. A trained adapter is usually exported before the code that
    trained it is committed; the suffix says so rather than claiming a commit it did not run.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        # the code and the recipes; not the adapter being exported, nor benchmark results
        changed = git(
            "status", "--porcelain", "--", "src", "configs", ":(exclude)src/medverify/data/doctor"
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+changes" if changed else head or None
