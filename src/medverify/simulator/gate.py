"""The Termination Gate: when does a consultation end, and why?

A consultation ends in one of three ways (DESIGN.md "Doctor turns and the end of a
consultation"): the doctor gives a final assessment (a turn containing ``DIAGNOSIS:``; the text
after it, first line, is the final diagnosis), the doctor runs out of turns (default 10), or the
patient leaves because the doctor keeps asking things that get nowhere -- ``persona.patience``
consecutive doctor turns that elicit nothing new (no fact revealed, no exam or test done);
``patience=None`` never leaves. The reason is recorded so that benchmarks can tell a doctor that
diagnosed from one that was cut off. Pure state machine, no I/O.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from medverify.cases.diagnosis import extract_diagnosis
from medverify.cases.records import TerminationReason

DEFAULT_MAX_TURNS = 10


class TerminationGate(BaseModel):
    """Counts doctor turns and unproductive turns; decides when the consultation is over.

    Attributes:
        max_turns: most doctor turns.
        patience: consecutive unproductive doctor turns the patient tolerates (``None``: never
            leaves).
        doctor_turns: doctor turns seen so far.
        unproductive_streak: consecutive doctor turns that elicited nothing new.
        reason: why it ended (``None`` while it goes on).
        final_diagnosis: the doctor's final assessment, when given.
    """

    max_turns: int = Field(DEFAULT_MAX_TURNS, ge=1)
    patience: int | None = Field(None, ge=1)
    doctor_turns: int = 0
    unproductive_streak: int = 0
    reason: TerminationReason | None = None
    final_diagnosis: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the consultation is over."""
        return self.reason is not None

    def on_doctor_turn(self, text: str) -> TerminationReason | None:
        """Count a doctor turn; a final assessment ends the consultation at once."""
        self.doctor_turns += 1
        diagnosis = extract_diagnosis(text)
        if diagnosis is not None:
            self.final_diagnosis = diagnosis
            self.reason = "diagnosis"
        return self.reason

    def on_patient_turn(self, *, elicited_new: bool) -> TerminationReason | None:
        """Record whether the doctor's last turn got anything new; maybe end the consultation."""
        if self.reason is not None:
            return self.reason
        self.unproductive_streak = 0 if elicited_new else self.unproductive_streak + 1
        if self.patience is not None and self.unproductive_streak >= self.patience:
            self.reason = "patient_left"
        elif self.doctor_turns >= self.max_turns:
            self.reason = "turn_limit"
        return self.reason

    def last_turn(self) -> bool:
        """Whether the doctor's next turn is its last (to ask it for a final assessment)."""
        return self.reason is None and self.doctor_turns + 1 >= self.max_turns
