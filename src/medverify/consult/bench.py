"""The dynamic consultation benchmark: simulate, generate the rubric, grade, score.

For every case x persona the doctor model interviews the patient simulator; the rubric
generator turns the case and *this* transcript into weighted criteria; the grader judges each
criterion against the transcript; HealthBench scoring turns the verdicts into a score per
consultation, per dimension and overall. Each stage of each consultation is committed to the
run store as it finishes (``consultation``, ``rubric``, ``grade``), so a killed run resumes where
it stopped and never pays twice for a model call; a consultation whose doctor backend gave up
is recorded as a failure, retried on the next run, and the others go on.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence

from medverify.backends.base import Backend
from medverify.cases.personas import PERSONA_PRESETS, persona_for, seed_for
from medverify.cases.records import CaseRecord, Transcript, Turn
from medverify.consult.records import ConsultUnit, UnitOutcome
from medverify.consult.task import ConsultationTask
from medverify.errors import ConfigError, MedverifyError
from medverify.grading import Grader
from medverify.progress import Bars
from medverify.rubrics import Rubric
from medverify.runs.store import RunStore
from medverify.simulator.consult import DoctorTurn, backend_doctor
from medverify.simulator.fact_unit import OfflineFactUnit

log = logging.getLogger(__name__)

#: A doctor for the benchmark: a backend, or a factory of turn functions per case (scripted).
Doctor = Backend | Callable[[CaseRecord], DoctorTurn]

PERSONA_CHOICES = ("case", "sampled", *PERSONA_PRESETS)


def make_units(cases: Sequence[CaseRecord], personas: Sequence[str]) -> list[ConsultUnit]:
    """Every case with every persona.

    ``case`` is the case's own persona (or the neutral default), ``sampled`` one drawn from a seed
    derived from the case id (the same on every machine), any other name a preset.
    """
    if not personas:
        raise ConfigError("no personas given; choose from " + ", ".join(PERSONA_CHOICES))
    units = []
    seen: set[str] = set()
    for case in cases:
        for name in personas:
            if name == "case":
                persona = persona_for(case)
            elif name == "sampled":
                persona = persona_for(case, seed=seed_for(case.id))
            else:
                persona = persona_for(case, preset=name)
            key = f"{case.id}@{name}"
            if key in seen:
                raise ConfigError(f"case {case.id!r} given twice (with persona {name!r})")
            seen.add(key)
            units.append(ConsultUnit(key=key, case=case, persona_name=name, persona=persona))
    return units


def cases_sha256(cases: Sequence[CaseRecord]) -> str:
    """A hash of the case records, so a resumed run refuses edited cases."""
    digest = hashlib.sha256()
    for case in cases:
        digest.update(case.model_dump_json().encode("utf-8"))
    return digest.hexdigest()


class ConsultBench:
    """One benchmark run's moving parts, shared by all its consultations.

    Args:
        store: the run store (resume).
        doctor: the doctor under test (a backend, or a per-case scripted turn function factory).
        grader: judges every criterion.
        patient: ``None`` for the offline simulator, else a backend for both patient units.
        writer: ``None`` for the deterministic rubric core, else the LLM rubric writer.
        max_turns: most doctor turns per consultation.
        doctor_max_tokens: most tokens per doctor turn.
        seed: fixes the simulator's wording, the doctor's sampling seed and the rubric writer.
        on_turn: called with ``(unit key, turn)`` as each turn happens (the CLI prints them).
        judge_checked: also ask an LLM judge about the evidence-checked items (agreement).
    """

    def __init__(
        self,
        store: RunStore,
        doctor: Doctor,
        grader: Grader,
        *,
        patient: Backend | None = None,
        writer: Backend | None = None,
        max_turns: int = 10,
        doctor_max_tokens: int = 256,
        seed: int = 0,
        on_turn: Callable[[str, Turn], None] | None = None,
        judge_checked: bool = False,
    ) -> None:
        self.store = store
        self.doctor = doctor
        self.grader = grader
        self.patient = patient
        self.writer = writer
        self.max_turns = max_turns
        self.doctor_max_tokens = doctor_max_tokens
        self.seed = seed
        self.on_turn = on_turn
        self._turn_tick: Callable[..., None] | None = None
        self.judge_checked = judge_checked
        # One offline Fact Unit for all consultations: the embedding model loads once.
        self._fact_unit = OfflineFactUnit() if patient is None else None

    def _doctor_turn(self, case: CaseRecord) -> DoctorTurn:
        if isinstance(self.doctor, Backend):
            return backend_doctor(self.doctor, seed=self.seed, max_tokens=self.doctor_max_tokens)
        return self.doctor(case)

    def task(self, unit: ConsultUnit) -> ConsultationTask:
        """The consultation task of a unit: its case and persona, with this run's limits."""
        return ConsultationTask(
            case=unit.case, persona=unit.persona, max_turns=self.max_turns, seed=self.seed
        )

    async def consultation(self, unit: ConsultUnit) -> Transcript:
        """The unit's transcript: from the store, or played now and stored."""
        stored = self.store.get("consultation", unit.key)
        if stored is not None:
            transcript = Transcript.model_validate(stored)
            if self.on_turn is not None:
                for turn in transcript.turns:
                    self.on_turn(unit.key, turn)
            return transcript
        on_turn, tick = self.on_turn, self._turn_tick

        def seen(turn: Turn) -> None:
            if on_turn is not None:
                on_turn(unit.key, turn)
            if tick is not None and turn.role == "doctor":
                tick()

        transcript = await self.task(unit).play(
            self._doctor_turn(unit.case),
            patient=self.patient,
            fact_unit=self._fact_unit,
            on_turn=seen if on_turn is not None or tick is not None else None,
        )
        if tick is not None:  # a consultation that ended early fills the rest of its share
            tick(steps=self.max_turns - sum(1 for t in transcript.turns if t.role == "doctor"))
        spec = self.doctor.spec if isinstance(self.doctor, Backend) else "scripted"
        transcript = transcript.model_copy(update={"doctor": spec})
        self.store.put("consultation", unit.key, transcript)
        return transcript

    async def rubric(self, unit: ConsultUnit, transcript: Transcript) -> Rubric:
        """The unit's rubric (case + this transcript): from the store, or generated and stored."""
        stored = self.store.get("rubric", unit.key)
        if stored is not None:
            return Rubric.model_validate(stored)
        rubric = await self.task(unit).rubric(transcript, writer=self.writer)
        self.store.put("rubric", unit.key, rubric)
        return rubric

    async def run_unit(self, unit: ConsultUnit) -> UnitOutcome:
        """Consultation, rubric, verdicts, scores and process measures of one unit.

        The score is :meth:`ConsultationTask.score`, the function the consultation reward calls,
        with every verdict memoised in the run store.
        """
        transcript = await self.consultation(unit)
        rubric = await self.rubric(unit, transcript)
        scored = await self.task(unit).score(
            transcript,
            self.grader,
            rubric=rubric,
            memo=self.store,
            example_tags=[f"persona:{unit.persona_name}"],
            judge_checked=self.judge_checked,
        )
        return UnitOutcome(
            key=unit.key,
            case_id=unit.case.id,
            persona_name=unit.persona_name,
            transcript=transcript,
            rubric=list(rubric.items),
            rubric_warnings=list(rubric.warnings),
            scored=scored,
        )

    async def run(
        self,
        units: Sequence[ConsultUnit],
        *,
        concurrency: int = 4,
        progress: Bars | None = None,
        label: str = "",
    ) -> tuple[list[UnitOutcome], dict[str, str]]:
        """Every unit, ``concurrency`` consultations at a time.

        Returns:
            The outcomes in the order of ``units`` (failed units left out) and the failures
            (unit key -> error); a failure is recorded in the store and retried on the next run.

        With ``progress``, two bars (prefixed by ``label``): doctor turns as they happen, and
        consultations as their grading finishes.
        """
        gate = asyncio.Semaphore(max(1, concurrency))
        if progress is not None:
            prefix = f"{label}: " if label else ""
            self._turn_tick = progress(f"{prefix}doctor turns", len(units) * self.max_turns)
        advance = progress(f"{prefix}consultations graded", len(units)) if progress else None
        failures: dict[str, str] = {}

        async def guarded(unit: ConsultUnit) -> UnitOutcome | None:
            async with gate:
                try:
                    outcome = await self.run_unit(unit)
                except MedverifyError as exc:
                    log.warning("consultation %s failed: %s", unit.key, exc)
                    self.store.record_failure("unit", unit.key, str(exc))
                    failures[unit.key] = str(exc)
                    outcome = None
                if advance is not None:
                    advance()
                return outcome

        done = await asyncio.gather(*(guarded(u) for u in units))
        return [o for o in done if o is not None], failures
