from __future__ import annotations

import json
import shutil

import pytest

from medverify.backends.base import SamplingParams
from medverify.deploy.common import read_manifest
from medverify.deploy.draft import (
    DraftConfig,
    bundled_prompts,
    distill_draft,
    held_out_prompts,
    load_prompts,
    split_prompts,
)
from medverify.deploy.engine import Engine
from medverify.errors import ConfigError, InputError

PROMPTS = [
    [{"role": "user", "content": "I have had a headache for three days."}],
    [{"role": "user", "content": "What is a normal resting heart rate?"}],
    [{"role": "user", "content": "Can I take ibuprofen with lisinopril?"}],
]


def test_bundled_prompts_are_medical_and_attributed():
    prompts = bundled_prompts()
    assert len(prompts) >= 40
    assert len({p.id for p in prompts}) == len(prompts)
    assert all(p.source for p in prompts)
    train, held = split_prompts(prompts, 6, seed=0)
    assert len(held) == 6
    assert not {p.id for p in train} & {p.id for p in held}
    assert split_prompts(prompts, 6, seed=0)[1] == held


def test_prompt_files_are_validated_with_file_line_and_field(tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "chest pain"}\nnot json\n')
    with pytest.raises(InputError, match=r"p.jsonl:2"):
        load_prompts(bad)
    bad.write_text('{"prompt": "chest pain"}\n{"id": "x", "prompt": ""}\n')
    with pytest.raises(InputError) as err:
        load_prompts(bad)
    assert (err.value.line, err.value.field) == (2, "prompt")
    hb = tmp_path / "hb.jsonl"
    rows = [
        {
            "prompt_id": "a",
            "prompt": [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "last"},
            ],
        },
        {"prompt_id": "b", "prompt": "plain"},
    ]
    hb.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [(p.id, p.prompt) for p in load_prompts(hb)] == [("a", "last"), ("b", "plain")]
    txt = tmp_path / "p.txt"
    txt.write_text("one\n\ntwo\n")
    assert [p.prompt for p in load_prompts(txt)] == ["one", "two"]
    with pytest.raises(ConfigError, match="no such prompts file"):
        load_prompts(tmp_path / "missing.txt")


def test_distilled_draft_has_the_target_tokenizer_and_a_manifest(tiny_dir, tiny_draft):
    from transformers import AutoConfig

    m = read_manifest(tiny_draft, kind="draft")
    assert m.method == "distill"
    assert m.source_dir == str(tiny_dir)
    assert AutoConfig.from_pretrained(tiny_draft).num_hidden_layers == 1
    d = m.details
    assert d["steps_done"] == 3
    assert d["prompts"] == {"train": 3, "held_out": 1, "source": "bundled"}
    assert 0.0 <= d["held_out_agreement_after"] <= 1.0
    assert d["loss_first"] > 0
    assert [p.id for p in held_out_prompts(tiny_draft)] == [
        split_prompts(bundled_prompts()[:4], 1, 0)[1][0].id
    ]


def test_speculative_generation_equals_the_target_alone(tiny_dir, tiny_draft):
    engine = Engine(tiny_dir, draft=tiny_draft, draft_tokens=4).load()
    params = SamplingParams(max_tokens=16)
    for messages in PROMPTS[:2]:
        alone = engine.generate(messages, params, use_draft=False)
        spec = engine.generate(messages, params)
        assert spec.token_ids == alone.token_ids
        assert spec.text == alone.text
        assert spec.stats.draft_calls > 0
        assert alone.stats.draft_calls == 0
        assert 0.0 <= spec.stats.acceptance <= 1.0


def test_speculative_generation_with_a_quantized_target(tiny_int8, tiny_draft):
    engine = Engine(tiny_int8, draft=tiny_draft, draft_tokens=3).load()
    params = SamplingParams(max_tokens=16)
    spec = engine.generate(PROMPTS[0], params)
    # dynamic int8 quantizes activations with a scale over the whole forward pass, so verifying
    # several draft tokens at once need not reproduce token-by-token int8 decoding (measured on
    # the embedded model: benchmarks/deploy_cpu.py); only that it runs is asserted here
    assert spec.stats.draft_calls > 0
    assert spec.stats.completion_tokens == 16 or spec.stats.finish_reason == "stop"


def test_a_draft_with_another_tokenizer_is_refused(tmp_path, tiny_dir, tiny_draft):
    from transformers import AutoTokenizer

    other = tmp_path / "other-draft"
    shutil.copytree(tiny_draft, other)
    tok = AutoTokenizer.from_pretrained(other)
    tok.add_tokens(["<not-in-target>"])
    tok.save_pretrained(other)
    with pytest.raises(ConfigError, match="does not share the target's tokenizer: vocabulary"):
        Engine(tiny_dir, draft=other).load()


