from pathlib import Path

from typer.testing import CliRunner

from medverify.errors import ConfigError
from medverify.train.cli import app

CONFIGS = Path(__file__).parents[2] / "configs" / "train"


def test_check_lists_the_stages_of_each_command():
    runner = CliRunner()
    out = runner.invoke(app, ["pipeline", "--config", str(CONFIGS / "cpu_smoke.yaml"), "--check"])
    assert out.exit_code == 0, out.output
    assert "consult-rl: grpo consultation" in out.output
    out = runner.invoke(app, ["rs-sft", "--config", str(CONFIGS / "cpu_smoke.yaml"), "--check"])
    assert out.output.strip() == "sft: rs_sft rule"


def test_bad_config_is_a_config_error(tmp_path):
    bad = tmp_path / "stages.yaml"
    bad.write_text("stages: []\n")
    out = CliRunner().invoke(app, ["grpo", "--config", str(bad), "--check"])
    assert isinstance(out.exception, ConfigError)
    assert "field 'stages'" in str(out.exception)
