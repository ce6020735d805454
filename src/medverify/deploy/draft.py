"""Train a draft model for speculative decoding: ``medverify deploy distill-draft``.

Speculative decoding needs a draft that (a) shares the target's tokenizer exactly and (b) guesses
the target's next tokens often. No shipped model shares SmolLM2's tokenizer (universal assisted
decoding across tokenizers was measured at 0.44x), so the draft is *made from the target*:

1. **Self-speculative initialisation.** The draft is the target's first ``layers`` decoder layers
   plus its embeddings, final norm and (tied) LM head: same tokenizer by construction, and already
   a rough early-exit predictor of the target.
2. **Distillation on the target's own greedy outputs** over medical prompts (the shipped cases'
   chief complaints and HealthBench prompts, or ``--prompts FILE``): cross-entropy of the draft
   against the tokens the target actually emits, which is exactly what greedy verification
   accepts. Embeddings and head stay frozen (they are the target's); the layers and the norm train.
3. Held-out prompts measure top-1 agreement with the target before and after training (the
   acceptance rate a one-token draft would have), recorded in ``manifest.json``.

Generating the target's outputs is the slow part on CPU; with ``run_dir`` each batch is kept in a
:class:`~medverify.runs.store.RunStore`, so a killed run resumes without regenerating. The draft is
a plain transformers checkpoint: ``transformers``' ``assistant_model=`` and vLLM's draft-model
speculative decoding load it as is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from medverify.backends.torch_runtime import (
    configure_torch_threads,
    dtype_kwarg,
    import_torch,
    quiet_progress_bars,
)
from medverify.deploy.common import (
    DeployManifest,
    atomic_output_dir,
    checkpoint_fingerprint,
    read_manifest,
    resolve_model,
    tokenizer_fingerprint,
    versions,
    weights_bytes,
    write_manifest,
)
from medverify.deploy.engine import Engine
from medverify.deploy.quantize import is_deploy_dir, load_causal_lm
from medverify.errors import ConfigError, InputError
from medverify.runs.store import RunStore

log = logging.getLogger(__name__)


class Prompt(BaseModel):
    """One training prompt (a user message)."""

    id: str
    prompt: str = Field(min_length=1)
    source: str = ""


class TrainingConfig(BaseModel):
    """What every kind of draft is trained from: the target's replies, and the run of steps.

    Attributes:
        steps: optimizer steps.
        batch_size: sequences per step.
        lr: AdamW learning rate (linear warm-up, then cosine decay).
        gen_tokens: most tokens of each target reply to learn from.
        gen_batch: prompts the target answers at once while collecting data.
        max_prompts: use at most this many prompts (None: all).
        holdout: prompts kept out of training to measure agreement.
        seed: for the split, the batch order and the initialisation of nothing else.
        time_budget_s: stop training early after this many seconds (data collection excluded).
    """

    steps: int = Field(300, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(1e-3, gt=0)
    gen_tokens: int = Field(128, ge=2)
    gen_batch: int = Field(8, ge=1)
    max_prompts: int | None = Field(None, ge=2)
    holdout: int = Field(6, ge=1)
    seed: int = 0
    time_budget_s: float | None = Field(None, gt=0)


class DraftConfig(TrainingConfig):
    """How to build and train a draft model (the fields of :class:`TrainingConfig`, and these).

    Attributes:
        layers: decoder layers taken from the bottom of the target.
        loss: ``ce`` learns the target's greedy tokens only; ``kd`` adds the forward KL to the
            target's whole next-token distribution (DistillSpec, arXiv:2310.08461: it raises
            acceptance over CE alone), at the price of a target forward pass per batch.
    """

    layers: int = Field(2, ge=1)
    loss: Literal["ce", "kd"] = "ce"


class DraftResult(BaseModel):
    """What :func:`distill_draft` wrote and measured."""

    out: Path
    manifest: DeployManifest


def bundled_prompts() -> list[Prompt]:
    """The shipped medical prompts: HealthBench single-turn prompts and case chief complaints."""
    text = (
        resources.files("medverify.deploy")
        .joinpath("data/medical_prompts.jsonl")
        .read_text(encoding="utf-8")
    )
    return [Prompt.model_validate_json(line) for line in text.splitlines() if line.strip()]


def load_prompts(path: str | Path | None) -> list[Prompt]:
    """Prompts from a file, or the bundled ones.

    A ``.jsonl`` file holds objects with ``prompt`` (and optionally ``id``); HealthBench rows
    (``prompt`` a list of turns) contribute their last user turn. Any other file is one prompt
    per non-empty line.

    Raises:
        InputError: naming the file, line and field of a bad line.
        ConfigError: the file does not exist or holds fewer than two prompts.
    """
    if path is None:
        return bundled_prompts()
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"no such prompts file: {path}")
    prompts: list[Prompt] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if path.suffix != ".jsonl":
            prompts.append(Prompt(id=f"line-{n}", prompt=line.strip()))
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise InputError(f"not JSON: {exc}", path=path, line=n) from None
        if not isinstance(row, dict):
            raise InputError("expected a JSON object", path=path, line=n)
        value = row.get("prompt")
        if isinstance(value, list):  # a HealthBench row: its last user turn
            users = [
                t.get("content") for t in value if isinstance(t, dict) and t.get("role") == "user"
            ]
            value = users[-1] if users else None
        if not isinstance(value, str) or not value.strip():
            raise InputError("missing or empty prompt", path=path, line=n, field="prompt")
        ident = str(row.get("id") or row.get("prompt_id") or f"line-{n}")
        prompts.append(Prompt(id=ident, prompt=value))
    if len(prompts) < 2:
        raise ConfigError(f"{path}: need at least two prompts, found {len(prompts)}")
    return prompts


def split_prompts(
    prompts: list[Prompt], holdout: int, seed: int
) -> tuple[list[Prompt], list[Prompt]]:
    """Deterministic train / held-out split (at least one prompt on each side)."""
    order = sorted(prompts, key=lambda p: hashlib.sha256(f"{seed}:{p.id}".encode()).hexdigest())
    k = max(1, min(holdout, len(order) - 1))
    return order[k:], order[:k]


def init_draft_from_target(target: Any, layers: int) -> Any:
    """A new model: the target's embeddings, first ``layers`` decoder layers, norm and head.

    Raises:
        ConfigError: ``layers`` is not smaller than the target's depth, or the architecture does
            not name its layers ``model.layers.<i>``.
    """
    import copy

    torch, transformers = import_torch("deploy")
    depth = target.config.num_hidden_layers
    if layers >= depth:
        raise ConfigError(f"the draft needs fewer layers than the target's {depth}, got {layers}")
    cfg = copy.deepcopy(target.config)
    cfg.num_hidden_layers = layers
    if isinstance(getattr(cfg, "layer_types", None), list):
        cfg.layer_types = cfg.layer_types[:layers]
    draft = transformers.AutoModelForCausalLM.from_config(
        cfg, **{dtype_kwarg(transformers): torch.float32}
    )
    state = {
        k: v
        for k, v in target.state_dict().items()
        if not k.startswith("model.layers.") or int(k.split(".")[2]) < layers
    }
    missing, unexpected = draft.load_state_dict(state, strict=False)
    missing = [k for k in missing if "rotary" not in k and k != "lm_head.weight"]
    if missing or unexpected:
        raise ConfigError(
            f"cannot build a draft from this architecture: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    draft.generation_config = copy.deepcopy(target.generation_config)
    return draft.float()


def _target_replies(
    target: Any,
    tokenizer: Any,
    prompts: list[Prompt],
    config: DraftConfig,
    store: Any,
    on_progress: Callable[[str], None] | None,
) -> dict[str, dict[str, list[int]]]:
    """The target's greedy reply to every prompt, ``{id: {prompt: ids, reply: ids}}``."""
    done: dict[str, dict[str, list[int]]] = dict(store.items("reply")) if store else {}
    todo = [p for p in prompts if p.id not in done]
    engine = Engine.from_loaded(target, tokenizer, name="target")
    eos = min(engine.eos_ids)
    for i in range(0, len(todo), config.gen_batch):
        chunk = todo[i : i + config.gen_batch]
        encoded = [engine.encode([{"role": "user", "content": p.prompt}]) for p in chunk]
        replies, seconds = engine.generate_batch(encoded, config.gen_tokens)
        for p, ids, reply in zip(chunk, encoded, replies, strict=True):
            row = {
                "prompt": ids,
                "reply": [*reply, eos] if len(reply) < config.gen_tokens else reply,
            }
            done[p.id] = row
            if store is not None:
                store.put("reply", p.id, row)
        if on_progress:
            on_progress(
                f"target replies: {len(done)}/{len(prompts)} "
                f"({sum(len(r) for r in replies) / seconds:.1f} tok/s)"
            )
    return {p.id: done[p.id] for p in prompts}


