"""The patient simulator's own quality suite: recall, leakage, hallucination, persona, endings.

A benchmark built on a simulated patient is only as trustworthy as the patient: one that leaks
the diagnosis rewards doctors for asking "what do you have?", one that forgets facts punishes
good history taking, one that invents symptoms sends them down wrong paths. ``medverify simulate
eval`` measures that directly, without a judge, by replaying the scripted doctors of
:mod:`~medverify.simulator.doctor_suite` against every case and persona:

* **recall** -- asked facts revealed / asked (a probe's targets revealed in its turn); facts
  whose own text names the diagnosis or a differential entry cannot be told (the Guard drops
  them) and are listed as ``unvoiceable_facts`` instead;
* **leakage** -- counted two ways: the diagnosis or a differential entry (name or initials)
  in any patient turn, and facts revealed that the turn did not ask about;
* **hallucination** -- patient turns with a word not traceable to the record: every word of the
  patient's sentences must come from the facts revealed in that turn, the chief complaint, or
  the template vocabulary (pronouns, "I've had", lay words ...); narrator lines may also echo
  the doctor's request ("[Exam] Ears: normal readings");
* **persona consistency** -- a low health-literacy patient uses none of the technical terms of
  the lay map; a terse patient says little beyond the facts;
* **termination** -- the Gate's reason on scripted endings (diagnosis, turn limit, patient left).

Targets: leakage 0 in every mode; recall >= 0.9 and hallucination 0 offline.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from medverify.cases.personas import PERSONA_PRESETS
from medverify.cases.records import CaseRecord, Persona, Turn
from medverify.simulator.affective import ASIDES, PREFACES, template_vocabulary
from medverify.simulator.doctor_suite import (
    Probe,
    TerminationScenario,
    scripted_doctors,
    termination_scenarios,
)
from medverify.simulator.environment import ConsultationEnv
from medverify.simulator.fact_unit import OfflineFactUnit
from medverify.simulator.fact_unit_llm import LLMFactUnit
from medverify.simulator.voice import first_person, lay_words
from medverify.text.lexicon import LAY_TERMS
from medverify.text.matching import STOPWORDS, contains_term, initialism, stem, words

if TYPE_CHECKING:
    from medverify.backends.base import Backend

log = logging.getLogger(__name__)

RECALL_TARGET = 0.9
DEFAULT_PERSONAS = ("case", "low-literacy", "terse", "talkative")
_NARRATOR = re.compile(r"^\[(?:Exam|Test)\]")


class Failure(BaseModel):
    """One turn that missed a target, for the report."""

    case_id: str
    persona: str
    doctor: str
    probe: str
    doctor_text: str
    patient_text: str
    problem: str


class CaseQuality(BaseModel):
    """The suite's counts for one case (all personas and scripted doctors)."""

    case_id: str
    unvoiceable: list[str] = Field(default_factory=list)
    recall_hits: int = 0
    recall_total: int = 0
    leak_dx: int = 0
    leak_unasked: int = 0
    patient_turns: int = 0
    hallucinated_turns: int = 0
    persona_checks: int = 0
    persona_passed: int = 0
    termination_total: int = 0
    termination_passed: int = 0

    @property
    def recall(self) -> float:
        """Asked facts revealed / asked."""
        return self.recall_hits / self.recall_total if self.recall_total else 1.0


class QualityReport(BaseModel):
    """The suite's result over a case set (what ``simulate eval`` prints and writes)."""

    mode: str
    patient: str
    cases: int
    personas: list[str]
    doctors: int
    patient_turns: int = 0
    recall: float = 1.0
    recall_hits: int = 0
    recall_total: int = 0
    leak_dx: int = 0
    leak_unasked: int = 0
    hallucination: float = 0.0
    hallucinated_turns: int = 0
    persona: float = 1.0
    termination: float = 1.0
    guard_interventions: int = 0
    llm_fallbacks: int = 0
    unvoiceable_facts: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    per_case: list[CaseQuality] = Field(default_factory=list)
    failures: list[Failure] = Field(default_factory=list)

    def targets(self) -> dict[str, bool]:
        """Which targets are met (recall and hallucination are offline targets)."""
        offline = self.mode == "offline"
        return {
            "leakage": self.leak_dx == 0 and self.leak_unasked == 0,
            "recall": not offline or self.recall >= RECALL_TARGET,
            "hallucination": not offline or self.hallucinated_turns == 0,
        }

    def meets_targets(self) -> bool:
        """All targets met."""
        return all(self.targets().values())


