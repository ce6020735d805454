"""The GRPO improvements TRL lacks, as small pure functions on reward and mask tensors.

:class:`~medverify.train.trainer.VerifierGRPOTrainer` calls these from two hooks; they are kept
apart so each one's effect on the loss inputs is tested on hand-made tensors.

* :func:`failed_rows_to_nan` -- a sample whose task reward failed (grader gave up, no verdict)
  gets *no* reward: its whole row becomes NaN, so shaping terms (overlong, length) cannot turn a
  failure into a reward of 0. TRL then leaves it out of the group baseline and gives it zero
  advantage.
* :func:`conditional_length_reward` -- Baichuan-M2's length reward: only in groups whose
  80th-percentile task score is above a threshold, and only for responses scoring at or above
  that percentile, a bonus that grows as the response gets shorter than the group's longest.
  Rewarding concision only once quality is high keeps the policy from trading correctness for
  brevity (Baichuan-M2 technical report, arXiv:2509.02208, RL section).
* :func:`dynamic_sampling_mask` -- DAPO's dynamic sampling (arXiv:2503.14476): a group whose
  rewards are all equal has zero advantage everywhere and only dilutes the token-level loss
  normaliser; its tokens are dropped from the loss. DAPO also over-samples to refill the batch;
  we do not (TRL's sampler fixes the batch), so a batch may train on fewer groups -- the
  fraction dropped is logged.

Overlong shaping is TRL's own ``get_soft_overlong_punishment`` (DAPO eq. 13), added as a reward
function by :func:`medverify.train.trainer.shaping_reward_funcs`.
"""

from __future__ import annotations

import torch


def failed_rows_to_nan(rewards_per_func: torch.Tensor, task_columns: list[int]) -> torch.Tensor:
    """Rows where every task reward is NaN become NaN in every column (shaping included).

    Args:
        rewards_per_func: ``(N, F)`` rewards, NaN where a function gave no reward.
        task_columns: the columns of task rewards (not shaping terms).
    """
    if not task_columns:
        return rewards_per_func
    out = rewards_per_func.clone()
    failed = torch.isnan(out[:, task_columns]).all(dim=1)
    out[failed] = torch.nan
    return out


def task_scores(rewards_per_func: torch.Tensor, task_columns: list[int]) -> torch.Tensor:
    """Sum of the task-reward columns per row (NaN when all of them are NaN)."""
    sub = rewards_per_func[:, task_columns]
    summed = torch.nansum(sub, dim=1)
    summed[torch.isnan(sub).all(dim=1)] = torch.nan
    return summed


def conditional_length_reward(
    scores: torch.Tensor,
    lengths: torch.Tensor,
    group_size: int,
    *,
    percentile: float = 0.8,
    threshold: float = 0.5,
    weight: float = 0.1,
) -> torch.Tensor:
    """Length bonus per response, only where quality is already high.

    For each group of ``group_size`` consecutive responses: ``p`` = the ``percentile`` quantile
    of the group's (non-NaN) scores. If ``p > threshold``, every response with ``score >= p``
    gets ``weight * (L_max - L) / (L_max - L_min)`` (lengths over the whole group; 0 when all
    lengths are equal); all others get 0. NaN scores get NaN (no reward).

    Args:
        scores: ``(N,)`` task scores.
        lengths: ``(N,)`` completion lengths in tokens.
        group_size: generations per prompt; ``N`` must be a multiple.
        percentile: the group quantile a response must reach (Baichuan-M2: 0.8).
        threshold: the quantile must be above this for any bonus.
        weight: the bonus of the shortest qualifying response.
    """
    if scores.shape != lengths.shape or scores.dim() != 1:
        raise ValueError("scores and lengths must be 1-D tensors of the same shape")
    if scores.numel() % group_size:
        raise ValueError(f"{scores.numel()} scores do not split into groups of {group_size}")
    bonus = torch.zeros_like(scores, dtype=torch.float32)
    groups_s = scores.float().view(-1, group_size)
    groups_l = lengths.float().view(-1, group_size)
    out = bonus.view(-1, group_size)
    for g in range(groups_s.size(0)):
        s, length = groups_s[g], groups_l[g]
        valid = ~torch.isnan(s)
        if not valid.any():
            continue
        p = torch.quantile(s[valid], percentile)
        if p <= threshold:
            continue
        span = length.max() - length.min()
        if span <= 0:
            continue
        top = valid & (s >= p)
        out[g, top] = weight * (length.max() - length[top]) / span
    bonus[torch.isnan(scores)] = torch.nan
    return bonus


def dynamic_sampling_mask(
    rewards: torch.Tensor, group_size: int, atol: float = 1e-6
) -> torch.Tensor:
    """``(N,)`` bool: ``True`` for responses of groups whose rewards are not all equal.

    NaN rewards (no reward) are ignored when comparing; a group with fewer than two real
    rewards carries no signal and is dropped.
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    groups = rewards.float().view(-1, group_size)
    keep = torch.zeros(groups.size(0), dtype=torch.bool)
    for g in range(groups.size(0)):
        real = groups[g][~torch.isnan(groups[g])]
        keep[g] = real.numel() >= 2 and bool((real.max() - real.min()) > atol)
    return keep.repeat_interleave(group_size)


def apply_loss_mask(
    completion_mask: torch.Tensor, tool_mask: torch.Tensor | None, keep: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The trainer's loss mask with dropped rows zeroed, and its token count.

    Returns ``(new_tool_mask, active_tokens)``: TRL multiplies ``completion_mask`` by
    ``tool_mask`` for the loss, so zeroing rows there removes them from the loss and from
    the token-level normaliser without touching attention.
    """
    base = torch.ones_like(completion_mask) if tool_mask is None else tool_mask
    new = base * keep.to(base.dtype).unsqueeze(1)
    return new, (completion_mask * new).sum()


def token_normaliser(active_tokens: torch.Tensor) -> torch.Tensor:
    """The token-level loss's denominator over all processes: never zero.

    When dynamic sampling drops every group of a batch (all-equal rewards everywhere, common in
    the first steps of a small model) no token is active; the advantages are then all zero and the
    step should be a no-op, but TRL's ``dapo`` loss divides by this count, and 0 / 0 would give
    NaN gradients that poison the weights. Clamped to 1, the loss is exactly 0.
    """
    return active_tokens.sum().clamp(min=1)