def shuffled_batches(
    rows: list[dict[str, list[int]]], size: int, rng: random.Random
) -> Iterator[list[dict[str, list[int]]]]:
    """Endless batches of ``size`` rows, reshuffled every epoch (both kinds of draft train so)."""
    while True:
        order = list(range(len(rows)))
        rng.shuffle(order)
        for i in range(0, len(order), size):
            yield [rows[j] for j in order[i : i + size]]


def reply_tensors(rows: list[dict[str, list[int]]], pad: int, torch: Any) -> tuple[Any, Any, Any]:
    """Right-padded ids, attention mask and labels (-100 on the prompt and padding)."""
    seqs = [r["prompt"] + r["reply"] for r in rows]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (r, s) in enumerate(zip(rows, seqs, strict=True)):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
        labels[i, len(r["prompt"]) : len(s)] = torch.tensor(r["reply"])
    return ids, mask, labels


def _reply_logits(model: Any, ids: Any, mask: Any, labels: Any) -> tuple[Any, Any]:
    """Logits at the positions that predict reply tokens only, and those tokens.

    The LM head (vocabulary x hidden) dominates a shallow draft's cost; prompts are long and
    carry no loss, so the head runs on reply positions alone (several times faster on CPU).
    """
    hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    target = labels[:, 1:]
    keep = target != -100
    return model.get_output_embeddings()(hidden[keep]), target[keep]


