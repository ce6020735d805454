"""A whole consultation-benchmark job: backends up, every consultation, scores, files.

What ``medverify consult-bench`` and ``medverify demo`` run. The job's settings that decide the
results (doctor, patient, grader, rubric writer, turn limit, token cap, seed, personas, the case
records' hash) are the run store's config: rerunning with the same ``--run-dir`` resumes, and
rerunning with other settings is refused instead of mixing two runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from medverify.backends.base import Backend
from medverify.backends.registry import BackendOptions, make_backend
from medverify.cases.records import CaseRecord, Turn
from medverify.consult.bench import ConsultBench, Doctor, cases_sha256, make_units
from medverify.consult.faults import CAREFUL_DOCTORS, careful_doctor
from medverify.consult.outputs import summarize_consult, write_consult_outputs
from medverify.consult.records import ConsultResults
from medverify.consult.scripted import SCRIPTED_DOCTORS, scripted_doctor
from medverify.errors import ConfigError
from medverify.grading import make_grader
from medverify.grading.results import ExampleResult
from medverify.grading.usage import SessionUsage, sum_usage, total_cost
from medverify.progress import Bars
from medverify.runs.store import RunStore

SCRIPTED_PREFIX = "scripted:"


class ConsultJob(BaseModel):
    """Everything a consultation benchmark run needs."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cases: list[CaseRecord]
    run_dir: Path
    doctor: str = "local"
    patient: str | None = None
    grader: str = "local"
    writer: str | None = None
    personas: list[str] = ["case"]
    max_turns: int = 10
    doctor_max_tokens: int = 256
    seed: int = 0
    concurrency: int = 4
    judge_checked: bool = False
    doctor_options: BackendOptions = BackendOptions()
    grader_options: BackendOptions = BackendOptions()
    title: str | None = None


class ConsultOutcome(BaseModel):
    """A finished job: the aggregate, its examples, where its files went, whether it resumed."""

    results: ConsultResults
    examples: list[ExampleResult]
    paths: dict[str, Path]
    resumed: bool


def scripted_factory(spec: str) -> Callable[[CaseRecord], Any]:
    """The per-case turn-function factory of a scripted doctor.

    ``scripted:<good|guess|wrong|unsafe>`` (:mod:`medverify.consult.scripted`), or
    ``scripted:careful`` and its single-fault variants ``scripted:careful-<fault>``
    (:mod:`medverify.consult.faults`).
    """
    kind = spec.removeprefix(SCRIPTED_PREFIX)
    if kind in CAREFUL_DOCTORS:
        return lambda case: careful_doctor(case, kind)
    if kind not in SCRIPTED_DOCTORS:
        raise ConfigError(
            f"unknown scripted doctor {spec!r}; use one of "
            + ", ".join(SCRIPTED_PREFIX + k for k in (*SCRIPTED_DOCTORS, *CAREFUL_DOCTORS))
        )
    return lambda case: scripted_doctor(case, kind)


def run_config(job: ConsultJob, identities: dict[str, str] | None = None) -> dict[str, Any]:
    """The settings a run directory is bound to: a rerun with others is refused, not mixed.

    A spec names a model, not its weights: ``local:doctor`` is whatever adapter the installed
    package ships, ``hf:DIR`` whatever checkpoint is in DIR, ``openai:MODEL`` whatever serves it
    at the configured endpoint, ``script:FILE`` whatever the file says now. Each backend's
    ``identity()`` (the same string its cached replies are keyed by: weights' hash, endpoint,
    content hash; never a credential) is therefore part of the settings, so a run never resumes
    with another model behind the same name.
    """
    config: dict[str, Any] = {
        "doctor": job.doctor,
        "patient": job.patient,
        "grader": job.grader,
        "writer": job.writer,
        "personas": job.personas,
        "max_turns": job.max_turns,
        "doctor_max_tokens": job.doctor_max_tokens,
        "seed": job.seed,
        "cases_sha256": cases_sha256(job.cases),
    }
    for role, identity in sorted((identities or {}).items()):
        config[f"{role}_identity"] = identity
    return config


