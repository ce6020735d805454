"""A feature-level draft head (EAGLE) with a pruned vocabulary, and exact greedy decoding with it.

Why not only a small draft model (:mod:`medverify.deploy.draft`)? A 4-layer draft cut from the
30-layer SmolLM2 agreed with the target on 0.57 of held-out tokens after GPU distillation, and
on the CPU each of its tokens still cost about an eighth of a target step (its 49,152-row LM head
alone is as large as its layers). That reached 1.00-1.15x, short of 1.5x. Two published ideas
address exactly those two costs:

* **EAGLE** (Li et al., arXiv:2401.15077): instead of reading tokens only, the draft reads the
  target's own last hidden state (its *features*) for the tokens so far, plus the embedding of the
  next token, and predicts the next feature with one decoder layer. The features already encode
  most of what the target will say next, so one layer goes further than four layers that start
  from token embeddings.
* **FR-Spec** (Zhao et al., arXiv:2502.14856): the draft's LM head covers only the most frequent
  tokens of the target's replies. A token outside that set can never be drafted, which costs a
  rejection now and then but never exactness; the head shrinks from 49,152 rows to a few thousand.

The head is ``fc`` (the concatenated token embedding and feature, 2H -> H), ``layers`` decoder
layers of the target's own architecture (initialised from its last layers) with a final norm, and
the target's LM-head rows for the kept tokens (``vocab_ids``), frozen.

Decoding (:func:`speculate_greedy`) drafts ``k`` tokens by feeding each predicted feature back in,
lets the target score all of them in one pass, keeps the longest prefix that matches the target's
own greedy choice plus the target's next token, and rolls both key/value caches back to what was
kept. So the output is the target's greedy output; the deploy benchmark and report count replies
identical to the target alone, because a multi-token pass may round differently in the last bits.
transformers' assisted decoding cannot host this draft (it passes token ids only), which is why the
loop is ours; vLLM serves EAGLE heads on GPUs itself.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from medverify.backends.torch_runtime import dtype_kwarg, import_torch
from medverify.deploy.common import (
    DeployManifest,
    atomic_output_dir,
    tokenizer_fingerprint,
    versions,
    weights_bytes,
    write_manifest,
)
from medverify.deploy.draft import (
    TrainingConfig,
    prepare_training,
    reply_tensors,
    shuffled_batches,
)
from medverify.errors import ConfigError

log = logging.getLogger(__name__)

#: Files of an EAGLE draft directory (besides the tokenizer and ``manifest.json``).
WEIGHTS = "eagle.safetensors"
CONFIG = "eagle_config.json"
#: ``manifest.json`` method of an EAGLE draft.
METHOD = "eagle"


class EagleConfig(TrainingConfig):
    """How to build and train the head (the fields of :class:`TrainingConfig`, and these).

    Attributes:
        layers: decoder layers in the head (EAGLE uses one).
        vocab: LM-head rows kept, the most frequent tokens of the target's training replies
            (None: the whole vocabulary).
        lr: as in :class:`TrainingConfig`, with a lower default.
        feature_weight: weight of the smooth-L1 loss between predicted and true features.
        token_weight: weight of the cross-entropy against the target's next-token distribution
            over the kept tokens (EAGLE weighs them 1 and 0.1).
        noise: uniform noise of this half-width added to the input features while training, so
            the head tolerates its own imperfect features when it drafts several tokens (EAGLE).
        unroll: drafting steps simulated in training (EAGLE-3's training-time test): step ``c``
            reads the head's own feature from step ``c - 1``. Without it (1) a head trained only
            on true features accepted its second token a third as often as its first.
        max_prompt_tokens: train on the last this many prompt tokens only (the features and
            labels are the target's on that shorter context, so nothing is inconsistent); long
            HealthBench prompts otherwise dominate the cost of a step on CPU.
        target_dtype: the target's precision for the replies and features: ``float32`` when
            the head will serve a float32 target (the CPU); ``auto`` is bfloat16 on a GPU. A
            head taught by a bfloat16 target loses agreement against the float32 one.
        eval_every: measure held-out agreement every this many steps and keep the best head (a
            few thousand replies are little data for many epochs; None: keep the last).
    """

    layers: int = Field(1, ge=1)
    vocab: int | None = Field(8192, ge=16)
    lr: float = Field(5e-4, gt=0)
    feature_weight: float = Field(1.0, ge=0)
    token_weight: float = Field(0.1, ge=0)
    noise: float = Field(0.1, ge=0)
    unroll: int = Field(2, ge=1, le=4)
    max_prompt_tokens: int | None = Field(None, ge=1)
    target_dtype: Literal["auto", "float32"] = "auto"
    eval_every: int | None = Field(None, ge=1)


class EagleResult(BaseModel):
    """What :func:`train_eagle` wrote and measured."""

    out: Path
    manifest: DeployManifest


def is_eagle_dir(path: str | Path) -> bool:
    """Whether ``path`` holds an EAGLE head written by :func:`train_eagle`."""
    path = Path(path)
    return (path / CONFIG).is_file() and (path / WEIGHTS).is_file()


def _cache_keyword(model: Any) -> str:
    """The cache argument's name: ``cache`` from transformers 5.24, ``past_key_values`` before."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def _head_weight(target: Any) -> Any:
    """The target's float LM-head matrix (the input embeddings when they are tied)."""
    torch, _ = import_torch("deploy")
    head = target.get_output_embeddings()
    weight = getattr(head, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.is_floating_point():
        return weight
    if getattr(target.config, "tie_word_embeddings", False):
        return target.get_input_embeddings().weight
    raise ConfigError(
        "the target's LM head is quantized and not tied to its embeddings: "
        "an EAGLE head needs the float head rows"
    )


def build_head(target: Any, layers: int, vocab_ids: Sequence[int] | None = None) -> Any:
    """A new head for ``target``: ``fc``, its last ``layers`` layers, norm, pruned LM head."""
    torch, transformers = import_torch("deploy")
    import copy

    depth = target.config.num_hidden_layers
    if not 1 <= layers < depth:
        raise ConfigError(f"the head needs 1 to {depth - 1} layers, got {layers}")
    cfg = copy.deepcopy(target.config)
    cfg.num_hidden_layers = layers
    if isinstance(getattr(cfg, "layer_types", None), list):
        cfg.layer_types = cfg.layer_types[-layers:]
    hidden = cfg.hidden_size
    weight = _head_weight(target).detach().float().cpu()
    ids = list(range(weight.shape[0])) if vocab_ids is None else [int(i) for i in vocab_ids]
    head = EagleHeadFactory.make(torch, transformers)(cfg, hidden, ids)
    with torch.no_grad():
        body_state = {
            k.replace(f"model.layers.{depth - layers + i}.", f"layers.{i}.", 1): v
            for k, v in target.state_dict().items()
            for i in range(layers)
            if k.startswith(f"model.layers.{depth - layers + i}.")
        }
        body_state["norm.weight"] = target.state_dict()["model.norm.weight"]
        head.body.load_state_dict({k: v.float().cpu() for k, v in body_state.items()}, strict=False)
        head.fc.weight.zero_()
        head.fc.weight[:, hidden:] = torch.eye(hidden)  # start as "the feature passes through"
        head.lm.weight.copy_(weight[torch.tensor(ids)])
    head.lm.weight.requires_grad_(False)
    return head


class EagleHeadFactory:
    """Builds the ``nn.Module`` class lazily: torch stays an optional dependency."""

    _cls: Any = None

    @classmethod
    def make(cls, torch: Any, transformers: Any) -> Any:
        """The ``EagleHead`` class (defined on first use)."""
        if cls._cls is not None:
            return cls._cls
        nn = torch.nn

        class EagleHead(nn.Module):
            """fc(embedding, feature) -> decoder layers -> norm -> predicted feature -> LM rows."""

            def __init__(self, config: Any, hidden: int, vocab_ids: list[int]) -> None:
                super().__init__()
                body_cfg = config.__class__.from_dict(config.to_dict())
                body_cfg.vocab_size = 1  # inputs arrive as embeddings; no table needed
                body_cfg.pad_token_id = body_cfg.bos_token_id = body_cfg.eos_token_id = None
                self.config = body_cfg
                self.fc = nn.Linear(2 * hidden, hidden, bias=False)
                self.body = transformers.AutoModel.from_config(
                    body_cfg, **{dtype_kwarg(transformers): torch.float32}
                )
                self.body.embed_tokens = None
                self.lm = nn.Linear(hidden, len(vocab_ids), bias=False)
                self.register_buffer("vocab_ids", torch.tensor(vocab_ids, dtype=torch.long))
                self.cache_keyword = _cache_keyword(self.body)

            def forward(
                self, embeds: Any, features: Any, cache: Any = None, attention_mask: Any = None
            ) -> Any:
                x = self.fc(torch.cat([embeds, features], dim=-1))
                kwargs = {self.cache_keyword: cache} if cache is not None else {}
                out = self.body(
                    inputs_embeds=x,
                    attention_mask=attention_mask,
                    use_cache=cache is not None,
                    **kwargs,
                )
                return out.last_hidden_state

            def draft(self, feature: Any) -> tuple[int, float]:
                """The best kept token (full-vocabulary id) and its probability over the kept."""
                probs = torch.softmax(self.lm(feature).float(), dim=-1)
                p, i = probs.max(-1)
                return int(self.vocab_ids[int(i)]), float(p)

        cls._cls = EagleHead
        return EagleHead


def save_head(head: Any, directory: Path, *, lm_rows: bool = True, dtype: Any = None) -> None:
    """Write the head's config and tensors.

    Args:
        head: the head.
        directory: an existing directory.
        lm_rows: also write the frozen LM rows (a copy of the target's; without them the head
            is smaller and :func:`load_head` takes them from the target).
        dtype: cast floating tensors to this (e.g. ``torch.float16`` to carry a head around).
    """
    from safetensors.torch import save_file

    state = {
        k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
        .detach()
        .contiguous()
        .cpu()
        for k, v in head.state_dict().items()
        if lm_rows or k != "lm.weight"
    }
    save_file(state, str(directory / WEIGHTS))
    (directory / CONFIG).write_text(
        json.dumps(
            {
                "body": head.config.to_dict(),
                "hidden_size": head.fc.out_features,
                "vocab_size": int(head.vocab_ids.numel()),
            },
            indent=1,
            default=str,
        )
    )


def load_head(
    directory: str | Path, *, target: Any = None, vocab: int | None = None, device: str = "cpu"
) -> Any:
    """An EAGLE head from a directory :func:`train_eagle` wrote.

    Args:
        directory: the head's directory.
        target: the target model; required when the head was saved without its LM rows
            (``save_head(..., lm_rows=False)``), which are then taken from the target.
        vocab: keep only the ``vocab`` most frequent tokens of the head (a smaller, cheaper head;
            the rows are stored most frequent first).
        device: where the head runs.

    Raises:
        ConfigError: the directory lacks the head's files, they do not fit together, or the
            LM rows are missing and no target is given.
    """
    torch, transformers = import_torch("deploy")
    from safetensors.torch import load_file

    directory = Path(directory)
    if not is_eagle_dir(directory):
        raise ConfigError(f"{directory} holds no EAGLE head ({CONFIG}, {WEIGHTS})")
    try:
        meta = json.loads((directory / CONFIG).read_text())
        body = meta["body"]
        config_cls = transformers.AutoConfig.for_model(body["model_type"]).__class__
        config = config_cls.from_dict(body)
        state = load_file(str(directory / WEIGHTS))
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        ids = state["vocab_ids"].tolist()
        if "lm.weight" not in state:
            if target is None:
                raise ConfigError(f"{directory} holds no LM rows: load it with its target")
            state["lm.weight"] = _head_weight(target).detach().float().cpu()[state["vocab_ids"]]
        if vocab is not None and vocab < len(ids):
            ids = ids[:vocab]
            state["vocab_ids"] = state["vocab_ids"][:vocab]
            state["lm.weight"] = state["lm.weight"][:vocab]
        head = EagleHeadFactory.make(torch, transformers)(config, int(meta["hidden_size"]), ids)
        head.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"{directory / WEIGHTS}: not a usable EAGLE head: {exc}") from None
    head.requires_grad_(False)
    return head.to(device).eval()


# --------------------------------------------------------------------------- decoding


def _lookup(sequence: list[int], size: int, limit: int) -> list[int]:
    """Up to ``limit`` tokens that followed the latest earlier occurrence of the last ``size``."""
    if len(sequence) <= size:
        return []
    tail = sequence[-size:]
    for start in range(len(sequence) - size - 1, -1, -1):
        if sequence[start : start + size] == tail:
            return sequence[start + size : start + size + limit]
    return []


def _crop(cache: Any, length: int) -> None:
    """Keep the first ``length`` positions (a negative count works in transformers 5.17-5.24)."""
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)


class SpeculationStats(BaseModel):
    """Counts of one :func:`speculate_greedy` call.

    ``lookup_rounds`` / ``lookup_accepted``: rounds drafted by prompt lookup rather than the head,
    and the draft tokens of those rounds the target kept, so a speedup can be split between the
    head and text that repeats its context.
    """

    target_calls: int = 0
    draft_calls: int = 0
    accepted: int = 0
    lookup_rounds: int = 0
    lookup_accepted: int = 0


def speculate_greedy(
    target: Any,
    head: Any,
    prompt: Sequence[int],
    max_new_tokens: int,
    *,
    eos_ids: set[int],
    draft_tokens: int = 4,
    min_confidence: float = 0.0,
    lookup: int = 0,
    on_tokens: Callable[[list[int]], bool] | None = None,
) -> tuple[list[int], SpeculationStats]:
    """The target's greedy continuation of ``prompt``, drafted ``draft_tokens`` at a time.

    Args:
        target: the causal LM (its ``.model`` base and output embeddings are used).
        head: an EAGLE head for this target.
        prompt: token ids.
        max_new_tokens: most tokens to produce.
        eos_ids: tokens that end the reply (included in the returned ids, like ``generate``).
        draft_tokens: most tokens drafted per round.
        min_confidence: stop a round's drafting early when the head gives its next guess less
            than this probability (EAGLE-2: the head's confidence tracks acceptance), so
            unlikely tokens cost neither a head step nor a verification row. The first guess
            of a round is always drafted.
        lookup: when the last ``lookup`` tokens occurred earlier in the prompt or reply, draft
            the tokens that followed them instead (prompt lookup, free: replies often copy
            their context); the head drafts otherwise. 0 turns it off.
        on_tokens: receives each round's new tokens; returning True stops (a stop string).

    Returns:
        The new token ids and what it took.
    """
    torch, _ = import_torch("deploy")
    from transformers import DynamicCache

    base = target.get_decoder() if hasattr(target, "get_decoder") else target.model
    lm_head = target.get_output_embeddings()
    embed = target.get_input_embeddings()
    device = next(target.parameters()).device
    t_key = _cache_keyword(base)
    t_cache, d_cache = DynamicCache(), DynamicCache()
    stats = SpeculationStats()
    out: list[int] = []

    def target_pass(ids: list[int]) -> tuple[Any, Any]:
        stats.target_calls += 1
        x = torch.tensor([ids], device=device)
        feats = base(input_ids=x, use_cache=True, **{t_key: t_cache}).last_hidden_state
        return feats, lm_head(feats[0])

    def head_pass(tokens: list[int], feats: Any) -> Any:
        stats.draft_calls += 1
        e = embed(torch.tensor([tokens], device=device))
        return head(e, feats, d_cache)[0, -1:]

    with torch.inference_mode():
        if not prompt or max_new_tokens < 1:
            return [], stats
        stats.target_calls += 1
        feats = base(
            input_ids=torch.tensor([list(prompt)], device=device),
            use_cache=True,
            **{t_key: t_cache},
        ).last_hidden_state
        nxt = int(lm_head(feats[0, -1:]).argmax(-1))
        out.append(nxt)
        if (on_tokens and on_tokens([nxt])) or nxt in eos_ids or len(out) >= max_new_tokens:
            return out, stats
        # the head's position i pairs the target's feature at i with the token at i + 1
        guess = head_pass([*prompt[1:], nxt], feats)
        while True:
            kept = d_cache.get_seq_length()
            room = max_new_tokens - len(out)
            drafted = _lookup([*prompt, *out], lookup, min(draft_tokens, room)) if lookup else []
            looked_up = bool(drafted)
            g = guess
            for j in range(0 if drafted else min(draft_tokens, room)):
                token, confidence = head.draft(g)
                if j and confidence < min_confidence:
                    break
                drafted.append(token)
                if j + 1 < min(draft_tokens, room):
                    g = head_pass([token], g.unsqueeze(0))
            t_len = t_cache.get_seq_length()
            feats, logits = target_pass([nxt, *drafted])
            choice = logits.argmax(-1).tolist()
            a = 0
            while a < len(drafted) and drafted[a] == choice[a]:
                a += 1
            new = [*drafted[:a], choice[a]]
            stats.accepted += a
            if looked_up:
                stats.lookup_rounds += 1
                stats.lookup_accepted += a
            _crop(t_cache, t_len + 1 + a)
            _crop(d_cache, kept)
            for i, tok in enumerate(new):
                if tok in eos_ids or len(out) + i + 1 >= max_new_tokens:
                    new = new[: i + 1]
                    break
            out.extend(new)
            if (on_tokens and on_tokens(new)) or new[-1] in eos_ids or len(out) >= max_new_tokens:
                return out, stats
            guess = head_pass(new, feats[:, : len(new)])
            nxt = new[-1]


# --------------------------------------------------------------------------- training


def _teacher(target: Any, ids: Any, mask: Any, where: Any) -> tuple[Any, Any, Any]:
    """Token embeddings, the target's features, and its greedy choice where ``where`` is set.

    The choice (an argmax over the whole vocabulary) is the label; it is computed only at the
    positions the loss uses, which keeps the vocabulary-sized product off the prompt.
    """
    base = target.get_decoder() if hasattr(target, "get_decoder") else target.model
    feats = base(input_ids=ids, attention_mask=mask).last_hidden_state
    choice = ids.new_full(ids.shape, -1)
    choice[where] = target.get_output_embeddings()(feats[where]).argmax(-1)
    embeds = target.get_input_embeddings()(ids)
    return embeds.float(), feats.float(), choice


def _unroll_mask(length: int, depth: int, torch: Any) -> Any:
    """Attention of ``depth + 1`` stacked copies of a sequence (training-time test).

    Copy ``c`` at position ``i`` stands for the ``c``-th drafted token after position ``i - c``:
    it sees the true pairs up to ``i - c`` and the chain of drafted pairs that led to it
    (copy ``c'`` at ``i - c + c'``), exactly as in :func:`speculate_greedy`.
    """
    n = length * (depth + 1)
    allowed = torch.zeros((n, n), dtype=torch.bool)
    idx = torch.arange(length)
    for c in range(depth + 1):
        rows = c * length + idx
        for i in range(length):
            allowed[rows[i], : max(0, i - c + 1)] = True  # the true history
        for cc in range(1, c + 1):
            src = idx - (c - cc)
            ok = src >= 0
            allowed[rows[ok], cc * length + src[ok]] = True
    return allowed


def _losses(
    head: Any,
    embeds: Any,
    feats: Any,
    choice: Any,
    mask: Any,
    keep_positions: Any,
    config: EagleConfig,
    torch: Any,
) -> tuple[Any, Any, Any]:
    """Feature and token losses summed over the unrolled drafting steps, and first-step hits.

    Step 0 reads the target's features; step ``c`` reads the head's own prediction from step
    ``c - 1`` (detached), so the head learns to draft from its own imperfect features.
    """
    batch, length = embeds.shape[0], embeds.shape[1] - 1
    e_in = embeds[:, 1:]  # pair i: token i + 1 ...
    f_in = feats[:, :-1]  # ... with the feature at i; it predicts the feature at i + 1
    f_out = feats[:, 1:]
    target_tok = choice[:, 1:]  # the target's greedy token after position i + 1
    if config.noise and head.training:
        f_in = f_in + (torch.rand_like(f_in) * 2 - 1) * config.noise
    pad_mask = mask[:, 1:].bool()
    feature_loss = token_loss = 0.0
    hits = None
    copies = [f_in]
    preds: list[Any] = []
    depth = config.unroll - 1 if head.training else 0
    for c in range(depth + 1):
        if c == 0:
            pred = head(e_in, f_in, attention_mask=mask[:, 1:])
        else:
            prev = preds[-1].detach()  # copy c - 1 at i - 1 predicted the feature at i
            copies.append(torch.cat([torch.zeros_like(prev[:, :1]), prev[:, :-1]], dim=1))
            allowed = _unroll_mask(length, c, torch).to(embeds.device)
            attn = allowed[None] & pad_mask.repeat(1, c + 1)[:, None, :]
            pos = torch.arange(length, device=embeds.device).repeat(c + 1)
            x = head.fc(torch.cat([e_in.repeat(1, c + 1, 1), torch.cat(copies, dim=1)], dim=-1))
            out = head.body(
                inputs_embeds=x,
                attention_mask=attn[:, None],
                position_ids=pos[None].expand(batch, -1),
            )
            pred = out.last_hidden_state[:, c * length :]
        preds.append(pred)
        keep = keep_positions[:, 1:] & pad_mask
        if c:
            keep = keep & (torch.arange(length, device=keep.device) >= c)[None]
        pred_k, true_k = pred[keep], f_out[keep]
        weight = 1.0 if c == 0 else 0.5
        feature_loss = feature_loss + weight * torch.nn.functional.smooth_l1_loss(pred_k, true_k)
        with torch.no_grad():
            p = torch.softmax(head.lm(true_k), dim=-1)
        log_q = torch.log_softmax(head.lm(pred_k), dim=-1)
        token_loss = token_loss + weight * -(p * log_q).sum(-1).mean()
        if c == 0:
            hits = head.vocab_ids[log_q.argmax(-1)] == target_tok[keep]
    return feature_loss, token_loss, hits


def _batch_losses(
    head: Any, target: Any, rows: list[dict[str, list[int]]], pad: int, config: EagleConfig
) -> tuple[Any, Any, Any]:
    torch, _ = import_torch("deploy")
    dev = next(target.parameters()).device
    if config.max_prompt_tokens is not None:  # the prompt's tail is context enough
        rows = [{**r, "prompt": r["prompt"][-config.max_prompt_tokens :]} for r in rows]
    ids, mask, labels = (t.to(dev) for t in reply_tensors(rows, pad, torch))
    # the loss covers pairs whose predicted feature scores a reply token
    keep = torch.zeros_like(mask, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != -100
    with torch.no_grad():
        embeds, feats, choice = _teacher(target, ids, mask, keep)
    return _losses(head, embeds, feats, choice, mask, keep, config, torch)


def head_agreement(
    head: Any,
    target: Any,
    rows: list[dict[str, list[int]]],
    pad: int,
    max_prompt_tokens: int | None = None,
) -> float:
    """Share of reply tokens the head's first guess gets right (given the true prefix).

    The same measure as :func:`medverify.deploy.draft.agreement`, so the two drafts compare:
    the reference is the target's own greedy choice on that prefix (the last
    ``max_prompt_tokens`` prompt tokens of it, when given).
    """
    torch, _ = import_torch("deploy")
    hits = total = 0
    was_training = head.training
    head.eval()
    with torch.inference_mode():
        for i in range(0, len(rows), 8):
            config = EagleConfig(noise=0, max_prompt_tokens=max_prompt_tokens)
            _, _, h = _batch_losses(head, target, rows[i : i + 8], pad, config)
            hits += int(h.sum())
            total += int(h.numel())
    head.train(was_training)
    return hits / total if total else 0.0


def frequent_tokens(
    rows: list[dict[str, list[int]]], size: int | None, always: set[int]
) -> list[int]:
    """The ``size`` most frequent reply tokens (plus ``always``), most frequent first."""
    counts = Counter(t for r in rows for t in r["reply"])
    ranked = [t for t, _ in counts.most_common()]
    if size is None:
        return sorted(set(ranked) | always)
    chosen = [t for t in always if t not in ranked[:size]]
    return ranked[: max(0, size - len(chosen))] + sorted(chosen)


def train_eagle(
    target: str,
    out: str | Path,
    config: EagleConfig | None = None,
    *,
    prompts_file: str | Path | None = None,
    run_dir: str | Path | None = None,
    overwrite: bool = False,
    on_progress: Callable[[str], None] | None = None,
    device: str = "cpu",
    init: str | Path | None = None,
) -> EagleResult:
    """Train an EAGLE head for ``target`` on its own greedy replies and save it to ``out``.

    The arguments are those of :func:`~medverify.deploy.draft.distill_draft`; the target's replies
    kept under ``run_dir`` are shared with it (same store layout), so a second draft costs no
    regeneration. ``init`` continues from an existing head (its layers and kept tokens win over
    ``config.layers`` and ``config.vocab``): e.g. a head trained on a GPU against the bfloat16
    target, tuned on the CPU against the float32 one. With ``config.eval_every`` the carried head
    is the first candidate for the best head, so training that only lowers held-out agreement
    returns it unchanged (``best_step`` 0 in the manifest).

    Raises:
        ConfigError: a missing or quantized target, ``out`` not empty, too many layers.
    """
    config = config or EagleConfig()
    say = on_progress or (lambda _msg: None)
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        data = prepare_training(
            target,
            config,
            prompts_file=prompts_file,
            run_dir=run_dir,
            device=device,
            say=say,
            float32=config.target_dtype == "float32",
        )
        model, tokenizer, source = data.model, data.tokenizer, data.source
        model.requires_grad_(False)
        train_rows, held_rows, pad = data.train_rows, data.held_rows, data.pad
        if init is not None:
            head = load_head(init, target=model, device=device)
            head.requires_grad_(True)
            head.lm.weight.requires_grad_(False)
            vocab_ids = head.vocab_ids.tolist()
        else:
            eos = {int(t) for t in [tokenizer.eos_token_id] if t is not None}
            vocab_ids = frequent_tokens(train_rows, config.vocab, eos)
            head = build_head(model, config.layers, vocab_ids).to(device)
        held_tokens = [t for r in held_rows for t in r["reply"]]
        kept = set(vocab_ids)
        coverage = sum(t in kept for t in held_tokens) / max(1, len(held_tokens))
        say(f"kept {len(vocab_ids)} tokens, covering {coverage:.3f} of held-out reply tokens")
        before = head_agreement(head, model, held_rows, pad, config.max_prompt_tokens)
        # a head carried in starts as the best so far: training that only makes it worse
        # (too high a learning rate, too little data) then hands it back unchanged
        stats = _train_head(
            head,
            model,
            train_rows,
            pad,
            config,
            say,
            held_rows,
            start_agreement=before if init else None,
        )
        head.eval()
        after = stats.pop("best_agreement")  # measured on these rows when eval_every is set
        if after is None:
            after = head_agreement(head, model, held_rows, pad, config.max_prompt_tokens)
        say(f"held-out top-1 agreement {before:.3f} -> {after:.3f}")
        save_head(head, tmp)
        tokenizer.save_pretrained(tmp)
        manifest = DeployManifest(
            kind="draft",
            method=METHOD,
            target="any",
            source_model=target,
            source_dir=str(source),
            tokenizer_sha256=tokenizer_fingerprint(tokenizer),
            source_bytes=weights_bytes(source),
            output_bytes=(tmp / WEIGHTS).stat().st_size,
            versions=versions(),
            details={
                "config": config.model_dump(),
                "layers": head.config.num_hidden_layers,
                "init": str(init) if init is not None else None,
                **data.details(prompts_file),
                "vocab_kept": len(vocab_ids),
                "held_out_vocab_coverage": round(coverage, 4),
                "held_out_agreement_before": round(before, 4),
                "held_out_agreement_after": round(after, 4),
                **stats,
            },
        )
        write_manifest(tmp, manifest)
    return EagleResult(out=Path(out), manifest=manifest)


def _train_head(
    head: Any,
    target: Any,
    rows: list[dict[str, list[int]]],
    pad: int,
    config: EagleConfig,
    say: Callable[[str], None],
    held: list[dict[str, list[int]]] | None = None,
    start_agreement: float | None = None,
) -> dict[str, Any]:
    import copy

    torch, _ = import_torch("deploy")
    trainable = [p for p in head.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    start = time.perf_counter()

    def progress(step: int) -> float:
        """Share of training done: by steps, or by time when a budget would end it sooner."""
        done = step / config.steps
        if config.time_budget_s:
            done = max(done, (time.perf_counter() - start) / config.time_budget_s)
        return min(1.0, done)

    def lr_at(step: int) -> float:
        # linear warm-up over the first 5%, then cosine decay to zero at the end
        done = progress(step)
        if done < 0.05:
            return max(done, 1 / config.steps) / 0.05
        return 0.5 * (1 + math.cos(math.pi * (done - 0.05) / 0.95))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    batches = shuffled_batches(rows, config.batch_size, random.Random(config.seed))
    head.train()
    losses: list[float] = []
    hits: list[float] = []
    best: tuple[float, int, Any] = (-1.0, 0, None)
    if start_agreement is not None and held and config.eval_every:
        best = (start_agreement, 0, copy.deepcopy(head.state_dict()))
    steps = 0
    for steps in range(1, config.steps + 1):
        f_loss, t_loss, h = _batch_losses(head, target, next(batches), pad, config)
        loss = config.feature_weight * f_loss + config.token_weight * t_loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        hits.append(float(h.float().mean()))
        if steps % 25 == 0 or steps == config.steps:
            say(
                f"step {steps}/{config.steps} loss {sum(losses[-25:]) / len(losses[-25:]):.3f} "
                f"train top-1 {sum(hits[-25:]) / len(hits[-25:]):.3f}"
            )
        last = progress(steps) >= 1.0 or steps == config.steps
        if held and config.eval_every and (steps % config.eval_every == 0 or last):
            score = head_agreement(head, target, held, pad, config.max_prompt_tokens)
            if score > best[0]:
                best = (score, steps, copy.deepcopy(head.state_dict()))
            say(f"step {steps}: held-out top-1 agreement {score:.3f} (best {best[0]:.3f})")
        if last and steps < config.steps:
            say(f"time budget reached after {steps} steps")
            break
    if best[2] is not None:
        head.load_state_dict(best[2])
    return {
        "best_agreement": best[0] if best[2] is not None else None,
        "best_step": best[1] if best[2] is not None else steps,
        "steps_done": steps,
        "train_seconds": round(time.perf_counter() - start, 1),
        "loss_first": round(losses[0], 4) if losses else None,
        "loss_last": round(sum(losses[-10:]) / len(losses[-10:]), 4) if losses else None,
    }
