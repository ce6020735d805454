"""GRPO on TRL with the verifier's rewards: a thin subclass and the builder the stages use.

TRL's ``GRPOTrainer`` does the work (generation, vLLM, accelerate/DeepSpeed, the clipped
token-level loss). :class:`VerifierGRPOTrainer` adds two hooks and nothing else:

* after rewards are computed (``_calculate_rewards``): failed task rewards make the whole row
  "no reward"; the conditional length reward is filled in from the group's scores and lengths;
* after the batch is scored (``_generate_and_score_completions``): dynamic sampling drops the
  groups whose rewards are all equal from the loss mask and the token normaliser.

Both call the pure functions of :mod:`medverify.train.shaping`. Used by ``medverify train grpo``
and the ``grpo`` stages of ``medverify train pipeline``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer
from trl.rewards import get_soft_overlong_punishment

from medverify.backends.torch_runtime import checkpointing_kwarg, configure_torch_threads
from medverify.train.config import GRPOSwitches, StageConfig, grpo_args
from medverify.train.shaping import (
    apply_loss_mask,
    conditional_length_reward,
    dynamic_sampling_mask,
    failed_rows_to_nan,
    task_scores,
    token_normaliser,
)

log = logging.getLogger(__name__)
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

LENGTH_REWARD_NAME = "conditional_length_reward"


class LengthRewardSlot:
    """A reward column the trainer fills with the conditional length reward (group-level).

    TRL calls reward functions per sample; the length reward needs the whole group's scores,
    so this function only reserves the column (zeros) and logs under its name.
    """

    __name__ = LENGTH_REWARD_NAME

    def __call__(self, completions: list[Any], **_: Any) -> list[float]:
        """Zeros; replaced by :meth:`VerifierGRPOTrainer._calculate_rewards`."""
        return [0.0] * len(completions)


def shaping_reward_funcs(switches: GRPOSwitches, max_completion_length: int) -> list[Callable]:
    """The shaping reward functions the switches turn on (after the task rewards)."""
    funcs: list[Callable] = []
    if switches.overlong_shaping:
        cache = min(switches.overlong_cache, max(1, max_completion_length // 2))
        funcs.append(get_soft_overlong_punishment(max_completion_length, cache))
    if switches.length_reward:
        funcs.append(LengthRewardSlot())
    return funcs


class VerifierGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` + no reward on failure, conditional length reward, dynamic sampling.

    Args:
        n_task_rewards: how many of ``reward_funcs`` (the first ones) are task rewards; the rest
            are shaping terms.
        switches: the GRPO switches of the stage.
        **kwargs: everything ``GRPOTrainer`` takes.
    """

    def __init__(self, *args: Any, n_task_rewards: int, switches: GRPOSwitches, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.n_task_rewards = n_task_rewards
        self.switches = switches
        self._last_rewards: torch.Tensor | None = None

    @property
    def _task_columns(self) -> list[int]:
        return list(range(self.n_task_rewards))

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        rewards = failed_rows_to_nan(rewards, self._task_columns)
        if LENGTH_REWARD_NAME in self.reward_func_names:
            col = self.reward_func_names.index(LENGTH_REWARD_NAME)
            device = rewards.device
            lengths = torch.tensor([len(c) for c in completion_ids_list], device=device)
            lengths = self.accelerator.gather(lengths)
            mode = "train" if self.model.training else "eval"
            group = self.num_generations if mode == "train" else self.num_generations_eval
            s = self.switches
            rewards[:, col] = conditional_length_reward(
                task_scores(rewards, self._task_columns).cpu(),
                lengths.cpu(),
                group,
                percentile=s.length_percentile,
                threshold=s.length_threshold,
                weight=s.length_weight,
            ).to(device)
        weights = self.reward_weights.to(rewards.device).unsqueeze(0)
        total = (rewards * weights).nansum(dim=1)
        total[torch.isnan(rewards).all(dim=1)] = torch.nan
        self._last_rewards = total
        return rewards

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if not self.switches.dynamic_sampling or self._last_rewards is None:
            return output
        mode = "train" if self.model.training else "eval"
        if mode != "train":
            return output
        keep_all = dynamic_sampling_mask(self._last_rewards.cpu(), self.num_generations)
        n = output["completion_mask"].size(0)
        start = self.accelerator.process_index * n
        keep = keep_all[start : start + n].to(output["completion_mask"].device)
        self._metrics[mode]["dynamic_sampling/dropped_frac"].append(
            1.0 - keep_all.float().mean().item()
        )
        if bool(keep.all()):
            return output
        mask, active = apply_loss_mask(output["completion_mask"], output.get("tool_mask"), keep)
        output["tool_mask"] = mask
        output["num_items_in_batch"] = token_normaliser(self.accelerator.gather(active))
        return output


def configure_cpu(stage: StageConfig) -> None:
    """On CPU, size torch's thread pool (MEDVERIFY_THREADS, ``train.threads``, or all cores).

    On a host shared with other jobs, 2 spinning threads on 2 busy cores were 8x slower than
    1 thread for the same step (measured: 137 s vs 18 s to generate 16 tokens).
    """
    if stage.train.use_cpu:
        configure_torch_threads(stage.train.threads)


def grpo_config(stage: StageConfig, output_dir: str | Path) -> GRPOConfig:
    """TRL's ``GRPOConfig`` for a stage: our switches mapped onto TRL names, the rest TRL's."""
    t, r = stage.train, stage.rollout
    kwargs: dict[str, Any] = {
        "output_dir": str(output_dir),
        "use_cpu": t.use_cpu,
        "bf16": t.bf16,
        "fp16": False,
        "per_device_train_batch_size": t.batch_size,
        "gradient_accumulation_steps": t.grad_accum,
        "num_generations": r.num_generations,
        "max_completion_length": r.max_completion_length,
        "temperature": r.temperature,
        "max_steps": t.max_steps,
        "learning_rate": t.learning_rate,
        "logging_steps": t.logging_steps,
        "save_strategy": "steps",
        "save_steps": t.save_steps,
        "report_to": [],
        "seed": t.seed,
        **checkpointing_kwarg(t.gradient_checkpointing),
        "use_vllm": r.use_vllm,
        "vllm_mode": r.vllm_mode,
        "remove_unused_columns": False,
        "disable_tqdm": True,
        **grpo_args(stage.grpo),
    }
    if r.vllm_server_base_url:
        kwargs["vllm_server_base_url"] = r.vllm_server_base_url
    if t.deepspeed:
        kwargs["deepspeed"] = t.deepspeed
    return GRPOConfig(**kwargs)


def lora_config(stage: StageConfig) -> Any:
    """A peft ``LoraConfig`` for the stage, or ``None`` for full fine-tuning."""
    if stage.train.lora is None:
        return None
    from peft import LoraConfig

    lora = stage.train.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


def build_grpo_trainer(
    stage: StageConfig,
    model: str | Path,
    train_rows: list[dict[str, Any]],
    output_dir: str | Path,
    task_rewards: list[Callable],
    *,
    rollout_func: Callable | None = None,
    callbacks: list[Any] | None = None,
) -> VerifierGRPOTrainer:
    """A ready-to-train :class:`VerifierGRPOTrainer` for one GRPO stage.

    Args:
        stage: the stage config.
        model: an HF checkpoint directory or hub id.
        train_rows: the dataset rows (``prompt`` + the reward columns).
        output_dir: where checkpoints go (resumable).
        task_rewards: the task reward functions (rule, rubric or consultation).
        rollout_func: a custom rollout (multi-turn consultations), TRL's ``rollout_func``.
        callbacks: extra ``transformers`` callbacks.
    """
    from datasets import Dataset

    configure_cpu(stage)
    shaping = shaping_reward_funcs(stage.grpo, stage.rollout.max_completion_length)
    return VerifierGRPOTrainer(
        model=str(model),
        reward_funcs=[*task_rewards, *shaping],
        args=grpo_config(stage, output_dir),
        train_dataset=Dataset.from_list(train_rows),
        peft_config=lora_config(stage),
        rollout_func=rollout_func,
        callbacks=callbacks,
        n_task_rewards=len(task_rewards),
        switches=stage.grpo,
    )