def _reply_loss(
    model: Any, ids: Any, mask: Any, labels: Any, torch: Any, teacher: Any = None
) -> Any:
    """Cross-entropy on the target's tokens, plus KL(target || draft) when a teacher is given."""
    logits, target = _reply_logits(model, ids, mask, labels)
    log_q = torch.nn.functional.log_softmax(logits.float(), dim=-1)
    loss = torch.nn.functional.nll_loss(log_q, target)
    if teacher is not None:
        with torch.no_grad():
            teacher_logits, _ = _reply_logits(teacher, ids, mask, labels)
            log_p = torch.nn.functional.log_softmax(teacher_logits.float(), dim=-1)
        loss = loss + torch.nn.functional.kl_div(
            log_q, log_p, log_target=True, reduction="batchmean"
        )
    return loss


def agreement(model: Any, rows: list[dict[str, list[int]]], pad: int) -> float:
    """Share of reply tokens that ``model``'s greedy guess (given the true prefix) gets right."""
    torch, _ = import_torch("deploy")
    hits = total = 0
    with torch.inference_mode():
        for i in range(0, len(rows), 8):
            dev = next(model.parameters()).device
            ids, mask, labels = (t.to(dev) for t in reply_tensors(rows[i : i + 8], pad, torch))
            logits, target = _reply_logits(model, ids, mask, labels)
            hits += int((logits.argmax(-1) == target).sum())
            total += int(target.numel())
    return hits / total if total else 0.0


