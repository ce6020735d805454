"""Verifier-guided search: the policy's own consultations, each turn chosen by the verifier.

Expert iteration needs good samples to learn from, and a 135M doctor sampled whole consultations
at a time almost never produces one (every turn must go right at once). So the search branches
per turn, as step-level rejection sampling does: at each doctor turn the policy samples
``candidates`` replies; each is played in its own fork of the patient simulator
(:meth:`~medverify.simulator.environment.ConsultationEnv.fork`), and the verifier's evidence picks
one:

* on a question turn, the reply after which the consultation so far scores best, as if it
  stopped there (:meth:`~medverify.consult.task.ConsultationTask.score`'s reward: the history
  items its answer met, the examination asked for with consent, a repeated question or a made-up
  finding charged), ties to the reply that revealed more record facts; a reply that ends the
  consultation before the last turn is never chosen;
* on the last turn (the task's nudge to conclude), each closing statement's whole consultation
  is scored by :meth:`~medverify.consult.task.ConsultationTask.score` and the best reward wins.
  The closing is sampled in the two lines the task's instructions ask for: ``candidates``
  diagnosis lines, then for each ``plan_samples`` ``PLAN:`` lines written after it; every line
  alone and with each of its plans is a candidate. Sampled whole, a 135M doctor's closing
  seldom reaches a plan, and a diagnosis with no test to confirm it is charged as a definitive
  one: its named diagnoses then lost to closings that named nothing, and it learned not to name.

Ties go to the shorter reply. Every chosen reply is the policy's own text; the search only
selects. What the search may add, it says: ``search_prompt`` replaces the doctor's instructions
*while sampling* question turns (the targets are trained under the task's own prompt, so this
is context distillation), and ``closing_prefix`` starts the closing turn with the answer format
the task's nudge asks for (``DIAGNOSIS:``), as ``plan_prefix`` starts its plan line; the diagnosis
and the plan after them are sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, Field

from medverify.backends.base import Message
from medverify.cases.closing import names_condition
from medverify.cases.diagnosis import extract_diagnosis
from medverify.consult.task import ConsultationScore, ConsultationTask
from medverify.grading import Grader
from medverify.simulator.environment import ConsultationEnv
from medverify.simulator.fact_unit import OfflineFactUnit

#: The instruction question turns are sampled under (never trained on).
SEARCH_PROMPT = (
    "You are a doctor. Reply with one short question to the patient about their symptoms or "
    "history, or say which examination or test you want."
)
CLOSING_PREFIX = "DIAGNOSIS:"
PLAN_PREFIX = "\nPLAN:"


class Sampler(Protocol):
    """Draws ``n`` replies of the policy to one conversation."""

    def sample(
        self,
        messages: Sequence[Message],
        *,
        n: int,
        max_new_tokens: int,
        prefix: str = "",
        stop: Sequence[str] | None = None,
    ) -> list[str]:
        """``n`` sampled replies (each beginning with ``prefix`` when one is given).

        ``stop``: strings a reply may end at (``None``: at its question mark when there is no
        prefix, else only at ``max_new_tokens``).
        """
        ...


class SearchSettings(BaseModel):
    """How the search samples and chooses."""

    candidates: int = Field(12, ge=1, description="replies sampled per doctor turn")
    turn_tokens: int = Field(32, ge=4, description="most tokens of a question turn")
    closing_tokens: int = Field(48, ge=4, description="most tokens of the closing turn")
    search_prompt: str | None = Field(
        SEARCH_PROMPT, description="instructions while sampling question turns (None: the task's)"
    )
    closing_prefix: str = CLOSING_PREFIX
    plan_prefix: str | None = Field(
        PLAN_PREFIX, description="starts the plan line after a diagnosis line (None: one stage)"
    )
    plan_samples: int = Field(2, ge=1, description="plan lines sampled per diagnosis line")
    plan_tokens: int = Field(32, ge=4, description="most tokens of a plan line")
    closings_kept: int = Field(
        1, ge=1, description="best distinct closings of a consultation offered as targets"
    )
    rubric_weight: float = Field(1.0, ge=0)
    process_weight: float = Field(0.5, ge=0)


class ScoredClosing(BaseModel):
    """A closing statement the search did not choose, with its consultation's reward."""

    text: str
    reward: float
    named: bool | None = Field(
        None, description="whether it names a condition (the process measure); None: unrecorded"
    )


