"""The typer commands (as the lead will register them) and the GPU benchmark's CPU smoke run."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from medverify.deploy.cli import app as deploy_app
from medverify.deploy.cli import serve_cmd
from medverify.errors import ConfigError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BENCH = Path(__file__).parents[2] / "benchmarks"


def _cli() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(deploy_app, name="deploy")
    root.command("serve")(serve_cmd)
    return root


def test_methods_table_lists_targets_and_needs():
    result = CliRunner().invoke(_cli(), ["deploy", "methods"], terminal_width=200)
    assert result.exit_code == 0
    for name in ("int8-dynamic", "w4a16", "bnb-nf4", "gguf-q8_0"):
        assert name in result.output
    assert "CUDA GPU" in result.output


def test_quantize_command_errors_are_medverify_errors(tmp_path):
    result = CliRunner().invoke(
        _cli(), ["deploy", "quantize", "--method", "int3", "--out", str(tmp_path / "q")]
    )
    assert isinstance(result.exception, ConfigError)
    assert "unknown quantization method" in str(result.exception)
    assert not (tmp_path / "q").exists()


def test_quantize_and_report_commands(tmp_path, tiny_dir, tiny_draft):
    runner = CliRunner()
    q = tmp_path / "q"
    result = runner.invoke(
        _cli(), ["deploy", "quantize", "--model", f"hf:{tiny_dir}", "--out", str(q)]
    )
    assert result.exit_code == 0, result.output
    assert "int8-dynamic for cpu" in " ".join(result.output.split())
    out = tmp_path / "report"
    result = runner.invoke(
        _cli(),
        [
            "deploy",
            "report",
            "--model",
            f"hf:{tiny_dir}",
            "--quantized",
            str(q),
            "--draft",
            str(tiny_draft),
            "--out",
            str(out),
            "--n-prompts",
            "1",
            "--max-tokens",
            "4",
            "--consult-cases",
            "1",
        ],
        terminal_width=250,
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "report.json").read_text())
    # The consultation benchmark ran on every variant, with the same grader.
    assert data["grader"] == "local"
    assert all(v["consult"]["n"] + 0 >= 0 and "score" in v["consult"] for v in data["variants"])
    assert len(list((out / "consult").iterdir())) == len(data["variants"])
    assert [v["name"] for v in data["variants"]] == [
        "fp",
        "fp + draft",
        "int8-dynamic",
        "int8-dynamic + draft",
    ]
    assert data["settings"]["prompts"] == "draft held-out"
    assert (out / "report.html").is_file()


def test_report_with_ngram_drafting(tmp_path, tiny_dir):
    out = tmp_path / "report-ngram"
    result = CliRunner().invoke(
        _cli(),
        [
            "deploy",
            "report",
            "--model",
            f"hf:{tiny_dir}",
            "--draft",
            "ngram",
            "--out",
            str(out),
            "--n-prompts",
            "1",
            "--max-tokens",
            "6",
        ],
        terminal_width=250,
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "report.json").read_text())
    assert [v["name"] for v in data["variants"]] == ["fp", "fp + ngram"]
    ngram = data["variants"][1]
    assert ngram["draft"] == "ngram" and ngram["identical_to_reference"] == 1
    assert data["settings"]["prompts"] == "bundled"


def test_serve_dry_run_prints_the_vllm_command(tiny_dir, tiny_draft):
    result = CliRunner().invoke(
        _cli(),
        [
            "serve",
            "--model",
            f"hf:{tiny_dir}",
            "--draft",
            str(tiny_draft),
            "--dry-run",
            "--port",
            "8011",
        ],
        terminal_width=400,
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"vllm serve {tiny_dir}")
    assert "--speculative-config" in result.output


def test_gpu_benchmark_runs_tiny_on_cpu(tmp_path, tiny_dir):
    sys.path.insert(0, str(BENCH))
    try:
        bench = importlib.import_module("deploy_gpu")
        out = bench.main(
            [
                "--tiny",
                "--model",
                f"hf:{tiny_dir}",
                "--workdir",
                str(tmp_path / "w"),
                "--out",
                str(tmp_path / "r.json"),
            ]
        )
    finally:
        sys.path.remove(str(BENCH))
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["device"] == "cpu" and saved["quant_method"] == "int8-dynamic"
    names = [v["name"] for v in saved["variants"]]
    assert names == ["fp32", "fp32 + draft", "int8-dynamic", "int8-dynamic + draft"]
    assert set(out["identical_to_same_target"].values()) == {1}
    assert saved["draft"]["steps_done"] == 2


def test_ngram_table_drafts_the_commonest_follower_and_replays_rounds():
    sys.path.insert(0, str(BENCH))
    try:
        bench = importlib.import_module("deploy_ngram_table")
    finally:
        sys.path.remove(str(BENCH))
    replies = [[5, 6, 7, 8, 9], [5, 6, 7, 8, 9], [5, 6, 3]]
    table = bench.build_table(replies, max_n=2)
    assert table[2][(5, 6)] == {7: 2, 3: 1}
    # after (5, 6): 7 follows 2 times in 3, then 8 after (6, 7), then 9
    assert bench.table_draft(table, [1, 5, 6], 3, min_n=2, min_share=0.5) == [7, 8, 9]
    assert bench.table_draft(table, [1, 5, 6], 3, min_n=2, min_share=0.7) == []
    refs = [{"prompt": [1, 5], "reply": [6, 7, 8, 9, 4]}]
    alone = bench.replay(refs, table, "lookup", 5, min_n=2, min_share=0.5)
    assert alone["tokens_per_round"] == 1.0  # nothing in the prompt repeats
    both = bench.replay(refs, table, "lookup+table", 5, min_n=2, min_share=0.5)
    # round 1 has no 2-gram yet ([1, 5] -> 6 is unseen): 6; round 2 drafts 7 8 9, all kept,
    # plus the target's 4: 5 tokens in 2 rounds
    assert both["tokens_per_round"] == 2.5 and both["kept_per_drafted_round"] == 3.0
