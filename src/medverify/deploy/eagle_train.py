"""Training an EAGLE head (:mod:`medverify.deploy.eagle`) on the target's own greedy replies.

The head learns to predict the target's next *feature* from the features so far and the next
token (smooth-L1), and the target's next-token distribution through the frozen LM rows
(cross-entropy, weighted 0.1 as in EAGLE). With ``unroll`` > 1 it is also trained on its own
predicted features (EAGLE-3's training-time test), because when it drafts several tokens in a
row that is what it reads. Replies come from :func:`medverify.deploy.draft.prepare_training`, so a
draft model and a head trained from the same target share them (same run store).
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from medverify.backends.torch_runtime import import_torch
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
from medverify.deploy.eagle import METHOD, WEIGHTS, build_head, load_head, save_head


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
