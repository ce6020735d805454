"""``medverify demo`` — the main job: the consultation benchmark, offline, on bundled cases.

The embedded doctor model (or any backend) interviews the patient simulator on a few bundled
cases; the rubric generator writes each consultation's criteria across the five clinical
dimensions; the offline local grader judges them; scores follow HealthBench. It is
``medverify consult-bench`` with settings sized to finish in a few minutes on a 2-core laptop:
four cases, six doctor turns of at most 96 tokens, four consultations at once (the local
backend batches them into one forward pass), run for the embedded model and for the doctor
trained against the verifier (``local:doctor``), whose training never saw these four cases.
"""

from __future__ import annotations

from pathlib import Path

from medverify.backends.registry import BackendOptions
from medverify.cases.records import CaseRecord
from medverify.consult.pipeline import ConsultJob

#: Four bundled cases: two AgentClinic OSCE cases, two MediQ cases; neurology, infection, ENT,
#: cardiology.
DEFAULT_CASES = (
    "agentclinic-medqa-001",
    "agentclinic-medqa-093",
    "mediq-medqa-0100",
    "mediq-medqa-1224",
)
#: Six doctor turns, the last one nudged to conclude: the length the trained doctor learned.
DEMO_TURNS = 6
DEMO_MAX_TOKENS = 96


def run_name(doctor: str) -> str:
    """A doctor spec as a run-directory name (``local:doctor`` -> ``local-doctor``)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in doctor) or "doctor"


def demo_job(
    cases: list[CaseRecord],
    run_dir: Path,
    *,
    doctor: str = "local",
    patient: str | None = None,
    grader: str = "local",
    writer: str | None = None,
    turns: int = DEMO_TURNS,
    max_tokens: int = DEMO_MAX_TOKENS,
    options: BackendOptions | None = None,
) -> ConsultJob:
    """The demo's consultation-benchmark job."""
    options = options or BackendOptions()
    return ConsultJob(
        cases=cases,
        run_dir=run_dir,
        doctor=doctor,
        patient=patient,
        grader=grader,
        writer=writer,
        personas=["case"],
        max_turns=turns,
        doctor_max_tokens=max_tokens,
        concurrency=len(cases),
        doctor_options=options,
        grader_options=options,
        title=f"medverify demo: {doctor} on {len(cases)} simulated consultations",
    )