class TrainingData:
    """What every draft trainer starts from: the loaded target and its replies, split."""

    def __init__(self, **fields: Any) -> None:
        self.source: Path = fields["source"]
        self.model: Any = fields["model"]
        self.tokenizer: Any = fields["tokenizer"]
        self.train: list[Prompt] = fields["train"]
        self.held: list[Prompt] = fields["held"]
        self.train_rows: list[dict[str, list[int]]] = fields["train_rows"]
        self.held_rows: list[dict[str, list[int]]] = fields["held_rows"]
        self.gen_seconds: float = fields["gen_seconds"]

    @property
    def pad(self) -> int:
        """The padding id used to batch replies."""
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else 0

    def details(self, prompts_file: str | Path | None) -> dict[str, Any]:
        """The manifest facts about the data."""
        return {
            "target_layers": self.model.config.num_hidden_layers,
            "prompts": {
                "train": len(self.train),
                "held_out": len(self.held),
                "source": str(prompts_file) if prompts_file else "bundled",
            },
            "reply_tokens": sum(len(r["reply"]) for r in self.train_rows),
            "collect_seconds": round(self.gen_seconds, 1),
        }


def prepare_training(
    target: str,
    config: TrainingConfig,
    *,
    prompts_file: str | Path | None,
    run_dir: str | Path | None,
    device: str,
    say: Callable[[str], None],
    float32: bool = False,
) -> TrainingData:
    """Load the target and collect (or resume) its greedy replies to the training prompts.

    Args:
        target: the model spec (never a quantized directory).
        config: prompt count, split, reply length and batch size.
        prompts_file: training prompts (default: the bundled ones).
        run_dir: keeps the replies, shared by every kind of draft trained from this target.
        device: ``cpu`` or ``cuda``.
        say: progress messages.
        float32: run the target in float32 even on a GPU.

    Raises:
        ConfigError: a quantized target, or a run directory started with other settings.
    """
    torch, _ = import_torch("deploy")
    target_path = Path(target.removeprefix("hf:")).expanduser()
    if is_deploy_dir(target_path) and read_manifest(target_path).kind == "quantized":
        raise ConfigError(
            f"{target} is a quantized directory: train the draft on the original model "
            "(it then serves the quantized one too)"
        )
    source = resolve_model(target)
    prompts = load_prompts(prompts_file)
    if config.max_prompts:
        prompts = prompts[: config.max_prompts]
    train, held = split_prompts(prompts, config.holdout, config.seed)
    if device == "cpu":
        configure_torch_threads()
    torch.manual_seed(config.seed)
    model, tokenizer = load_causal_lm(source, device=device)
    if float32:
        model = model.float()
    store = None
    if run_dir is not None:
        store = RunStore(
            run_dir,
            job="distill-draft",
            config={
                "target_weights": checkpoint_fingerprint(source),
                "tokenizer": tokenizer_fingerprint(tokenizer),
                "gen_tokens": config.gen_tokens,
            },
        )
    try:
        start = time.perf_counter()
        data = _target_replies(model, tokenizer, prompts, config, store, say)
    finally:
        if store is not None:
            store.close()
    return TrainingData(
        source=source,
        model=model,
        tokenizer=tokenizer,
        train=train,
        held=held,
        train_rows=[data[p.id] for p in train],
        held_rows=[data[p.id] for p in held],
        gen_seconds=time.perf_counter() - start,
    )


