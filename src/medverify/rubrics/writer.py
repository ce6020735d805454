"""The LLM rubric writer: case-specific criteria from any backend, validated, never trusted blindly.

The deterministic core knows only what the record says and a few generic rules. A capable model
knows, for instance, that myasthenia gravis needs questions about swallowing and breathing, or
that a pregnant patient with listeriosis needs ampicillin rather than a cephalosporin. The writer
asks a backend (any spec: ``openai:gpt-4.1``, a vLLM-served model, ``local``) for such criteria
as JSON, shows it the criteria the core already has so that it adds rather than repeats, and
checks every item it returns: schema, points (-10..10, not 0), one known dimension and one known
axis. Items that fail are dropped and reported; a reply that is not usable at all is asked for
again, with the problem stated, a bounded number of times. If no usable reply comes, or the
backend fails, the result says so and the caller keeps the core: the writer can lower a
rubric's richness, never crash a run. The writer may see the whole record (it is not the
patient).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from medverify.backends.base import Backend, Message
from medverify.cases.records import CaseRecord, Transcript
from medverify.errors import BackendError
from medverify.grading.records import RubricItem
from medverify.rubrics.records import AXES, DIMENSIONS, item
from medverify.rubrics.validate import item_problems

log = logging.getLogger(__name__)

WRITER_SYSTEM = f"""\
You are an experienced clinician writing a grading rubric for a trainee's consultation with a \
patient. You get the patient's full case record and the criteria already in the rubric. Add \
case-specific criteria an expert examiner would check that are NOT already covered: key \
questions for this diagnosis, red flags to exclude, the right treatment and what must be \
avoided, safety advice, communication suited to this patient.

Rules:
- Each criterion describes one observable behaviour of the doctor, checkable from the \
transcript ("Asks whether ...", "Recommends ...", "Explains ...").
- points: an integer from 1 to 10 for desirable behaviour (10 = essential), from -1 to -10 for \
harmful or wrong behaviour (e.g. an unsafe drug, a missed emergency). Never 0.
- dimension: one of {", ".join(DIMENSIONS)}.
- axis: one of {", ".join(AXES)}.
- At most {{max_items}} criteria. Do not repeat existing criteria.

