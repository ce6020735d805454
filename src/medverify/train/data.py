"""Training datasets: MCQ items, HealthBench rubrics and consultation cases as TRL datasets.

Every stage's prompts come from here, in TRL's conversational format (``prompt`` is a list of
chat messages) with the columns its reward reads: ``answer``/``options`` for the rule reward,
``rubric`` for the rubric reward, ``case_id`` for consultations. Small sets ship with the package
(``medverify/train/data``, see its SOURCES.md), so a smoke run needs no download; ``source:`` in
a stage config points at larger files of the same formats.

The last ``eval_limit`` items of each source are held out for the after-stage evaluation and
never trained on.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medverify.cases.loading import load_bundled_cases, load_cases
from medverify.cases.records import CaseRecord
from medverify.errors import InputError
from medverify.healthbench.data import load_examples
from medverify.simulator.consult import DEFAULT_DOCTOR_SYSTEM_PROMPT
from medverify.simulator.environment import ConsultationEnv

MCQ_SYSTEM_PROMPT = (
    "You are a physician answering a medical exam question. Reply with the letter of the single "
    "best option, as 'Answer: X'."
)
RUBRIC_SYSTEM_PROMPT = "You are a careful, helpful medical assistant."
BUNDLED = "bundled"


class McqItem(BaseModel):
    """A multiple-choice (or short-answer, when ``options`` is empty) item with its answer."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    options: dict[str, str] = Field(default_factory=dict)
    answer: str = Field(min_length=1)


def _data_file(name: str) -> Path:
    return Path(str(resources.files("medverify.train").joinpath("data", name)))


def load_mcq(source: str = BUNDLED) -> list[McqItem]:
    """MCQ items from a JSONL file (``bundled``: the 64 MedQA items that ship).

    Raises:
        InputError: naming the file, line and field of the first bad line.
    """
    path = _data_file("medqa_mcq64.jsonl") if source == BUNDLED else Path(source)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read MCQ items ({exc.strerror})", path=path) from None
    items = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = McqItem.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise InputError(f"not JSON ({exc.msg})", path=path, line=number) from None
        except RecursionError:
            raise InputError("not valid JSON (nested too deeply)", path=path, line=number) from None
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise InputError(err["msg"], path=path, line=number, field=field) from None
        if item.options and item.answer not in item.options:
            raise InputError(
                f"answer {item.answer!r} is not one of the options {sorted(item.options)}",
                path=path,
                line=number,
                field="answer",
            )
        items.append(item)
    if not items:
        raise InputError("no MCQ items", path=path)
    return items


def mcq_messages(item: McqItem) -> list[dict[str, str]]:
    """The chat prompt of an MCQ item."""
    options = "\n".join(f"{k}. {v}" for k, v in sorted(item.options.items()))
    body = f"{item.question}\n\n{options}" if options else item.question
    return [
        {"role": "system", "content": MCQ_SYSTEM_PROMPT},
        {"role": "user", "content": body},
    ]


def mcq_rows(items: list[McqItem]) -> list[dict[str, Any]]:
    """Rows for the rule reward: ``prompt``, ``answer``, ``options`` (JSON), ``id``."""
    return [
        {
            "id": item.id,
            "prompt": mcq_messages(item),
            "answer": item.answer,
            "options": json.dumps(item.options) if item.options else "",
        }
        for item in items
    ]


def case_answer_items(cases: list[CaseRecord]) -> list[McqItem]:
    """Short-answer items from case records: the whole vignette, the diagnosis as the answer."""
    out = []
    for case in cases:
        facts = " ".join(f.text for f in case.all_facts())
        question = (
            f"{case.chief_complaint} {facts}\nWhat is the most likely diagnosis? "
            "Reply as 'DIAGNOSIS: <diagnosis>'."
        )
        out.append(McqItem(id=case.id, question=question, answer=case.diagnosis))
    return out


def load_healthbench(source: str = BUNDLED) -> list[Any]:
    """HealthBench examples (``bundled``: 8 shipped rows)."""
    path = _data_file("healthbench_sample8.jsonl") if source == BUNDLED else Path(source)
    return list(load_examples(path).examples)


def rubric_rows(examples: list[Any]) -> list[dict[str, Any]]:
    """Rows for the rubric reward: ``prompt`` (the conversation), ``rubric`` (JSON), ``id``."""
    rows = []
    for ex in examples:
        messages = ex.messages()
        if messages[0]["role"] != "system":
            messages = [{"role": "system", "content": RUBRIC_SYSTEM_PROMPT}, *messages]
        rows.append(
            {
                "id": ex.prompt_id,
                "prompt": messages,
                "rubric": json.dumps([r.model_dump() for r in ex.rubrics]),
            }
        )
    return rows


def load_case_set(source: str = BUNDLED) -> list[CaseRecord]:
    """Case records (``bundled``: the 36 that ship with the simulator)."""
    return load_bundled_cases() if source == BUNDLED else load_cases(source)


def consultation_rows(cases: list[CaseRecord], *, seed: int = 0) -> list[dict[str, Any]]:
    """Rows for multi-turn RL: the doctor's system prompt and the patient's opening, ``case_id``."""
    rows = []
    for case in cases:
        opening = ConsultationEnv.create(case, seed=seed).opening()
        rows.append(
            {
                "id": case.id,
                "case_id": case.id,
                "prompt": [
                    {"role": "system", "content": DEFAULT_DOCTOR_SYSTEM_PROMPT},
                    {"role": "user", "content": opening.text},
                ],
            }
        )
    return rows


def split(
    rows: list[Any], eval_count: int, limit: int | None = None
) -> tuple[list[Any], list[Any]]:
    """``(train, held_out)``: the last ``eval_count`` rows are held out; ``limit`` caps train."""
    if eval_count >= len(rows):
        eval_count = max(0, len(rows) // 4)
    train = rows[: len(rows) - eval_count] if eval_count else list(rows)
    held = rows[len(rows) - eval_count :] if eval_count else []
    return (train[:limit] if limit else train), held


def task_rows(task: str, source: str) -> list[dict[str, Any]]:
    """All rows of a task's data source (before the train/eval split)."""
    if task == "rule":
        if source == "bundled:cases":
            return mcq_rows(case_answer_items(load_case_set(BUNDLED)))
        return mcq_rows(load_mcq(source))
    if task == "rubric":
        return rubric_rows(load_healthbench(source))
    if task == "consultation":
        return consultation_rows(load_case_set(source))
    raise ValueError(f"unknown task {task!r}")
