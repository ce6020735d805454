"""Whether a run's HealthBench numbers can be reported: the note on ``--grader local`` runs.

HealthBench's published scores come from an LLM judge whose verdicts were checked against
physicians' (the meta-eval). The offline local grader (``--grader local``) was trained and
measured only against an LLM judge's verdicts on a few dozen graded rows, and agrees with them
far less, so its HealthBench scores are not comparable to published ones. A run graded by it
says so on stderr (one line), in ``results.json`` (``grader_validity``) and in ``report.html``,
with the agreement :file:`benchmarks/grader_agreement.py` measured for the shipped weights on
the rows they were not trained on. Those figures live in ``local_grader_agreement.json`` next
to this module; the benchmark rewrites the file whenever it measures the shipped weights on
their own source file. An LLM judge's run carries no note.
"""

from __future__ import annotations

import hashlib
from html import escape
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ValidationError

from medverify.grading import local_grader as lg
from medverify.grading.results import GraderValidity

#: The measured agreement of the shipped weights, next to this module.
AGREEMENT_FILE = "local_grader_agreement.json"


class LocalGraderAgreement(BaseModel):
    """What ``benchmarks/grader_agreement.py`` measured for one weights file (held-out rows)."""

    weights_sha256: str
    data: str
    data_sha256: str
    labels: str
    rows: str
    n_rows: int
    n_criteria: int
    macro_f1: float
    always_met_macro_f1: float
    met_rate_positive: float
    reference_met_rate_positive: float
    score_pearson_r: float
    always_met_score_pearson_r: float
    mean_score: float
    reference_mean_score: float
    measured: str
    source: str = "benchmarks/grader_agreement.py"


def agreement_path() -> Path:
    """Where the measured agreement of the shipped weights is kept (in the package)."""
    return Path(str(resources.files("medverify.healthbench").joinpath(AGREEMENT_FILE)))


def load_agreement(path: str | Path | None = None) -> LocalGraderAgreement | None:
    """The recorded measurement, or ``None`` if there is none (or it cannot be read)."""
    file = Path(path) if path else agreement_path()
    try:
        return LocalGraderAgreement.model_validate_json(file.read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None


def write_agreement(agreement: LocalGraderAgreement, path: str | Path | None = None) -> Path:
    """Record a measurement (what the benchmark calls after measuring the shipped weights)."""
    file = Path(path) if path else agreement_path()
    file.write_text(agreement.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return file


def weights_sha256(path: str | Path | None = None) -> str | None:
    """sha256 of the local grader's weights file in use (``None`` if it cannot be read)."""
    try:
        return hashlib.sha256(Path(path or lg.shipped_weights_path()).read_bytes()).hexdigest()
    except OSError:
        return None


def is_local(spec: str) -> bool:
    """Whether a grader spec names the offline local grader."""
    return spec.strip() == lg.SPEC


def grader_validity(spec: str) -> GraderValidity | None:
    """The note for a run graded by ``spec``: ``None`` for an LLM judge.

    For the local grader, ``agreement`` holds the figures recorded for the weights in use, or is
    ``None`` when those weights (``$MEDVERIFY_LOCAL_GRADER``) were never measured.
    """
    if not is_local(spec):
        return None
    reason = (
        "the offline local grader (--grader local) is not a physician-validated judge: it was "
        "trained on and measured against an LLM judge's verdicts on a few dozen graded rows, so "
        "its HealthBench scores are not comparable to published ones; report HealthBench numbers "
        "graded by an LLM judge (--grader <backend spec>)"
    )
    recorded = load_agreement()
    current = weights_sha256()
    if recorded is None or current is None or recorded.weights_sha256 != current:
        return GraderValidity(
            comparable=False,
            reason=f"{reason}; these weights' agreement was not measured "
            "(run benchmarks/grader_agreement.py)",
        )
    return GraderValidity(comparable=False, reason=reason, agreement=recorded.model_dump())


def _figures(validity: GraderValidity) -> str:
    a = validity.agreement
    if not a:
        return "the agreement of these weights was not measured"
    return (
        f"against LLM-judge verdicts on {a['n_rows']} held-out graded rows ({a['n_criteria']} "
        f"criteria) it reaches macro-F1 {a['macro_f1']:.3f}, marks {a['met_rate_positive']:.0%} "
        f"of positive criteria met (judge {a['reference_met_rate_positive']:.0%}), scores rows "
        f"{a['mean_score']:.2f} on average (judge {a['reference_mean_score']:.2f}) and its "
        f"per-example scores correlate r = {a['score_pearson_r']:.2f} with the judge's "
        f"(always-met grader: r = {a['always_met_score_pearson_r']:.2f})"
    )


def warning_line(validity: GraderValidity) -> str:
    """The one line printed on stderr by ``healthbench run|grade --grader local``."""
    return (
        "warning: --grader local scores are NOT comparable to HealthBench's physician-validated "
        f"LLM judge: {_figures(validity)}; use an LLM judge for numbers you report"
    )


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def report_section(validity: GraderValidity) -> str:
    """The report's card with the note (escaped HTML)."""
    return (
        '<section class="card failures bad" id="grader-validity">'
        "<h2>Not comparable to published HealthBench scores</h2>"
        f"<p>{escape(_sentence(validity.reason))}</p>"
        f"<p>{escape(_sentence(_figures(validity)))}</p></section>"
    )
