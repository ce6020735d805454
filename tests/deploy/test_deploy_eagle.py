"""EAGLE draft heads: training, files, exact greedy speculation, the engine and the CLI."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from medverify.backends.base import SamplingParams
from medverify.deploy.common import read_manifest
from medverify.deploy.eagle import (
    build_head,
    is_eagle_dir,
    load_head,
    save_head,
    speculate_greedy,
)
from medverify.deploy.eagle_train import (
    EagleConfig,
    _unroll_mask,
    frequent_tokens,
    train_eagle,
)
from medverify.deploy.engine import EAGLE_DRAFT_TOKENS, Engine
from medverify.errors import ConfigError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

PROMPT = [{"role": "user", "content": "I have had a cough and a fever since Monday."}]


@pytest.fixture(scope="module")
def varied_dir(tmp_path_factory, embedded_dir) -> Path:
    """A tiny random model whose greedy replies vary token by token (large initial weights)."""
    out = tmp_path_factory.mktemp("varied") / "varied-llama"
    config = copy.deepcopy(transformers.AutoConfig.from_pretrained(embedded_dir))
    config.update(
        {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 3,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "initializer_range": 0.5,
        }
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = transformers.GenerationConfig.from_pretrained(embedded_dir)
    model.generation_config.eos_token_id = 2
    model.save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(embedded_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def varied_head(tmp_path_factory, varied_dir) -> Path:
    out = tmp_path_factory.mktemp("heads") / "eagle"
    config = EagleConfig(
        layers=1, vocab=64, steps=6, gen_tokens=12, max_prompts=6, holdout=2, batch_size=2
    )
    train_eagle(f"hf:{varied_dir}", out, config)
    return out


def _model(path: Path):
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(path)
    text = tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    return model, tok, tok(text, add_special_tokens=False)["input_ids"]


def _greedy(model, prompt: list[int], n: int) -> list[int]:
    with torch.inference_mode():
        ids = torch.tensor([prompt])
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),  # the prompt holds the pad id (<|im_end|>)
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=None,
        )
    return out[0, len(prompt) :].tolist()


class _Oracle:
    """A head double that drafts the target's true next tokens except every third position.

    It wraps a real head (so the caches fill and roll back as usual) and reads the position off
    the head's cache: with pairs 0..L-1 cached, the next draft is token L + 1 of the sequence.
    """

    def __init__(self, head, sequence: list[int]) -> None:
        self.head, self.sequence = head, sequence
        self.cache_keyword = head.cache_keyword
        self.cache = None
        self.proposed = 0

    def __call__(self, embeds, feats, cache=None, attention_mask=None):
        self.cache = cache
        return self.head(embeds, feats, cache, attention_mask)

    def draft(self, feature) -> tuple[int, float]:
        pos = self.cache.get_seq_length() + 1
        self.proposed += 1
        if pos >= len(self.sequence) or pos % 3 == 0:
            return 5, 0.2  # a wrong guess, with low confidence
        return self.sequence[pos], 0.9


@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_speculation_gives_exactly_the_target_greedy_tokens(varied_dir, k):
    model, _, prompt = _model(varied_dir)
    reference = _greedy(model, prompt, 24)
    assert len(set(reference)) > 8  # a reply that varies, so a wrong draft would show
    oracle = _Oracle(build_head(model, 1, list(range(1000))), [*prompt, *reference])
    ids, stats = speculate_greedy(model, oracle, prompt, 24, eos_ids=set(), draft_tokens=k)
    assert ids == reference
    assert stats.target_calls < 24 if k > 1 else stats.target_calls <= 24
    assert 0 < stats.accepted < oracle.proposed


def test_low_confidence_ends_a_round_early_and_stays_exact(varied_dir):
    model, _, prompt = _model(varied_dir)
    reference = _greedy(model, prompt, 24)
    runs = {}
    for threshold in (0.0, 0.5):
        oracle = _Oracle(build_head(model, 1, list(range(1000))), [*prompt, *reference])
        ids, stats = speculate_greedy(
            model, oracle, prompt, 24, eos_ids=set(), draft_tokens=6, min_confidence=threshold
        )
        assert ids == reference
        runs[threshold] = stats
    # the wrong (unconfident) guesses are no longer sent to the target after the first
    assert runs[0.5].accepted == runs[0.0].accepted
    assert runs[0.5].draft_calls < runs[0.0].draft_calls


def test_prompt_lookup_drafts_what_followed_the_last_tokens_and_stays_exact(
    varied_dir, monkeypatch
):
    from medverify.deploy import eagle

    assert eagle._lookup([1, 2, 3, 9, 1, 2], 2, 3) == [3, 9, 1]
    assert eagle._lookup([1, 2, 3, 1, 2, 7, 1, 2], 2, 2) == [7, 1]  # the latest occurrence
    assert eagle._lookup([4, 5, 6], 2, 3) == []
    model, _, prompt = _model(varied_dir)
    reference = _greedy(model, prompt, 24)
    sequence = [*prompt, *reference]

    def lookup(seq, size, limit):  # a match on every other round: right, then one wrong token
        if len(seq) % 2:
            return []
        found = sequence[len(seq) : len(seq) + limit]
        return [*found[:-1], 5] if len(found) > 1 else found

    monkeypatch.setattr(eagle, "_lookup", lookup)
    oracle = _Oracle(build_head(model, 1, list(range(1000))), sequence)
    ids, stats = speculate_greedy(
        model, oracle, prompt, 24, eos_ids=set(), draft_tokens=3, lookup=2
    )
    assert ids == reference
    # lookup drafts 3 tokens on every other round and its last one is wrong: 2 kept per round
    assert stats.lookup_rounds > 0
    assert 0 < stats.lookup_accepted <= 2 * stats.lookup_rounds
    assert stats.lookup_accepted <= stats.accepted
    asked = oracle.proposed
    oracle = _Oracle(build_head(model, 1, list(range(1000))), sequence)
    plain, plain_stats = speculate_greedy(model, oracle, prompt, 24, eos_ids=set(), draft_tokens=3)
    assert plain == reference
    assert asked < oracle.proposed  # the lookup rounds did not ask the head
    assert plain_stats.lookup_rounds == plain_stats.lookup_accepted == 0


def test_speculation_stops_at_the_end_token_and_at_max_tokens(varied_dir):
    model, _, prompt = _model(varied_dir)
    reference = _greedy(model, prompt, 20)
    eos = reference[9]
    oracle = _Oracle(build_head(model, 1, list(range(1000))), [*prompt, *reference])
    ids, _ = speculate_greedy(model, oracle, prompt, 20, eos_ids={eos}, draft_tokens=4)
    assert ids == reference[: reference.index(eos) + 1]
    for n in (1, 2, 5):
        ids, _ = speculate_greedy(model, oracle, prompt, n, eos_ids=set(), draft_tokens=4)
        assert ids == reference[:n]
    seen: list[list[int]] = []
    ids, _ = speculate_greedy(
        model,
        oracle,
        prompt,
        20,
        eos_ids=set(),
        draft_tokens=4,
        on_tokens=lambda new: seen.append(new) or sum(map(len, seen)) >= 6,
    )
    assert ids == reference[: len(ids)] and 6 <= len(ids) < 20
    assert [t for chunk in seen for t in chunk] == ids


def test_training_time_test_mask_matches_sequential_drafting(varied_dir):
    """Copy c of the unrolled sequence computes what the c-th sequential draft step computes."""
    model, _, _ = _model(varied_dir)
    head = build_head(model, 2, list(range(100))).eval()
    torch.manual_seed(1)
    length, hidden = 6, model.config.hidden_size
    e = torch.randn(1, length, hidden)
    f = torch.randn(1, length, hidden)
    g = torch.randn(1, length, hidden)  # stands for the head's own features (copy 1 inputs)
    allowed = _unroll_mask(length, 1, torch)
    pos = torch.arange(length).repeat(2)[None]
    with torch.no_grad():
        x = head.fc(torch.cat([e.repeat(1, 2, 1), torch.cat([f, g], 1)], -1))
        out = head.body(inputs_embeds=x, attention_mask=allowed[None, None], position_ids=pos)
        out = out.last_hidden_state
        assert torch.allclose(out[:, :length], head(e, f), atol=1e-5)
        for i in range(1, length):
            feats = torch.cat([f[:, :i], g[:, i : i + 1]], 1)
            step = head(e[:, : i + 1], feats)[:, -1]
            assert torch.allclose(out[:, length + i], step, atol=1e-5)
    deeper = _unroll_mask(4, 2, torch)
    # copy 2 at position 3 sees the true pairs 0..1, copy 1 at 2 and itself
    assert deeper[8 + 3].nonzero().flatten().tolist() == [0, 1, 4 + 2, 8 + 3]


def test_trained_head_files_manifest_and_reload(tmp_path, varied_dir, varied_head):
    assert is_eagle_dir(varied_head)
    m = read_manifest(varied_head, kind="draft")
    assert m.method == "eagle"
    d = m.details
    assert d["layers"] == 1 and d["vocab_kept"] <= 64
    assert 0 <= d["held_out_vocab_coverage"] <= 1  # random replies: often 0 here
    assert d["steps_done"] == 6 and d["loss_first"] > 0
    model, _, _ = _model(varied_dir)
    head = load_head(varied_head)
    assert head.lm.weight.shape == (d["vocab_kept"], model.config.hidden_size)
    # a head saved without its LM rows takes them from the target
    slim = tmp_path / "slim"
    shutil.copytree(varied_head, slim)
    save_head(head, slim, lm_rows=False, dtype=torch.float16)
    with pytest.raises(ConfigError, match="LM rows"):
        load_head(slim)
    again = load_head(slim, target=model, vocab=10)
    assert again.vocab_ids.tolist() == head.vocab_ids.tolist()[:10]
    assert torch.equal(again.lm.weight, model.get_output_embeddings().weight[again.vocab_ids])
    with pytest.raises(ConfigError, match="no EAGLE head"):
        load_head(tmp_path)


def test_continued_training_that_only_hurts_hands_back_the_initial_head(
    tmp_path, monkeypatch, varied_dir, varied_head
):
    import medverify.deploy.eagle_train as eagle_train

    scores = iter([0.5, 0.2, 0.3, 0.1])  # before training, then after each of 3 steps
    monkeypatch.setattr(eagle_train, "head_agreement", lambda *a, **k: next(scores))
    config = EagleConfig(
        steps=3, gen_tokens=12, max_prompts=6, holdout=2, batch_size=2, lr=1.0, eval_every=1
    )
    out = tmp_path / "continued"
    train_eagle(f"hf:{varied_dir}", out, config, init=varied_head)
    d = read_manifest(out, kind="draft").details
    assert d["best_step"] == 0 and d["steps_done"] == 3
    assert d["held_out_agreement_after"] == 0.5
    before, after = load_head(varied_head), load_head(out)
    assert torch.equal(before.fc.weight, after.fc.weight)  # lr 1.0 would have moved it


def test_frequent_tokens_keeps_the_commonest_and_the_end_token():
    rows = [{"prompt": [1], "reply": [7, 7, 7, 8, 8, 9]}]
    assert frequent_tokens(rows, 2, {2}) == [7, 2]
    assert frequent_tokens(rows, None, {2}) == [2, 7, 8, 9]


def test_training_refuses_bad_sizes_and_quantized_targets(tmp_path, varied_dir, tiny_int8):
    model, _, _ = _model(varied_dir)
    with pytest.raises(ConfigError, match="1 to 2 layers"):
        build_head(model, 3)
    with pytest.raises(ConfigError, match="quantized"):
        train_eagle(str(tiny_int8), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_engine_with_an_eagle_head_matches_the_target_alone(varied_dir, varied_head):
    plain = Engine(varied_dir).load()
    spec = Engine(varied_dir, draft=varied_head).load()
    assert spec.is_eagle and spec.draft_tokens == EAGLE_DRAFT_TOKENS
    params = SamplingParams(max_tokens=16)
    ref = plain.generate(PROMPT, params)
    pieces: list[str] = []
    out = spec.generate(PROMPT, params, on_text=pieces.append)
    assert out.token_ids == ref.token_ids and out.text == ref.text
    assert "".join(pieces) == out.text
    assert out.stats.draft_calls > 0 and out.stats.target_calls <= ref.stats.completion_tokens
    assert spec.memory_bytes()["draft"] > 0
    ids, stats = spec.speculate(spec.encode(PROMPT), 16)  # the loop generate runs, for benchmarks
    assert ids[: len(ref.token_ids)] == ref.token_ids and stats.target_calls > 0
    with pytest.raises(ConfigError, match="no EAGLE head"):
        plain.speculate(plain.encode(PROMPT), 4)
    cut = ref.text[len(ref.text) // 2 :][:3]
    if cut.strip():
        stopped = spec.generate(PROMPT, SamplingParams(max_tokens=16, stop=[cut]))
        assert stopped.text == ref.text[: ref.text.index(cut)]
    sampled = spec.generate(PROMPT, SamplingParams(max_tokens=8, temperature=0.7, seed=3))
    assert sampled.stats.draft_calls == 0  # sampling runs without the greedy-only head


def test_a_head_with_another_tokenizer_is_refused(tmp_path, varied_dir, varied_head):
    other = tmp_path / "other"
    shutil.copytree(varied_head, other)
    cfg = json.loads((other / "tokenizer_config.json").read_text())
    cfg["eos_token"] = "<|im_start|>"
    (other / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="tokenizer"):
        Engine(varied_dir, draft=other).load()


def test_vllm_is_not_given_an_eagle_head(varied_dir, varied_head):
    from medverify.deploy.serve import ServeConfig, vllm_command

    with pytest.raises(ConfigError, match="engine local"):
        vllm_command(ServeConfig(model=str(varied_dir), draft=varied_head), varied_dir)


def test_cli_trains_an_eagle_head(tmp_path, varied_dir):
    from typer.testing import CliRunner

    from medverify.cli import app

    out = tmp_path / "head"
    args = ["deploy", "distill-draft", "--kind", "eagle", "--target", f"hf:{varied_dir}"]
    args += ["--out", str(out), "--steps", "2", "--gen-tokens", "6", "--max-prompts", "4"]
    args += ["--holdout", "1", "--batch-size", "2", "--vocab", "32", "--layers", "1"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "EAGLE head" in result.output and is_eagle_dir(out)
    assert read_manifest(out).details["config"]["unroll"] == 2
    bad = CliRunner().invoke(app, [*args, "--kind", "medusa", "--overwrite"])
    assert bad.exit_code != 0 and "--kind" in bad.output


def test_a_head_also_drafts_for_the_int8_version_of_its_target(tmp_path, tiny_dir, tiny_int8):
    head = tmp_path / "head"
    config = EagleConfig(steps=2, gen_tokens=6, max_prompts=4, holdout=1, batch_size=2, vocab=32)
    train_eagle(f"hf:{tiny_dir}", head, config)
    engine = Engine(tiny_int8, draft=head).load()
    out = engine.generate(PROMPT, SamplingParams(max_tokens=8))
    assert out.stats.completion_tokens > 0 and out.stats.draft_calls > 0


def test_the_deploy_report_measures_an_eagle_head(varied_dir, varied_head):
    from medverify.deploy import report as rep
    from medverify.deploy.draft import held_out_prompts

    held = held_out_prompts(varied_head)  # trained on bundled prompts: its held-out ones
    assert held is not None and len(held) == 2
    variants = rep.make_variants(varied_dir, draft=varied_head)
    prompts = [[{"role": "user", "content": p.prompt}] for p in held]
    results, gens = rep.measure(variants, prompts, max_new_tokens=8)
    by = {r.name: r for r in results}
    assert [g.token_ids for g in gens["fp + draft"]] == [g.token_ids for g in gens["fp"]]
    assert by["fp + draft"].acceptance is not None and by["fp + draft"].draft_weights_mb > 0