def suite_personas(case: CaseRecord, names: Sequence[str] = DEFAULT_PERSONAS) -> dict[str, Persona]:
    """The personas the suite plays a case with (none of them leaves: patience is off)."""
    out: dict[str, Persona] = {}
    for name in names:
        persona = (case.persona or Persona()) if name == "case" else PERSONA_PRESETS[name]
        out[name] = persona.model_copy(update={"patience": None})
    return out


def unvoiceable_facts(case: CaseRecord) -> list[str]:
    """Patient facts whose text names the diagnosis or a differential entry.

    The Guard never lets the patient say those names, so such a fact cannot be told (its
    sentence is dropped); the suite leaves it out of recall and lists it, as a problem of the
    case record rather than of the simulator.
    """
    names = [case.diagnosis, *case.differential]
    return [f.id for f in case.facts if any(contains_term(f.text, n) for n in names if n.strip())]


class _Checker:
    """Scores the turns of one case (pure: text in, counts out)."""

    def __init__(self, case: CaseRecord, vocab: frozenset[str]) -> None:
        self.case = case
        self.vocab_stems = {stem(w) for w in vocab} | {stem(w) for w in STOPWORDS}
        self.names = [case.diagnosis, *case.differential]
        self.initials = [i for i in (initialism(n) for n in self.names) if i]
        self.cc_stems = _stems(case.chief_complaint) | _stems(lay_words(case.chief_complaint))

    def leaked_names(self, text: str) -> list[str]:
        hits = [n for n in self.names if contains_term(text, n)]
        hits += [i for i in self.initials if re.search(rf"(?<![\w\-]){re.escape(i)}s?\b", text)]
        return hits

    def untraceable(self, turn: Turn, doctor_text: str) -> list[str]:
        speech, narration = _split(turn.text)
        source = set(self.vocab_stems) | self.cc_stems
        for fid in turn.revealed_fact_ids:
            fact = self.case.fact(fid)
            said = first_person(fact.text, fact.category)
            source |= _stems(fact.text) | _stems(lay_words(said)) | _stems(said)
        bad = [w for w in _content_words(speech) if stem(w) not in source]
        narrator_source = source | _stems(doctor_text)
        bad += [w for w in _content_words(narration) if stem(w) not in narrator_source]
        return bad

    def persona_problems(
        self, turn: Turn, persona: Persona, opening: bool = False
    ) -> tuple[int, list[str]]:
        speech, _ = _split(turn.text)
        if not speech:
            return 0, []
        checks, problems = 0, []
        if persona.health_literacy == "low":
            checks += 1
            technical = [t for t in LAY_TERMS if contains_term(speech, t)]
            if technical:
                problems.append(f"technical terms for a low-literacy patient: {technical}")
        if persona.verbosity == "terse":
            checks += 1
            budget = (
                10
                + (len(words(self.case.chief_complaint)) if opening else 0)
                + sum(
                    len(words(self.case.fact(i).text))
                    for i in turn.revealed_fact_ids
                    if self.case.fact(i).category not in ("exam", "test")
                )
            )
            filler = [a for group in ASIDES.values() for a in group if a and a in speech]
            preface = [p for p in PREFACES["talkative"] if speech.startswith(p)]
            if len(words(speech)) > budget or filler or preface:
                problems.append(f"a terse patient said {len(words(speech))} words: {speech!r}")
        return checks, problems


def _split(text: str) -> tuple[str, str]:
    lines = [line for line in text.splitlines() if line.strip()]
    speech = " ".join(line for line in lines if not _NARRATOR.match(line))
    narration = " ".join(line for line in lines if _NARRATOR.match(line))
    return speech, narration


def _stems(text: str) -> set[str]:
    return {stem(w) for w in words(text)}


def _content_words(text: str) -> list[str]:
    return [w for w in words(text) if w not in STOPWORDS and not w.isdigit()]


