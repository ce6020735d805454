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
loop is ours; vLLM serves EAGLE heads on GPUs itself. Training lives in
:mod:`medverify.deploy.eagle_train`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from medverify.backends.torch_runtime import cache_keyword, dtype_kwarg, import_torch
from medverify.errors import ConfigError

log = logging.getLogger(__name__)

#: Files of an EAGLE draft directory (besides the tokenizer and ``manifest.json``).
WEIGHTS = "eagle.safetensors"
CONFIG = "eagle_config.json"
#: ``manifest.json`` method of an EAGLE draft.
METHOD = "eagle"


def is_eagle_dir(path: str | Path) -> bool:
    """Whether ``path`` holds an EAGLE head (as ``eagle_train.train_eagle`` writes them)."""
    path = Path(path)
    return (path / CONFIG).is_file() and (path / WEIGHTS).is_file()


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
                self.cache_keyword = cache_keyword(self.body)

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
    t_key = cache_keyword(base)
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
