"""One small end-to-end GRPO run on the embedded model: hooks live, checkpoint, resume.

Tiny on purpose (2 prompts x 2 generations, 6 tokens, LoRA): a minute or less on 2 cores.
"""

import pytest

pytest.importorskip("trl")


@pytest.fixture(scope="module")
def model_dir():
    from medverify.backends.local import default_model_dir

    return str(default_model_dir())


@pytest.fixture(autouse=True)
def _restore_threads():
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _stage(steps):
    from medverify.train.config import StageConfig

    return StageConfig.model_validate(
        {
            "name": "e2e",
            "kind": "grpo",
            "task": "rule",
            "train": {
                "max_steps": steps,
                "batch_size": 2,
                "learning_rate": 1e-4,
                "use_cpu": True,
                "threads": 1,
                "save_steps": 1,
                "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
            },
            "rollout": {"num_generations": 2, "max_completion_length": 6},
        }
    )


@pytest.mark.slow
def test_grpo_trains_logs_hooks_and_resumes(tmp_path, model_dir):
    from medverify.train.checkpoints import is_final, last_checkpoint, save_final
    from medverify.train.data import split, task_rows
    from medverify.train.trainer import build_grpo_trainer

    calls = []

    def reward(completions, answer, **_):
        # the first sample of each batch fails (no reward); the rest alternate 1, 0
        calls.append(len(completions))
        return [None if i == 0 else float(i % 2) for i in range(len(completions))]

    reward.__name__ = "fake_rule"
    rows, _ = split(task_rows("rule", "bundled"), 8, limit=4)
    out = tmp_path / "ckpt"
    trainer = build_grpo_trainer(_stage(1), model_dir, rows, out, [reward])
    names = trainer.reward_func_names
    assert names == ["fake_rule", "soft_overlong_punishment_reward", "conditional_length_reward"]
    trainer.train()
    logged = [h for h in trainer.state.log_history if "reward" in h]
    assert logged and "dynamic_sampling/dropped_frac" in logged[0]
    # rows whose task reward failed are "no reward" (NaN) in every column
    assert trainer._last_rewards is not None and trainer._last_rewards.isnan()[0]
    checkpoint = last_checkpoint(out)
    assert checkpoint is not None and checkpoint.endswith("checkpoint-1")

    resumed = build_grpo_trainer(_stage(2), model_dir, rows, out, [reward])
    before = len(calls)
    resumed.train(resume_from_checkpoint=last_checkpoint(out))
    assert resumed.state.global_step == 2
    assert len(calls) == before + 1  # one more step, not two: step 1 was not redone
    final = save_final(
        resumed.model, resumed.processing_class, tmp_path / "final", {"stage": "e2e"}
    )
    assert is_final(final)
