"""Multi-turn RL rollouts: the policy plays the doctor against the patient simulator.

TRL 1.16's ``GRPOTrainer`` accepts a ``rollout_func(prompts, trainer)`` that returns token ids
and an ``env_mask``: 1 for tokens the policy produced (trained), 0 for tokens the environment
produced (in the context, never in the loss). :func:`consultation_rollout` builds one:

1. each prompt (doctor system prompt + the patient's opening) is mapped back to its case;
2. all consultations advance together, turn by turn: one batched ``generate`` for every open
   consultation's doctor turn, then :meth:`ConsultationEnv.respond` for the patient turns;
3. the finished dialogue is laid out with the tokenizer's chat template; the segment each doctor
   message adds (its text and end-of-turn token) gets mask 1, every patient segment mask 0.

The doctor's tokens are re-tokenized from its text (a template-based layout), so a rare
re-tokenization difference is possible; TRL recomputes log-probabilities on exactly these ids,
so the loss stays consistent. The transcript (JSON) goes to the reward function as the
``transcript`` column (:class:`~medverify.train.rewards.ConsultationReward`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from medverify.cases.records import CaseRecord
from medverify.consult.task import ConsultationTask
from medverify.simulator.environment import ConsultationEnv
from medverify.simulator.fact_unit import OfflineFactUnit

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]


def prompt_key(prompt: Sequence[dict[str, str]]) -> str:
    """A prompt's identity, to find the case a rollout prompt came from."""
    return json.dumps([[m["role"], m["content"]] for m in prompt])


def layout(
    tokenizer: Any, prompt: Messages, dialogue: Messages
) -> tuple[list[int], list[int], list[int]]:
    """``(prompt_ids, completion_ids, env_mask)`` of a dialogue after its prompt.

    ``dialogue`` alternates assistant (trained) and user (environment) messages and ends with an
    assistant message.

    Raises:
        ValueError: the chat template does not render conversations as growing prefixes.
    """

    def render(msgs: Messages, gen: bool) -> str:
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)

    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    history = list(prompt)
    done = render(history, True)
    prompt_ids = ids(done)
    completion: list[int] = []
    mask: list[int] = []
    for message in dialogue:
        history.append(message)
        text = render(history, message["role"] != "assistant")
        if not text.startswith(done):
            raise ValueError("the chat template does not render the dialogue as growing prefixes")
        segment = ids(text[len(done) :])
        completion += segment
        mask += [1 if message["role"] == "assistant" else 0] * len(segment)
        done = text
    return prompt_ids, completion, mask


def _generate(
    trainer: Any, batch: list[Messages], max_new_tokens: int, temperature: float
) -> list[str]:
    """One doctor turn for each conversation, batched, with the trainer's current policy."""
    import torch
    from trl.models import unwrap_model_for_generation

    tok = trainer.processing_class
    encoded = [
        tok.apply_chat_template(m, tokenize=True, add_generation_prompt=True, return_dict=False)
        for m in batch
    ]
    encoded = [e["input_ids"] if isinstance(e, dict) else list(e) for e in encoded]
    width = max(len(e) for e in encoded)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    device = trainer.accelerator.device
    input_ids = torch.tensor([[pad] * (width - len(e)) + e for e in encoded], device=device)
    attention = torch.tensor(
        [[0] * (width - len(e)) + [1] * len(e) for e in encoded], device=device
    )
    with (
        unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as model,
        torch.no_grad(),
    ):
        out = model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=temperature,
            top_p=1.0,
            top_k=0,
            pad_token_id=pad,
        )
    return [t.strip() for t in tok.batch_decode(out[:, width:], skip_special_tokens=True)]


async def _respond_all(envs: list[ConsultationEnv], texts: list[str]) -> None:
    await asyncio.gather(*(env.respond(text) for env, text in zip(envs, texts, strict=True)))


def consultation_rollout(
    cases_by_prompt: dict[str, CaseRecord],
    *,
    max_turns: int = 3,
    turn_tokens: int = 24,
    temperature: float = 1.0,
    max_completion_length: int = 128,
    seed: int = 0,
) -> Callable[[list[Messages], Any], dict[str, Any]]:
    """A TRL ``rollout_func`` playing consultations in the offline simulator.

    Args:
        cases_by_prompt: :func:`prompt_key` of each dataset prompt -> its case.
        max_turns: most doctor turns; the last one is nudged to give ``DIAGNOSIS:``.
        turn_tokens: most new tokens per doctor turn.
        temperature: sampling temperature of the doctor.
        max_completion_length: the whole dialogue after the prompt is cut to this many tokens.
        seed: the patient's wording seed.
    """
    fact_unit = OfflineFactUnit()

    def rollout(prompts: list[Messages], trainer: Any) -> dict[str, Any]:
        tasks, envs = [], []
        for prompt in prompts:
            case = cases_by_prompt.get(prompt_key(prompt))
            if case is None:
                raise KeyError("a rollout prompt matches no consultation case")
            system = prompt[0]["content"] if prompt and prompt[0]["role"] == "system" else ""
            task = ConsultationTask(case=case, max_turns=max_turns, seed=seed, system_prompt=system)
            env = task.environment(fact_unit=fact_unit)
            env.opening()
            tasks.append(task)
            envs.append(env)
        # What each doctor saw at its latest turn, then its reply: the dialogue to lay out.
        seen: list[Messages] = [list(prompt) for prompt in prompts]
        loop = asyncio.new_event_loop()
        try:
            for turn in range(max_turns):
                open_ = [i for i, env in enumerate(envs) if not env.is_finished()]
                if not open_:
                    break
                for i in open_:
                    messages = tasks[i].doctor_messages(
                        envs[i].transcript, last_turn=turn == max_turns - 1
                    )
                    seen[i] = [{"role": m.role, "content": m.content} for m in messages]
                texts = _generate(trainer, [seen[i] for i in open_], turn_tokens, temperature)
                loop.run_until_complete(_respond_all([envs[i] for i in open_], texts))
                for i, text in zip(open_, texts, strict=True):
                    seen[i] = [*seen[i], {"role": "assistant", "content": text}]
        finally:
            loop.close()
        tok = trainer.processing_class
        prompt_ids, completion_ids, env_mask = [], [], []
        for i, prompt in enumerate(prompts):
            # The prompt as the doctor last saw it (nudged, when its first turn was its last).
            p, c, m = layout(tok, seen[i][: len(prompt)], seen[i][len(prompt) :])
            prompt_ids.append(p)
            completion_ids.append(c[:max_completion_length])
            env_mask.append(m[:max_completion_length])
        return {
            "prompt_ids": prompt_ids,
            "completion_ids": completion_ids,
            "logprobs": None,
            "env_mask": env_mask,
            "transcript": [env.transcript.model_dump_json() for env in envs],
        }

    return rollout
