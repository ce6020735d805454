"""The consultation environment: a simulated patient behind two hooks.

A verifiers-style multi-turn environment is "respond to the model's turn" and "is the episode
over". :class:`ConsultationEnv` is exactly that for a doctor model talking to a patient:
:meth:`~ConsultationEnv.respond` takes the doctor's words and returns the patient's
:class:`~medverify.cases.records.Turn`; :meth:`~ConsultationEnv.is_finished` says whether the
Termination Gate has ended it. Inside, each turn runs the Baichuan-M2 pipeline:

    doctor turn -> Fact Unit (record -> selected facts) -> Affective Unit (selected facts + persona
    -> words) -> Guard (no diagnosis, no differential, no unrevealed keyword) -> Gate

The same object serves evaluation (:func:`~medverify.simulator.consult.run_consultation`,
``medverify simulate``) and RL rollouts: it does no I/O besides the optional model backends of
the two units, and what happened behind each turn (the selection, Guard interventions, fallbacks)
is kept in :attr:`ConsultationEnv.traces` without changing the transcript format.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from medverify.cases.records import CaseRecord, Persona, TerminationReason, Transcript, Turn
from medverify.simulator.affective import (
    NOTHING_OPEN,
    AffectiveUnit,
    LLMAffectiveUnit,
    Rendering,
    TemplateAffectiveUnit,
    Utterance,
    closing_line,
    goodbye_line,
)
from medverify.simulator.fact_unit import FactSelection, FactUnit, OfflineFactUnit
from medverify.simulator.fact_unit_llm import LLMFactUnit
from medverify.simulator.gate import DEFAULT_MAX_TURNS, TerminationGate
from medverify.simulator.guard import Guard, GuardResult

if TYPE_CHECKING:
    from medverify.backends.base import Backend

log = logging.getLogger(__name__)


class TurnTrace(BaseModel):
    """What happened behind one patient turn (for debugging, metrics and training logs)."""

    doctor_text: str
    patient_text: str
    selection: FactSelection | None = None
    guard: GuardResult | None = None
    affective_mode: str = "template"
    new_fact_ids: list[str] = Field(default_factory=list)
    termination: TerminationReason | None = None


#: How many times an open invitation ("anything else?", "tell me more") brings out a new fact
#: in one consultation; after that the doctor has to ask about something.
MAX_VOLUNTEERED = 2


class ConsultationEnv:
    """One simulated patient for one consultation.

    Args:
        case: the patient's record (only the Fact Unit and the Guard read it).
        persona: how the patient talks (default: the case's persona, else a neutral one).
        fact_unit: decides what each doctor turn asks for (default: offline).
        affective_unit: says it (default: templates).
        guard: checks each turn (default: :class:`Guard`).
        gate: ends the consultation (default: 10 doctor turns, the persona's patience).
        seed: fixes the template patient's wording.
    """

    def __init__(
        self,
        case: CaseRecord,
        persona: Persona | None = None,
        fact_unit: FactUnit | None = None,
        affective_unit: AffectiveUnit | None = None,
        guard: Guard | None = None,
        gate: TerminationGate | None = None,
        seed: int = 0,
    ) -> None:
        self.case = case
        self.persona = persona or case.persona or Persona()
        self.fact_unit: FactUnit = fact_unit or OfflineFactUnit()
        self.affective: AffectiveUnit = affective_unit or TemplateAffectiveUnit()
        self.guard = guard or Guard()
        self.gate = gate or TerminationGate(patience=self.persona.patience)
        self.seed = seed
        self.transcript = Transcript(
            case_id=case.id, persona=self.persona, max_turns=self.gate.max_turns
        )
        self.revealed: set[str] = set()
        self.volunteered = 0
        self.traces: list[TurnTrace] = []
        fallback = getattr(self.affective, "fallback", None)
        self._template = fallback if isinstance(fallback, TemplateAffectiveUnit) else None
        self._template = self._template or TemplateAffectiveUnit()

    @classmethod
    def create(
        cls,
        case: CaseRecord,
        *,
        patient: Backend | None = None,
        persona: Persona | None = None,
        seed: int = 0,
        max_turns: int = DEFAULT_MAX_TURNS,
        offline_fact_unit: OfflineFactUnit | None = None,
    ) -> ConsultationEnv:
        """An environment in offline mode (``patient=None``) or LLM mode (both units on the model).

        ``offline_fact_unit`` lets many environments share one unit (and its fact embeddings).
        """
        persona = persona or case.persona or Persona()
        offline = offline_fact_unit or OfflineFactUnit()
        fact_unit: FactUnit
        affective: AffectiveUnit
        if patient is None:
            fact_unit, affective = offline, TemplateAffectiveUnit()
        else:
            fact_unit = LLMFactUnit(patient, fallback=offline)
            affective = LLMAffectiveUnit(patient)
        gate = TerminationGate(max_turns=max_turns, patience=persona.patience)
        return cls(case, persona, fact_unit, affective, Guard(), gate, seed)

    # -- the two hooks ---------------------------------------------------------------------

    def opening(self) -> Turn:
        """The patient's first words (the chief complaint); recorded once."""
        if self.transcript.turns:
            return self.transcript.turns[0]
        text = self._template.opening_sync(
            self.persona, chief_complaint=self.case.chief_complaint, seed=self.seed
        )
        result = self.guard.check(
            Rendering(parts=[Utterance(text=text)]), self.case, self.revealed, self.persona
        )
        turn = Turn(role="patient", text=result.text or "Hello, doctor.")
        self.transcript.turns.append(turn)
        return turn

    async def respond(self, doctor_text: str) -> Turn:
        """The patient's reply to ``doctor_text`` (the "patient responds" hook).

        Raises:
            RuntimeError: the consultation is already over.
        """
        if self.is_finished():
            raise RuntimeError(f"consultation {self.case.id} is over ({self.gate.reason})")
        if not self.transcript.turns:
            self.opening()
        self.transcript.turns.append(Turn(role="doctor", text=doctor_text))
        index = self.gate.doctor_turns
        if self.gate.on_doctor_turn(doctor_text) == "diagnosis":
            self.transcript.final_diagnosis = self.gate.final_diagnosis
            self.transcript.termination_reason = "diagnosis"
            text = closing_line(self.persona, self.seed + index)
            return self._record(doctor_text, text, [], None, None, "template")
        selection = await self.fact_unit.select(self.case, doctor_text, revealed=self.revealed)
        selection = self._limit_volunteered(selection)
        result, mode = await self._speak(doctor_text, selection, self.seed + index)
        text = result.text or NOTHING_OPEN[0]
        told = result.revealed_fact_ids
        new = [i for i in told if i not in self.revealed]
        self.revealed.update(told)
        productive = bool(
            new
            or selection.missing_exam_items
            or selection.missing_test_items
            or selection.intent == "chief_complaint"
        )
        reason = self.gate.on_patient_turn(elicited_new=productive)
        if reason is not None:
            self.transcript.termination_reason = reason
        if reason == "patient_left":
            text = f"{text} {goodbye_line(self.persona, self.seed + index)}"
        return self._record(doctor_text, text, told, selection, result, mode, new)

    def is_finished(self) -> bool:
        """Whether the consultation is over (the "is finished" hook)."""
        return self.gate.finished

    def fork(self) -> ConsultationEnv:
        """An independent copy of the consultation so far, sharing the (stateless) units.

        Verifier-guided search tries several doctor turns from the same point: each candidate
        is played in its own fork, so the patient's reply and the gate's state are exactly what
        the real consultation would produce, and the original is untouched.
        """
        twin = copy.copy(self)
        twin.transcript = self.transcript.model_copy(deep=True)
        twin.gate = self.gate.model_copy(deep=True)
        twin.revealed = set(self.revealed)
        twin.traces = list(self.traces)
        return twin

    # -- internals ------------------------------------------------------------------------

    def _limit_volunteered(self, selection: FactSelection) -> FactSelection:
        """Let an open invitation ("anything else?") bring out a new fact a few times only.

        A patient asked "is there anything else?" mentions what else is on their mind; asked
        the same five times, they do not hand over five more record facts. Without this limit
        a doctor trained against the simulator learned to repeat "Can you tell me more about
        that?" and collect one new fact per turn without asking about anything.
        """
        fresh = [i for i in selection.volunteered_ids if i not in self.revealed]
        if not fresh:
            return selection
        if self.volunteered < MAX_VOLUNTEERED:
            self.volunteered += 1
            return selection
        keep = [i for i in selection.fact_ids if i not in fresh]
        update: dict[str, object] = {"fact_ids": keep, "volunteered_ids": []}
        if not keep and selection.intent == "facts":
            update["intent"] = "anything_else"
        return selection.model_copy(update=update)

    async def _speak(
        self, doctor_text: str, selection: FactSelection, seed: int
    ) -> tuple[GuardResult, str]:
        """Render the selection, then let the Guard veto: regenerate once, then use templates."""
        selected = [self.case.fact(i) for i in selection.fact_ids]
        allowed = self.revealed | set(selection.fact_ids)
        kwargs = {
            "chief_complaint": self.case.chief_complaint,
            "intent": selection.intent,
            "yes_no": selection.yes_no,
            "missing_exam_items": selection.missing_exam_items,
            "missing_test_items": selection.missing_test_items,
            "seed": seed,
        }
        rendering = await self.affective.compose(selected, self.persona, doctor_text, **kwargs)
        result = self.guard.check(rendering, self.case, allowed, self.persona)
        if rendering.mode != "llm":
            return result, "template"
        first = [v for v in result.violations if v.voice == "patient"]
        if not first:
            return result, "llm"
        log.info("guard vetoed the patient model (%s); regenerating", first[0].term)
        again = await self.affective.compose(
            selected, self.persona, doctor_text, attempt=1, **kwargs
        )
        second = self.guard.check(again, self.case, allowed, self.persona)
        if not [v for v in second.violations if v.voice == "patient"]:
            return second.model_copy(
                update={"violations": first + second.violations, "action": "regenerated"}
            ), "llm"
        log.info("guard vetoed the patient model twice; using the template rendering")
        fallback = self._template.compose_sync(selected, self.persona, doctor_text, **kwargs)
        final = self.guard.check(fallback, self.case, allowed, self.persona)
        return final.model_copy(
            update={
                "violations": first + second.violations + final.violations,
                "action": "template_fallback",
            }
        ), "template"

    def _record(
        self,
        doctor_text: str,
        text: str,
        told: list[str],
        selection: FactSelection | None,
        result: GuardResult | None,
        mode: str,
        new: list[str] | None = None,
    ) -> Turn:
        requested = (
            [*selection.missing_exam_items, *selection.missing_test_items] if selection else []
        )
        turn = Turn(role="patient", text=text, revealed_fact_ids=told, requested=requested)
        self.transcript.turns.append(turn)
        self.traces.append(
            TurnTrace(
                doctor_text=doctor_text,
                patient_text=text,
                selection=selection,
                guard=result,
                affective_mode=mode,
                new_fact_ids=new or [],
                termination=self.gate.reason,
            )
        )
        return turn
