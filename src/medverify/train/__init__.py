"""Training against the verifier: rewards, GRPO on TRL, rejection-sampling SFT, mid-training.

The verifier side of Baichuan-M2's training, built on TRL (``GRPOTrainer``, ``SFTTrainer``) rather
than a trainer of our own: reward functions that call the same grader and scoring code as
evaluation (:mod:`~medverify.train.rewards`), the GRPO improvements TRL lacks as small hooks
(:mod:`~medverify.train.shaping`, :mod:`~medverify.train.trainer`), multi-turn rollouts in the
patient simulator (:mod:`~medverify.train.rollout`), rejection-sampling SFT
(:mod:`~medverify.train.rs_sft`), mid-training on a corpus mixture
(:mod:`~medverify.train.midtrain`) and the staged, resumable pipeline
(:mod:`~medverify.train.pipeline`). Commands: ``medverify train rs-sft|grpo|pipeline --config``.

Only the configuration and the rewards import without the ``train`` extra (TRL, peft, datasets).
"""

from medverify.grading import VerdictCache
from medverify.train.config import (
    GRPOSwitches,
    PipelineConfig,
    StageConfig,
    grpo_args,
    load_config,
)
from medverify.train.rewards import (
    ConsultationReward,
    RubricReward,
    RubricScorer,
    RuleReward,
    rule_score,
)

__all__ = [
    "ConsultationReward",
    "GRPOSwitches",
    "PipelineConfig",
    "RubricReward",
    "RubricScorer",
    "RuleReward",
    "StageConfig",
    "VerdictCache",
    "grpo_args",
    "load_config",
    "rule_score",
]