class SearchStep(BaseModel):
    """One chosen doctor turn: what the doctor saw (under the task's prompt) and said."""

    messages: list[dict[str, str]]
    text: str
    closing: bool = False
    new_findings: int = 0
    gain: float = Field(0.0, description="change of the consultation's reward by this turn")
    reward: float | None = None
    runners_up: list[ScoredClosing] = Field(
        default_factory=list, description="the next-best closings (``closings_kept`` - 1)"
    )


class SearchedConsultation(BaseModel):
    """A consultation built by the search, with its final verifier score."""

    case_id: str
    steps: list[SearchStep]
    transcript: dict[str, Any]
    reward: float | None
    score: float | None
    facts_elicited: float
    diagnosis_named: bool
    diagnosis_correct: bool
    termination: str | None


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].rstrip()


def closing_candidates(
    sampler: Sampler, messages: Sequence[Message], settings: SearchSettings
) -> list[str]:
    """The distinct closing statements to try: diagnosis lines, alone and with their plans."""
    lines = sampler.sample(
        messages,
        n=settings.candidates,
        max_new_tokens=settings.closing_tokens,
        prefix=settings.closing_prefix,
        stop=None if settings.plan_prefix is None else ["\n"],
    )
    if settings.plan_prefix is None:  # one stage: each sample is a whole closing
        return list(dict.fromkeys(t.strip() for t in lines))
    out: list[str] = []
    for line in dict.fromkeys(_first_line(t) for t in lines):
        out.append(line)
        if not line.removeprefix(settings.closing_prefix.strip()).strip():
            continue  # no diagnosis to plan for
        start = line + settings.plan_prefix
        plans = sampler.sample(
            messages,
            n=settings.plan_samples,
            max_new_tokens=settings.plan_tokens,
            prefix=start,
            stop=["\n"],
        )
        for plan in plans:
            said = _first_line(plan.removeprefix(start)) if plan.startswith(start) else ""
            if said:
                out.append(f"{start} {said}")
    return list(dict.fromkeys(out))


def _one_question(text: str) -> str:
    """A question turn ends at its first question mark (the task asks one question per turn)."""
    text = text.strip()
    if "?" in text:
        text = text[: text.index("?") + 1]
    return text


async def _scored(
    task: ConsultationTask, env: ConsultationEnv, grader: Grader, settings: SearchSettings
) -> tuple[float, ConsultationScore]:
    """The consultation's reward as if it stopped here, and its score.

    The reward is ``-inf`` when a verdict failed, so an unscored reply is never chosen.
    """
    scored = await task.score(env.transcript, grader)
    value = scored.reward(
        rubric_weight=settings.rubric_weight, process_weight=settings.process_weight
    )
    return (value if value is not None else float("-inf")), scored


@dataclass(frozen=True)
class _Option:
    """One sampled question turn, played in its own fork."""

    text: str
    reward: float
    new_findings: int
    fork: ConsultationEnv

    def key(self) -> tuple[float, int, int]:
        return (self.reward, self.new_findings, -len(self.text))


async def _try_question(
    task: ConsultationTask,
    env: ConsultationEnv,
    text: str,
    grader: Grader,
    settings: SearchSettings,
) -> _Option:
    fork = env.fork()
    before = len(fork.revealed)
    await fork.respond(text)
    gained = len(fork.revealed) - before
    if fork.is_finished() and fork.transcript.termination_reason == "diagnosis":
        # concluded before the last turn: never chosen as a question
        return _Option(text=text, reward=float("-inf"), new_findings=-1, fork=fork)
    reward, _ = await _scored(task, fork, grader, settings)
    return _Option(text=text, reward=reward, new_findings=gained, fork=fork)