async def _play(
    case: CaseRecord,
    persona_name: str,
    persona: Persona,
    probes: list[Probe],
    doctor: str,
    checker: _Checker,
    quality: CaseQuality,
    failures: list[Failure],
    *,
    patient: Backend | None,
    fact_unit: OfflineFactUnit,
    seed: int,
) -> tuple[int, int]:
    """One scripted doctor against one persona; returns (guard interventions, llm fallbacks)."""
    env = ConsultationEnv.create(
        case,
        patient=patient,
        persona=persona,
        seed=seed,
        max_turns=len(probes) + 5,
        offline_fact_unit=fact_unit,
    )

    def fail(probe: Probe, turn: Turn, problem: str) -> None:
        failures.append(
            Failure(
                case_id=case.id,
                persona=persona_name,
                doctor=doctor,
                probe=probe.kind,
                doctor_text=probe.text,
                patient_text=turn.text,
                problem=problem,
            )
        )

    opening = env.opening()
    opening_probe = Probe(text="<opening>", kind="opening")
    _score(opening, opening_probe, "", set(), checker, persona, quality, fail)
    for probe in probes:
        if env.is_finished():
            break
        before = set(env.revealed)
        turn = await env.respond(probe.text)
        _score(turn, probe, probe.text, before, checker, persona, quality, fail)
    guard = sum(1 for t in env.traces if t.guard is not None and t.guard.action != "pass")
    fallbacks = (
        getattr(env.fact_unit, "fallbacks", 0) if isinstance(env.fact_unit, LLMFactUnit) else 0
    )
    return guard, fallbacks


def _score(
    turn: Turn,
    probe: Probe,
    doctor_text: str,
    before: set[str],
    checker: _Checker,
    persona: Persona,
    quality: CaseQuality,
    fail: Callable[[Probe, Turn, str], None],
) -> None:
    quality.patient_turns += 1
    revealed = set(turn.revealed_fact_ids)
    wanted = set(probe.targets) - set(quality.unvoiceable)
    if wanted:
        quality.recall_total += 1
        hit = wanted <= revealed if probe.expect == "all" else bool(wanted & revealed)
        if hit:
            quality.recall_hits += 1
        else:
            fail(probe, turn, f"missed {sorted(wanted - revealed)}")
    new = [i for i in turn.revealed_fact_ids if i not in before]
    if probe.kind == "anything_else":
        unasked = new[1:]
    else:
        unasked = [i for i in new if i not in probe.allowed]
    if unasked:
        quality.leak_unasked += len(unasked)
        fail(probe, turn, f"revealed unasked facts {unasked}")
    names = checker.leaked_names(turn.text)
    if names:
        quality.leak_dx += len(names)
        fail(probe, turn, f"named {names}")
    bad = checker.untraceable(turn, doctor_text)
    if bad:
        quality.hallucinated_turns += 1
        fail(probe, turn, f"untraceable words {sorted(set(bad))}")
    checks, problems = checker.persona_problems(turn, persona, opening=probe.kind == "opening")
    quality.persona_checks += checks
    quality.persona_passed += checks - len(problems)
    for problem in problems:
        fail(probe, turn, problem)


async def _termination(
    case: CaseRecord,
    scenario: TerminationScenario,
    patient: Backend | None,
    fact_unit: OfflineFactUnit,
) -> str | None:
    """Play a scripted ending; ``None`` if the Gate got it right, else what went wrong."""
    persona = (case.persona or Persona()).model_copy(update={"patience": scenario.patience})
    env = ConsultationEnv.create(
        case,
        patient=patient,
        persona=persona,
        max_turns=scenario.max_turns,
        offline_fact_unit=fact_unit,
    )
    env.opening()
    for text in scenario.turns:
        if env.is_finished():
            break
        await env.respond(text)
    got = (env.gate.reason, env.gate.doctor_turns, env.gate.final_diagnosis)
    want = (
        scenario.expected_reason,
        scenario.expected_doctor_turns,
        scenario.expected_diagnosis,
    )
    if got != want:
        return f"{scenario.name}: got {got}, expected {want}"
    return None


