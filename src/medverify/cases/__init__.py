"""Case records and what reads or writes them: loading, personas, diagnosis matching, importers.

A case record is the ground truth of one patient (DESIGN.md "Case record"); a transcript is what
happened in one consultation over it. The patient simulator plays a case, the rubric generator
and the graders judge a consultation against it, and training samples from it: all of them read
cases from here, so none reaches into another's internals.
"""

from medverify.cases.loading import load_case, load_case_arg, load_cases
from medverify.cases.records import CaseRecord, Fact, Persona, Transcript, Turn

__all__ = [
    "CaseRecord",
    "Fact",
    "Persona",
    "Transcript",
    "Turn",
    "load_case",
    "load_case_arg",
    "load_cases",
]