def distill_draft(
    target: str,
    out: str | Path,
    config: DraftConfig | None = None,
    *,
    prompts_file: str | Path | None = None,
    run_dir: str | Path | None = None,
    overwrite: bool = False,
    on_progress: Callable[[str], None] | None = None,
    device: str = "cpu",
) -> DraftResult:
    """Build a draft from ``target``, distil it on the target's greedy replies, save it to ``out``.

    Args:
        target: ``local``, ``hf:<dir>`` or a checkpoint directory (the unquantized model: a
            draft trained on it also drafts for the quantized version).
        out: directory to create (written atomically, ``manifest.json`` last).
        config: sizes and training settings.
        prompts_file: training prompts (default: the bundled medical prompts).
        run_dir: keep the target's replies here so a rerun does not regenerate them.
        overwrite: replace a non-empty ``out``.
        on_progress: receives one-line progress messages.
        device: ``cpu`` or ``cuda`` (the target runs in bfloat16 there; the draft trains in
            float32 either way).

    Raises:
        ConfigError: a missing or quantized target, ``out`` not empty, too many layers.
    """
    config = config or DraftConfig()
    say = on_progress or (lambda _msg: None)
    with atomic_output_dir(out, overwrite=overwrite) as tmp:
        data = prepare_training(
            target, config, prompts_file=prompts_file, run_dir=run_dir, device=device, say=say
        )
        model, tokenizer, source = data.model, data.tokenizer, data.source
        train_rows, held_rows, pad = data.train_rows, data.held_rows, data.pad
        draft = init_draft_from_target(model, config.layers).to(device)
        target_agreement_floor = agreement(draft, held_rows, pad)
        teacher = model if config.loss == "kd" else None
        stats = _train(draft, train_rows, pad, config, say, teacher=teacher)
        draft.eval()
        after = agreement(draft, held_rows, pad)
        say(f"held-out top-1 agreement {target_agreement_floor:.3f} -> {after:.3f}")
        with quiet_progress_bars():
            draft.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        manifest = DeployManifest(
            kind="draft",
            method="distill",
            target="any",
            source_model=target,
            source_dir=str(source),
            tokenizer_sha256=tokenizer_fingerprint(tokenizer),
            source_bytes=weights_bytes(source),
            output_bytes=weights_bytes(tmp),
            versions=versions(),
            details={
                "config": config.model_dump(),
                **data.details(prompts_file),
                "held_out_agreement_before": round(target_agreement_floor, 4),
                "held_out_agreement_after": round(after, 4),
                **stats,
            },
        )
        write_manifest(tmp, manifest)
    return DraftResult(out=Path(out), manifest=manifest)


def _train(
    draft: Any,
    rows: list[dict[str, list[int]]],
    pad: int,
    config: DraftConfig,
    say: Callable[[str], None],
    teacher: Any = None,
) -> dict[str, Any]:
    """Cross-entropy (and KD from ``teacher``) on the target's replies; embeddings, head frozen."""
    torch, _ = import_torch("deploy")
    frozen = {id(draft.get_input_embeddings().weight), id(draft.get_output_embeddings().weight)}
    trainable = [p for p in draft.parameters() if id(p) not in frozen]
    for p in draft.parameters():
        p.requires_grad_(id(p) not in frozen)
    optim = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)
    warm = max(1, config.steps // 10)

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, config.steps - warm)))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    rng = random.Random(config.seed)
    batches = shuffled_batches(rows, config.batch_size, rng)
    draft.train()
    start = time.perf_counter()
    losses: list[float] = []
    steps = 0
    for steps in range(1, config.steps + 1):
        dev = next(draft.parameters()).device
        ids, mask, labels = (t.to(dev) for t in reply_tensors(next(batches), pad, torch))
        loss = _reply_loss(draft, ids, mask, labels, torch, teacher)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if steps % 25 == 0 or steps == config.steps:
            say(f"step {steps}/{config.steps} loss {sum(losses[-25:]) / len(losses[-25:]):.3f}")
        if config.time_budget_s and time.perf_counter() - start > config.time_budget_s:
            say(f"time budget reached after {steps} steps")
            break
    for p in draft.parameters():
        p.requires_grad_(True)
    return {
        "steps_done": steps,
        "train_seconds": round(time.perf_counter() - start, 1),
        "loss_first": round(losses[0], 4) if losses else None,
        "loss_last": round(sum(losses[-10:]) / len(losses[-10:]), 4) if losses else None,
    }


def held_out_prompts(draft_dir: str | Path) -> list[Prompt] | None:
    """The prompts a draft trained on bundled prompts never saw (None for other prompt files).

    Speed measured on training prompts would flatter the draft; reports use these instead.
    """
    manifest = read_manifest(draft_dir, kind="draft")
    details = manifest.details
    if details.get("prompts", {}).get("source") != "bundled":
        return None
    config = DraftConfig.model_validate(details.get("config", {}))
    prompts = bundled_prompts()
    if config.max_prompts:
        prompts = prompts[: config.max_prompts]
    return split_prompts(prompts, config.holdout, config.seed)[1]
