"""The dynamic consultation benchmark: simulator + rubric generator + grader over a case set.

``run_consult_job`` runs ``medverify consult-bench`` and ``medverify demo``; ``ConsultBench``
is the per-consultation machinery (simulate, rubric, grade, persisted stage by stage) for code
that drives its own loop, e.g. the multi-turn training reward.
"""

from medverify.consult.bench import ConsultBench, make_units
from medverify.consult.pipeline import ConsultJob, ConsultOutcome, run_consult_job
from medverify.consult.process import ProcessMetrics, process_metrics
from medverify.consult.records import DIMENSIONS, ConsultResults, ConsultUnit, UnitOutcome
from medverify.consult.render import grader_input, render_transcript
from medverify.consult.scripted import SCRIPTED_DOCTORS, scripted_doctor, scripted_turns

__all__ = [
    "DIMENSIONS",
    "SCRIPTED_DOCTORS",
    "ConsultBench",
    "ConsultJob",
    "ConsultOutcome",
    "ConsultResults",
    "ConsultUnit",
    "ProcessMetrics",
    "UnitOutcome",
    "grader_input",
    "make_units",
    "process_metrics",
    "render_transcript",
    "run_consult_job",
    "scripted_doctor",
    "scripted_turns",
]