def test_distilling_refuses_quantized_targets_and_full_output_dirs(tmp_path, tiny_int8, tiny_dir):
    with pytest.raises(ConfigError, match="is a quantized directory"):
        distill_draft(str(tiny_int8), tmp_path / "d")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        distill_draft(f"hf:{tiny_dir}", tmp_path / "full", DraftConfig(steps=1, max_prompts=2))
    with pytest.raises(ConfigError, match="fewer layers than the target's 2"):
        distill_draft(
            f"hf:{tiny_dir}",
            tmp_path / "d",
            DraftConfig(layers=2, steps=1, gen_tokens=4, max_prompts=2, holdout=1),
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_target_replies_are_kept_in_the_run_store(tmp_path, tiny_dir):
    from medverify.runs.kv import SqliteKV

    config = DraftConfig(layers=1, steps=1, gen_tokens=4, max_prompts=3, holdout=1, batch_size=2)
    run = tmp_path / "run"
    first: list[str] = []
    distill_draft(f"hf:{tiny_dir}", tmp_path / "d1", config, run_dir=run, on_progress=first.append)
    assert any(m.startswith("target replies: 3/3") for m in first)
    kv = SqliteKV(run / "run.sqlite")
    try:
        replies = dict(kv.items("reply"))
    finally:
        kv.close()
    assert len(replies) == 3
    assert all(r["prompt"] and r["reply"] for r in replies.values())
    again: list[str] = []
    distill_draft(f"hf:{tiny_dir}", tmp_path / "d2", config, run_dir=run, on_progress=again.append)
    assert not any(m.startswith("target replies") for m in again)  # nothing regenerated
    moved = tmp_path / "moved" / "tiny"  # the same checkpoint elsewhere (another machine)
    shutil.copytree(tiny_dir, moved)
    third: list[str] = []
    distill_draft(f"hf:{moved}", tmp_path / "d3", config, run_dir=run, on_progress=third.append)
    assert not any(m.startswith("target replies") for m in third)
    import torch
    from transformers import AutoModelForCausalLM

    other = AutoModelForCausalLM.from_pretrained(tiny_dir)
    with torch.no_grad():
        other.lm_head.weight.add_(0.01)  # a fine-tuned target: its replies are not these
    other.save_pretrained(tmp_path / "other")
    shutil.copy(tiny_dir / "tokenizer.json", tmp_path / "other")
    shutil.copy(tiny_dir / "tokenizer_config.json", tmp_path / "other")
    with pytest.raises(ConfigError, match="target_weights"):
        distill_draft(f"hf:{tmp_path / 'other'}", tmp_path / "d4", config, run_dir=run)


def test_kd_loss_is_the_cross_entropy_plus_the_kl_to_the_teacher(tiny_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from medverify.deploy.draft import _reply_loss, init_draft_from_target, reply_tensors

    target = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    rows = [{"prompt": [1, 5, 9], "reply": [11, 12, 13, 2]}, {"prompt": [1, 7], "reply": [4, 2]}]
    ids, mask, labels = reply_tensors(rows, 0, torch)
    with torch.no_grad():
        ce = _reply_loss(target, ids, mask, labels, torch)
        self_kd = _reply_loss(target, ids, mask, labels, torch, teacher=target)
        draft = init_draft_from_target(target, 1)
        draft_ce = _reply_loss(draft, ids, mask, labels, torch)
        draft_kd = _reply_loss(draft, ids, mask, labels, torch, teacher=target)
    assert torch.isclose(self_kd, ce, atol=1e-5)  # KL of a model to itself is 0
    assert draft_kd > draft_ce  # a 1-layer draft differs from its 2-layer target


def test_distilling_with_kd_records_the_loss_in_the_manifest(tmp_path, tiny_dir):
    config = DraftConfig(
        layers=1, steps=2, gen_tokens=6, max_prompts=3, holdout=1, batch_size=2, loss="kd"
    )
    result = distill_draft(f"hf:{tiny_dir}", tmp_path / "kd", config)
    details = result.manifest.details
    assert details["config"]["loss"] == "kd"
    assert details["steps_done"] == 2
    with pytest.raises(ValueError):
        DraftConfig(loss="mse")


def test_the_draft_prompt_builder_leaves_the_bundled_prompts_out(tmp_path, monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    bench = Path(__file__).parents[2] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))
    spec = importlib.util.spec_from_file_location(
        "make_draft_prompts", bench / "make_draft_prompts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    raw = tmp_path / "mediq.jsonl"
    row = {
        "context": ["A 30-year-old has a cough."],
        "question": "Next step?",
        "options": {"A": "x"},
    }
    raw.write_text(json.dumps(row) + "\n")
    prompts = module.mcq_prompts(raw)
    assert [p.source for p in prompts] == ["MedQA", "MedQA vignette"]
    assert prompts[0].prompt.endswith("A. x") and "cough" in prompts[1].prompt
    bundled = bundled_prompts()[0]
    hb = tmp_path / "hb.jsonl"
    hb.write_text(
        json.dumps({"prompt_id": "p", "prompt": bundled.prompt})
        + "\n"
        + json.dumps({"prompt_id": "q", "prompt": "A new question?"})
        + "\n"
    )
    out = tmp_path / "prompts.jsonl"
    monkeypatch.setattr(
        sys, "argv", ["x", "--out", str(out), "--healthbench", str(hb), "--mcq", str(raw)]
    )
    module.main()
    texts = [p.prompt for p in load_prompts(out)]
    assert bundled.prompt not in texts and "A new question?" in texts and len(texts) == 3