Answer with JSON only, exactly in this form:
{{{{"items": [{{{{"criterion": "...", "points": 5, "dimension": "consultation_logic", \
"axis": "completeness"}}}}]}}}}"""


class WriterResult(BaseModel):
    """What the writer produced: valid items, problems met, and whether it succeeded at all."""

    items: list[RubricItem] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    attempts: int = 0
    ok: bool = False


def case_summary(case: CaseRecord) -> str:
    """The record as the writer sees it: every fact by id, the diagnosis, persona, plan."""
    demo = case.demographics
    lines = [
        f"Case {case.id}: {demo.age}-year-old {demo.sex}"
        + (f", {demo.occupation}" if demo.occupation else ""),
        f"Chief complaint: {case.chief_complaint}",
        "History facts:",
        *[f"- [{f.id}] ({f.category}) {f.text}" for f in case.facts],
    ]
    if case.exam_findings:
        lines += ["Examination findings:", *[f"- [{f.id}] {f.text}" for f in case.exam_findings]]
    if case.test_results:
        lines += ["Test results:", *[f"- [{f.id}] {f.text}" for f in case.test_results]]
    lines.append(f"Diagnosis: {case.diagnosis}")
    if case.differential:
        lines.append("Differential: " + "; ".join(case.differential))
    if case.red_flags:
        lines.append("Red flags: " + "; ".join(case.red_flags))
    if case.management:
        lines.append("Management: " + "; ".join(case.management))
    if case.persona:
        p = case.persona
        lines.append(
            f"Patient: {p.personality}; health literacy {p.health_literacy}; {p.emotional_state}"
        )
    return "\n".join(lines)


def writer_messages(
    case: CaseRecord,
    existing: Sequence[RubricItem],
    transcript: Transcript | None = None,
    *,
    max_items: int = 10,
) -> list[Message]:
    """The writer's request: the record, the consultation (if any), the existing criteria.

    Args:
        case: the case record (the writer may see all of it).
        existing: the criteria the rubric already has, so the writer adds rather than repeats.
        transcript: the consultation to be graded, when there is one.
        max_items: most new criteria to ask for.

    Returns:
        The system and user messages.
    """
    parts = [case_summary(case), "", "Criteria already in the rubric:"]
    parts += [f"- ({it.points:+d}) {it.criterion}" for it in existing]
    if transcript is not None and transcript.turns:
        parts += ["", "The consultation to be graded (criteria may refer to what happened):"]
        parts += [f"{t.role}: {t.text}" for t in transcript.turns]
    parts += ["", f"Write up to {max_items} new criteria as JSON."]
    return [
        Message(role="system", content=WRITER_SYSTEM.format(max_items=max_items)),
        Message(role="user", content="\n".join(parts)),
    ]


class _Draft(BaseModel):
    criterion: str
    points: int
    dimension: str | None = None
    axis: str | None = None
    tags: list[str] = Field(default_factory=list)


def _payload(text: str) -> Any:
    cleaned = re.sub(r"^```(?:json)?\s*|```\s*$", "", text.strip(), flags=re.MULTILINE).strip()
    for candidate in (cleaned, *(m.group(0) for m in re.finditer(r"\{.*\}|\[.*\]", cleaned, re.S))):
        try:
            return json.loads(candidate)
        except (json.JSONDecodeError, ValueError):
            continue
    raise ValueError("no JSON object or list in the reply")


def parse_items(text: str) -> tuple[list[RubricItem], list[str]]:
    """Valid rubric items from a writer reply, and a problem line for each rejected entry.

    Accepts ``{"items": [...]}`` or a bare list; each entry has ``criterion``, ``points`` and
    either ``dimension`` + ``axis`` or ``tags`` (``dimension:...``, ``axis:...``).

    Raises:
        ValueError: the reply holds no JSON list of items at all.
    """
    data = _payload(text)
    if isinstance(data, dict):
        data = data.get("items", data.get("criteria", data.get("rubric")))
    if not isinstance(data, list):
        raise ValueError("the JSON has no 'items' list")
    items: list[RubricItem] = []
    problems: list[str] = []
    for index, entry in enumerate(data):
        try:
            draft = _Draft.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "entry"
            problems.append(f"item {index}: {where}: {first['msg']}")
            continue
        dims = [t.split(":", 1)[1] for t in draft.tags if t.startswith("dimension:")]
        axes = [t.split(":", 1)[1] for t in draft.tags if t.startswith("axis:")]
        dimension = draft.dimension or (dims[0] if len(dims) == 1 else None)
        axis = draft.axis or (axes[0] if len(axes) == 1 else None)
        dimension = dimension.removeprefix("dimension:") if dimension else None
        axis = axis.removeprefix("axis:") if axis else None
        if dimension not in DIMENSIONS:
            problems.append(f"item {index}: unknown dimension {dimension!r}")
            continue
        if axis not in AXES:
            problems.append(f"item {index}: unknown axis {axis!r}")
            continue
        try:
            candidate = item(draft.criterion.strip(), draft.points, dimension, axis)  # type: ignore[arg-type]
        except ValidationError as exc:
            problems.append(f"item {index}: {exc.errors()[0]['msg']}")
            continue
        bad = item_problems(candidate)
        if bad:
            problems.append(f"item {index}: {'; '.join(bad)}")
            continue
        items.append(candidate)
    return items, problems


async def write_items(
    writer: Backend,
    case: CaseRecord,
    existing: Sequence[RubricItem],
    transcript: Transcript | None = None,
    *,
    seed: int = 0,
    max_items: int = 10,
    max_attempts: int = 3,
    temperature: float = 0.7,
    max_tokens: int = 1500,
) -> WriterResult:
    """Ask ``writer`` for case-specific criteria; never raises for a misbehaving writer.

    A reply that cannot be parsed, or whose every item is invalid, is answered with the problem
    and asked again, up to ``max_attempts`` calls. Attempt ``k`` samples with seed
    ``seed + 1000 * k`` so a cached or greedy bad reply is not just repeated.

    Args:
        writer: the backend that writes the criteria.
        case: the case record.
        existing: the criteria the rubric already has.
        transcript: the consultation to be graded, when there is one.
        seed: the sampling seed of the first attempt.
        max_items: most items kept.
        max_attempts: most calls to the writer.
        temperature: sampling temperature.
        max_tokens: most tokens per reply.

    Returns:
        The valid items (at most ``max_items``) and a warning per problem; ``ok`` is False when
        no usable reply came (the caller then keeps the core only).
    """
    messages = writer_messages(case, existing, transcript, max_items=max_items)
    result = WriterResult()
    for attempt in range(max_attempts):
        result.attempts = attempt + 1
        try:
            completion = await writer.complete(
                messages,
                temperature=temperature,
                max_tokens=max_tokens,
                seed=seed + 1000 * attempt,
            )
        except BackendError as exc:
            result.warnings.append(f"rubric writer {writer.spec} failed: {exc}")
            return result
        try:
            items, problems = parse_items(completion.text)
        except ValueError as exc:
            problem = f"{exc}; reply began {completion.text[:80]!r}"
            result.warnings.append(f"writer attempt {attempt + 1}: {problem}")
            messages = [
                *messages,
                Message(role="assistant", content=completion.text),
                Message(
                    role="user",
                    content=f"Your reply could not be used: {exc}. Answer again with the JSON "
                    "object only.",
                ),
            ]
            continue
        if not items and problems:
            result.warnings.append(
                f"writer attempt {attempt + 1}: every item was invalid ({'; '.join(problems[:3])})"
            )
            messages = [
                *messages,
                Message(role="assistant", content=completion.text),
                Message(
                    role="user",
                    content="None of your criteria could be used: "
                    + "; ".join(problems[:5])
                    + ". Answer again with the JSON object only.",
                ),
            ]
            continue
        if problems:
            result.warnings.append(
                f"writer: dropped {len(problems)} invalid item(s): {'; '.join(problems[:5])}"
            )
        if len(items) > max_items:
            result.warnings.append(f"writer: kept the first {max_items} of {len(items)} items")
            items = items[:max_items]
        result.items = items
        result.ok = True
        return result
    result.warnings.append(
        f"rubric writer {writer.spec} gave no usable reply in {max_attempts} attempts; "
        "the rubric is the core only"
    )
    return result