async def guided_consultation(
    task: ConsultationTask,
    sampler: Sampler,
    grader: Grader,
    settings: SearchSettings,
    *,
    fact_unit: OfflineFactUnit | None = None,
) -> SearchedConsultation:
    """One consultation of ``task`` whose every doctor turn the verifier chose among samples."""
    env = task.environment(fact_unit=fact_unit)
    env.opening()
    steps: list[SearchStep] = []
    final: ConsultationScore | None = None
    reward: float | None = None
    current: float | None = None  # the reward of the consultation so far, once scored
    while not env.is_finished():
        last = env.gate.last_turn()
        seen = task.doctor_messages(env.transcript, last_turn=last)
        shown = [{"role": m.role, "content": m.content} for m in seen]
        if last:
            tried: list[tuple[tuple[float, int], str, ConsultationEnv, ConsultationScore]] = []
            for text in closing_candidates(sampler, seen, settings):
                fork = env.fork()
                await fork.respond(text)
                value, scored = await _scored(task, fork, grader, settings)
                tried.append(((value, -len(text)), text, fork, scored))
            tried.sort(key=lambda t: t[0], reverse=True)
            (value, _), text, env, final = tried[0]
            reward = value if value != float("-inf") else None
            runners_up = [
                ScoredClosing(text=t, reward=key[0], named=other.process.diagnosis_given)
                for key, t, _, other in tried[1 : settings.closings_kept]
                if key[0] != float("-inf")
            ]
            steps.append(
                SearchStep(
                    messages=shown, text=text, closing=True, reward=reward, runners_up=runners_up
                )
            )
            break
        sampling = list(seen)
        if settings.search_prompt is not None:
            sampling[0] = Message(role="system", content=settings.search_prompt)
        texts = sampler.sample(sampling, n=settings.candidates, max_new_tokens=settings.turn_tokens)
        options = [t for t in dict.fromkeys(_one_question(t) for t in texts) if t]
        if current is None:  # the opening; after it, the chosen turn's reward carries over
            current, _ = await _scored(task, env, grader, settings)
        before = current
        chosen: _Option | None = None
        for text in options or ["Can you tell me more?"]:
            option = await _try_question(task, env, text, grader, settings)
            if chosen is None or option.key() > chosen.key():
                chosen = option
        assert chosen is not None
        env, current = chosen.fork, chosen.reward
        steps.append(
            SearchStep(
                messages=shown,
                text=chosen.text,
                new_findings=max(chosen.new_findings, 0),
                gain=chosen.reward - before if chosen.reward != float("-inf") else 0.0,
            )
        )
    if final is None:  # the patient left, or the gate ended it before the last turn
        value, final = await _scored(task, env, grader, settings)
        reward = value if value != float("-inf") else None
    process = final.process
    return SearchedConsultation(
        case_id=task.case.id,
        steps=steps,
        transcript=env.transcript.model_dump(mode="json"),
        reward=reward,
        score=final.score,
        facts_elicited=process.fact_recall,
        diagnosis_named=process.diagnosis_given,  # a condition, not any DIAGNOSIS: line
        diagnosis_correct=bool(process.diagnosis_correct),
        termination=env.transcript.termination_reason,
    )


def _names(closing: ScoredClosing) -> bool:
    """Whether a runner-up names a condition.

    A round stored before the flag does not say: its diagnosis line is read as the gate reads it.
    """
    if closing.named is not None:
        return closing.named
    return names_condition(extract_diagnosis(closing.text))


def training_rows(consultations: Sequence[SearchedConsultation]) -> list[dict[str, Any]]:
    """Prompt-completion rows of the steps worth learning.

    A question turn is kept when it raised the consultation's reward; a closing turn is
    kept when its consultation scored at least as well as the mean of the others, so the model
    is not taught the closings the verifier scored worst, and so is each runner-up closing that
    clears the same bar (a round has one closing per consultation against five questions;
    the runners-up give the closing turn's format more than a tenth of the rows).

    A closing must also name a condition (the process measure ``diagnosis_given``). One that
    restates the complaint ("Suspected of pelvic trauma", "Suspected Growth Delay in
    Breastmilk") can clear the bar, a point or two below a named one, when the rest of its
    consultation went well; 11 of 73 closing rows of session 13's run were such, and its greedy
    doctor named nothing in half its held-out closings ("Suspected pink bump on forehead").
    """
    rewards = [c.reward for c in consultations if c.reward is not None]
    bar = sum(rewards) / len(rewards) if rewards else 0.0
    rows = []
    for c in consultations:
        for step in c.steps:
            if step.closing:
                keep = c.reward is not None and c.reward >= bar and c.diagnosis_named
            else:
                keep = step.gain > 0
            texts = [step.text] if keep else []
            texts += [r.text for r in step.runners_up if r.reward >= bar and _names(r)]
            rows += [
                {"prompt": step.messages, "completion": [{"role": "assistant", "content": text}]}
                for text in texts
            ]
    return rows
