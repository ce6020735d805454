from pathlib import Path

import pytest

from medverify.errors import ConfigError
from medverify.train.config import GRPOSwitches, grpo_args, load_config, parse_config

CONFIGS = Path(__file__).parents[2] / "configs" / "train"


def _stage(**over):
    base = {"name": "s", "kind": "grpo", "task": "rule"}
    base.update(over)
    return {"stages": [base]}


@pytest.mark.parametrize("name", ["cpu_smoke.yaml", "gpu_single.yaml", "multi_gpu.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.stages


def test_cpu_smoke_has_all_five_stages_in_order():
    cfg = load_config(CONFIGS / "cpu_smoke.yaml")
    kinds = [(s.kind, s.task) for s in cfg.stages]
    assert kinds == [
        ("mid_train", None),
        ("rs_sft", "rule"),
        ("grpo", "rule"),
        ("grpo", "rubric"),
        ("grpo", "consultation"),
    ]
    assert cfg.model == "local"
    assert all(s.train.use_cpu and s.train.lora is not None for s in cfg.stages)


def test_error_names_file_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "stages:\n  - name: a\n    kind: grpo\n    task: rule\n    grpo: {epsilon: 2}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert "stages.0.grpo.epsilon" in str(err.value)


def test_unknown_field_is_refused():
    with pytest.raises(ConfigError, match=r"stages\.0\.train\.max_step"):
        parse_config(_stage(train={"max_step": 3}))


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("stages:\n  - name: [a\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+: not valid YAML"):
        load_config(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read"):
        load_config("/nonexistent/stages.yaml")


def test_grpo_stage_needs_task_and_divisible_batch():
    with pytest.raises(ConfigError, match="needs a task"):
        parse_config({"stages": [{"name": "a", "kind": "grpo"}]})
    with pytest.raises(ConfigError, match=r"multiple of rollout\.num_generations"):
        parse_config(_stage(train={"batch_size": 3}, rollout={"num_generations": 2}))
    with pytest.raises(ConfigError, match="rs_sft supports"):
        parse_config(_stage(kind="rs_sft", task="consultation"))


def test_duplicate_stage_names_and_bad_ratio():
    with pytest.raises(ConfigError, match="unique"):
        parse_config({"stages": [{"name": "a", "kind": "mid_train"}] * 2})
    with pytest.raises(ConfigError, match="unknown ratio"):
        parse_config({"stages": [{"name": "a", "kind": "mid_train", "mid": {"ratio": {"bio": 1}}}]})


def test_defaults_fill_stage_kind_settings():
    cfg = parse_config(
        {
            "stages": [
                {"name": "m", "kind": "mid_train"},
                {"name": "r", "kind": "rs_sft", "task": "rule"},
            ]
        }
    )
    assert cfg.stages[0].mid.ratio == {"medical": 2.0, "general": 2.0, "math": 1.0}
    assert cfg.stages[1].rs.k == 4


# -- each switch's effect on TRL's loss inputs ---------------------------------------------


def test_switch_kl():
    assert grpo_args(GRPOSwitches(kl=False))["beta"] == 0.0
    assert grpo_args(GRPOSwitches(kl=True, kl_beta=0.04))["beta"] == 0.04


def test_switch_clip_higher():
    on = grpo_args(GRPOSwitches(clip_higher=True, epsilon=0.2, epsilon_high=0.28))
    off = grpo_args(GRPOSwitches(clip_higher=False, epsilon=0.2, epsilon_high=0.28))
    assert (on["epsilon"], on["epsilon_high"]) == (0.2, 0.28)
    assert off["epsilon_high"] == off["epsilon"] == 0.2
    with pytest.raises(ValueError):
        GRPOSwitches(clip_higher=True, epsilon=0.3, epsilon_high=0.2)


def test_switch_token_level_loss_and_truncation():
    assert grpo_args(GRPOSwitches(token_level_loss=True))["loss_type"] == "dapo"
    assert grpo_args(GRPOSwitches(token_level_loss=False))["loss_type"] == "grpo"
    assert grpo_args(GRPOSwitches(mask_truncated=True))["mask_truncated_completions"] is True


def test_grpo_args_are_trl_option_names():
    from trl import GRPOConfig

    fields = set(GRPOConfig.__dataclass_fields__)
    assert set(grpo_args(GRPOSwitches())) <= fields
