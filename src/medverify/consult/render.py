"""How a consultation is shown to a grader: the case presentation and the transcript.

A consultation rubric judges the doctor's whole conduct ("asks about fever before concluding",
"states the diagnosis", "explains it in plain words"), not one reply. So the response under
review is the full transcript, one ``Doctor:``/``Patient:`` line per turn, and the conversation
before it is a single user message presenting the case the way a supervising clinician would
see it: who the patient is and what they came with. The record's diagnosis and hidden findings
are not in it: criteria that need them name them themselves. The LLM judge fences the response
(nonce-delimited), so nothing a doctor model writes can change the judge's instructions; the
local grader reads the ``Doctor:`` lines.
"""

from __future__ import annotations

from medverify.cases.records import CaseRecord, Transcript

SPEAKERS = {"doctor": "Doctor", "patient": "Patient"}


def presentation(case: CaseRecord) -> str:
    """The case as the grader sees it before the transcript."""
    demo = case.demographics
    complaint = case.chief_complaint.strip().rstrip(".!?;: ")  # "fever." must not end in ".."
    who = f"{demo.age}-year-old {demo.sex}"
    if demo.occupation:
        who += f" ({demo.occupation})"
    return (
        "The response below is the transcript of a simulated medical consultation between a "
        f"doctor and a patient, a {who} presenting with: {complaint}. Judge the "
        "doctor's conduct over the whole consultation: the questions asked, examinations and "
        "tests requested, the final assessment (a line starting with 'DIAGNOSIS:') and plan, "
        "and how the doctor communicated."
    )


def render_transcript(transcript: Transcript) -> str:
    """One line per turn, ``Doctor: ...`` / ``Patient: ...``."""
    return "\n".join(f"{SPEAKERS[t.role]}: {t.text}" for t in transcript.turns)


def grader_input(case: CaseRecord, transcript: Transcript) -> tuple[list[dict[str, str]], str]:
    """``(conversation, response)`` for :meth:`medverify.grading.Grader.grade`."""
    return [{"role": "user", "content": presentation(case)}], render_transcript(transcript)
