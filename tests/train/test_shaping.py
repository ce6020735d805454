import math

import pytest
import torch

from medverify.train.shaping import (
    apply_loss_mask,
    conditional_length_reward,
    dynamic_sampling_mask,
    failed_rows_to_nan,
    task_scores,
    token_normaliser,
)

nan = float("nan")


def test_failed_task_reward_blanks_shaping_terms():
    rewards = torch.tensor([[1.0, -0.5], [nan, -1.0], [0.0, 0.0]])
    out = failed_rows_to_nan(rewards, [0])
    assert torch.isnan(out[1]).all()
    assert out[0].tolist() == [1.0, -0.5] and out[2].tolist() == [0.0, 0.0]
    assert task_scores(out, [0])[1].isnan()


def test_length_reward_only_when_group_percentile_is_high():
    # group 1: high scores -> top responses get a bonus by shortness; group 2: low -> none
    scores = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.2, 0.0, 0.1, 0.3])
    lengths = torch.tensor([10, 30, 5, 20, 10, 30, 5, 20])
    bonus = conditional_length_reward(scores, lengths, 4, percentile=0.8, threshold=0.5, weight=0.1)
    # group 1: p80 = 1.0 > 0.5; responses 0, 1, 3 score >= p80; span = 30 - 5 = 25
    assert bonus[:4].tolist() == pytest.approx([0.1 * 20 / 25, 0.0, 0.0, 0.1 * 10 / 25])
    assert bonus[4:].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_length_reward_threshold_is_strict_and_nan_stays_nan():
    scores = torch.tensor([0.5, 0.5, nan, 0.5])
    lengths = torch.tensor([1, 9, 4, 5])
    bonus = conditional_length_reward(scores, lengths, 4, threshold=0.5)
    assert bonus[[0, 1, 3]].tolist() == [0.0, 0.0, 0.0]
    assert math.isnan(bonus[2].item())
    with pytest.raises(ValueError):
        conditional_length_reward(scores, lengths, 3)


def test_dynamic_sampling_drops_groups_with_equal_rewards():
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0, nan, 0.5, 0.7, nan, nan, nan])
    keep = dynamic_sampling_mask(rewards, 2)
    assert keep.tolist() == [False] * 4 + [True, True] + [False] * 6


def test_dropping_rows_changes_the_token_normaliser():
    completion_mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]])
    keep = torch.tensor([True, True, False, False])
    mask, active = apply_loss_mask(completion_mask, None, keep)
    assert mask[2:].sum() == 0 and mask[:2].sum() == 8
    assert active.item() == 5  # 3 + 2 tokens of the kept rows
    tool_mask = torch.tensor([[1, 0, 1, 1]] * 4)
    mask, active = apply_loss_mask(completion_mask, tool_mask, keep)
    assert active.item() == 2 + 1  # environment tokens stay out of the loss


def test_a_batch_with_every_group_dropped_gives_a_zero_loss_not_nan():
    # TRL's dapo loss divides by the active-token count, which is 0 when no group survives
    completion_mask = torch.ones((4, 3), dtype=torch.long)
    keep = dynamic_sampling_mask(torch.tensor([0.0, 0.0, 1.0, 1.0]), 2)
    assert not keep.any()
    mask, active = apply_loss_mask(completion_mask, None, keep)
    per_token_loss = torch.randn(4, 3, requires_grad=True)
    loss = (per_token_loss * completion_mask * mask).sum() / token_normaliser(active.unsqueeze(0))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(per_token_loss.grad).all()
    assert token_normaliser(torch.tensor([3, 4])).item() == 7


def test_overlong_and_length_switches_add_reward_columns():
    from medverify.train.config import GRPOSwitches
    from medverify.train.trainer import shaping_reward_funcs

    funcs = shaping_reward_funcs(GRPOSwitches(overlong_cache=4), max_completion_length=16)
    assert [f.__name__ for f in funcs] == [
        "soft_overlong_punishment_reward",
        "conditional_length_reward",
    ]
    overlong = funcs[0](completion_ids=[[0] * 10, [0] * 14, [0] * 16])
    assert overlong == pytest.approx([0.0, -0.5, -1.0])  # linear in the last 4 tokens
    assert funcs[1](completions=["a", "b"]) == [0.0, 0.0]  # filled in by the trainer hook
    off = GRPOSwitches(overlong_shaping=False, length_reward=False)
    assert shaping_reward_funcs(off, 16) == []