async def evaluate_case(
    case: CaseRecord,
    *,
    patient: Backend | None = None,
    personas: Sequence[str] = DEFAULT_PERSONAS,
    doctors: int = 3,
    seed: int = 0,
    fact_unit: OfflineFactUnit | None = None,
) -> tuple[CaseQuality, list[Failure], int, int]:
    """The suite on one case: (counts, failures, guard interventions, LLM fallbacks)."""
    fact_unit = fact_unit or OfflineFactUnit()
    checker = _Checker(case, template_vocabulary())
    quality = CaseQuality(case_id=case.id, unvoiceable=unvoiceable_facts(case))
    failures: list[Failure] = []
    runs = []
    for name, persona in suite_personas(case, personas).items():
        for doc in scripted_doctors(case, doctors):
            runs.append(
                _play(
                    case,
                    name,
                    persona,
                    doc.probes,
                    doc.name,
                    checker,
                    quality,
                    failures,
                    patient=patient,
                    fact_unit=fact_unit,
                    seed=seed,
                )
            )
    results = await asyncio.gather(*runs)
    for scenario in termination_scenarios(case):
        quality.termination_total += 1
        problem = await _termination(case, scenario, patient, fact_unit)
        if problem is None:
            quality.termination_passed += 1
        else:
            failures.append(
                Failure(
                    case_id=case.id,
                    persona="case",
                    doctor="termination",
                    probe="termination",
                    doctor_text=" | ".join(scenario.turns[:3]),
                    patient_text="",
                    problem=problem,
                )
            )
    guard = sum(r[0] for r in results)
    fallbacks = max((r[1] for r in results), default=0)
    return quality, failures, guard, fallbacks


async def evaluate(
    cases: Sequence[CaseRecord],
    *,
    patient: Backend | None = None,
    personas: Sequence[str] = DEFAULT_PERSONAS,
    doctors: int = 3,
    seed: int = 0,
    max_failures: int = 200,
    on_case: Callable[[CaseQuality], None] | None = None,
) -> QualityReport:
    """Run the quality suite over ``cases``.

    Args:
        cases: the case records.
        patient: ``None`` for the offline simulator, else the backend both units run on.
        personas: persona names: ``case`` (the record's own) or presets of
            :data:`~medverify.cases.personas.PERSONA_PRESETS`.
        doctors: scripted doctors (paraphrase sets) per case and persona.
        seed: the template wording seed.
        max_failures: most failing turns kept in the report.
        on_case: called after each case (progress).

    Returns:
        The report, with per-case counts and the first failing turns.
    """
    start = time.perf_counter()
    fact_unit = OfflineFactUnit()
    report = QualityReport(
        mode="offline" if patient is None else "llm",
        patient="offline" if patient is None else patient.spec,
        cases=len(cases),
        personas=list(personas),
        doctors=doctors,
    )
    persona_checks = persona_passed = term_total = term_passed = 0
    for case in cases:
        quality, failures, guard, fallbacks = await evaluate_case(
            case,
            patient=patient,
            personas=personas,
            doctors=doctors,
            seed=seed,
            fact_unit=fact_unit,
        )
        report.per_case.append(quality)
        report.unvoiceable_facts += [f"{case.id}:{i}" for i in quality.unvoiceable]
        room = max_failures - len(report.failures)
        report.failures.extend(failures[: max(0, room)])
        report.patient_turns += quality.patient_turns
        report.recall_hits += quality.recall_hits
        report.recall_total += quality.recall_total
        report.leak_dx += quality.leak_dx
        report.leak_unasked += quality.leak_unasked
        report.hallucinated_turns += quality.hallucinated_turns
        report.guard_interventions += guard
        report.llm_fallbacks += fallbacks
        persona_checks += quality.persona_checks
        persona_passed += quality.persona_passed
        term_total += quality.termination_total
        term_passed += quality.termination_passed
        if on_case is not None:
            on_case(quality)
    report.recall = report.recall_hits / report.recall_total if report.recall_total else 1.0
    report.hallucination = (
        report.hallucinated_turns / report.patient_turns if report.patient_turns else 0.0
    )
    report.persona = persona_passed / persona_checks if persona_checks else 1.0
    report.termination = term_passed / term_total if term_total else 1.0
    report.seconds = round(time.perf_counter() - start, 2)
    return report