async def run_consult_job(
    job: ConsultJob,
    *,
    progress: Bars | None = None,
    on_turn: Callable[[str, Turn], None] | None = None,
) -> ConsultOutcome:
    """Run (or resume) the benchmark and write ``results.json``, ``examples.jsonl``, the report."""
    if not job.cases:
        raise ConfigError("no cases to run")
    units = make_units(job.cases, job.personas)
    data_sha = cases_sha256(job.cases)
    backends: dict[str, Backend] = {}
    grader = make_grader(job.grader, job.grader_options)
    try:
        doctor: Doctor
        if job.doctor.startswith(SCRIPTED_PREFIX):
            doctor = scripted_factory(job.doctor)
        else:
            doctor = backends["doctor"] = make_backend(job.doctor, job.doctor_options)
        if job.patient:
            backends["patient"] = make_backend(job.patient, job.doctor_options)
        if job.writer:
            backends["writer"] = make_backend(job.writer, job.grader_options)
        identities = {role: backend.identity() for role, backend in backends.items()}
        judge = getattr(grader, "backend", None)
        if judge is not None:
            identities["grader"] = judge.identity()
        with RunStore(
            job.run_dir, job="consult-bench", config=run_config(job, identities)
        ) as store:
            resumed = store.is_resumed
            session = SessionUsage(store)
            session.track("grader", judge)
            for role, backend in backends.items():
                session.track(role, backend)
            try:
                bench = ConsultBench(
                    store,
                    doctor,
                    grader,
                    patient=backends.get("patient"),
                    writer=backends.get("writer"),
                    max_turns=job.max_turns,
                    doctor_max_tokens=job.doctor_max_tokens,
                    seed=job.seed,
                    on_turn=on_turn,
                    judge_checked=job.judge_checked,
                )
                outcomes, failures = await bench.run(
                    units,
                    concurrency=job.concurrency,
                    progress=session.progress(progress),
                    label=job.doctor,
                )
            finally:
                # Usage of every session of this run: a resumed run paid for its first part
                # too, and an interrupted session's calls count as well.
                session.save(force=True)
            usage, cost_parts = sum_usage(store.items("usage").values())
    finally:
        await grader.aclose()
        for backend in backends.values():
            await backend.aclose()
    results, examples = summarize_consult(
        units,
        outcomes,
        doctor=job.doctor,
        patient=job.patient or "offline",
        grader=grader.spec,
        writer=job.writer,
        usage=usage,
        cost_estimate_usd=total_cost(cost_parts),
        data_sha256=data_sha,
        failed_units=failures,
    )
    title = job.title or f"Consultation benchmark: {job.doctor}"
    paths = write_consult_outputs(job.run_dir, results, examples, title=title)
    return ConsultOutcome(results=results, examples=examples, paths=paths, resumed=resumed)


def consult_hook(
    cases: list[CaseRecord],
    run_root: Path,
    *,
    grader: str = "local",
    grader_options: BackendOptions | None = None,
    max_turns: int = 4,
    doctor_max_tokens: int = 96,
) -> Callable[[str, Backend], Any]:
    """An ``async (name, doctor backend) -> Stat`` scorer: the benchmark on ``cases``.

    What ``medverify deploy report --consult-cases N`` runs on every deployment variant (fp,
    quantized, + draft), each in its own run directory under ``run_root``, with the same grader
    and rubric core, so the quality deltas compare like with like.
    """

    async def score(name: str, doctor: Backend) -> Any:
        units = make_units(cases, ["case"])
        grader_obj = make_grader(grader, grader_options or BackendOptions())
        config = {"doctor": name, "grader": grader, "cases_sha256": cases_sha256(cases)}
        try:
            with RunStore(run_root / name, job="consult-bench", config=config) as store:
                bench = ConsultBench(
                    store,
                    doctor,
                    grader_obj,
                    max_turns=max_turns,
                    doctor_max_tokens=doctor_max_tokens,
                )
                outcomes, failures = await bench.run(units, concurrency=len(units))
        finally:
            await grader_obj.aclose()
        results, _ = summarize_consult(
            units,
            outcomes,
            doctor=name,
            patient="offline",
            grader=grader_obj.spec,
            writer=None,
            usage={},
            cost_estimate_usd=None,
            data_sha256=cases_sha256(cases),
            failed_units=failures,
        )
        return results.overall

    return score
