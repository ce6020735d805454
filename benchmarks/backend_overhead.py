"""How close the openai backend comes to the ideal throughput of a slow endpoint.

A fake OpenAI-compatible server (its own process, so it does not share our core) answers every
call after a fixed latency. With ``c`` calls in flight the ideal rate is ``c / latency``; the
ratio measured / ideal is the share lost to our client (validation, HTTP, retries bookkeeping,
the cache). Target: >= 0.8 at 64 and 256 in flight.

    python benchmarks/backend_overhead.py [--latency 0.1] [--rounds 20] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path

from _common import start_fake_server, write_result
from medverify.backends.registry import BackendOptions, make_backend


async def measure(base_url: str, concurrency: int, rounds: int, cache: Path | None) -> dict:
    options = BackendOptions(
        base_url=base_url,
        api_key="",
        concurrency=concurrency,
        use_cache=cache is not None,
        cache_path=cache,
    )
    n = concurrency * rounds
    async with make_backend("openai:bench", options) as backend:
        await backend.complete([{"role": "user", "content": "warm-up"}])
        cpu0 = time.process_time()
        start = time.perf_counter()
        results = await asyncio.gather(
            *[
                backend.complete([{"role": "user", "content": f"c{concurrency} call {i}"}])
                for i in range(n)
            ]
        )
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu0
    assert len(results) == n
    return {
        "calls": n,
        "seconds": round(elapsed, 3),
        "calls_per_s": round(n / elapsed, 1),
        "client_cpu_ms_per_call": round(1000 * cpu / n, 4),
    }


async def run(latency: float, rounds: int, levels: list[int]) -> list[dict]:
    proc, base_url = start_fake_server(latency)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for concurrency in levels:
                ideal = concurrency / latency
                for cached in (False, True):
                    cache = Path(tmp) / f"cache-{concurrency}.sqlite" if cached else None
                    row = await measure(base_url, concurrency, rounds, cache)
                    row.update(
                        concurrency=concurrency,
                        response_cache=cached,
                        ideal_calls_per_s=ideal,
                        ratio_of_ideal=round(row["calls_per_s"] / ideal, 3),
                    )
                    rows.append(row)
    finally:
        proc.terminate()
        proc.wait(10)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=20, help="calls per in-flight slot")
    parser.add_argument("--levels", default="1,16,64,256")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    rows = asyncio.run(run(args.latency, args.rounds, levels))
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    path = write_result(
        "backend_overhead",
        {
            "what": "openai backend against the fake server in its own process",
            "latency_s": args.latency,
            "rows": rows,
            "target": "ratio_of_ideal >= 0.8 at concurrency 64 and 256",
            "peak_rss_mb": round(peak_rss_mb, 1),
        },
        args.out,
    )
    summary = ", ".join(
        f"c={r['concurrency']}{'+cache' if r['response_cache'] else ''}: {r['ratio_of_ideal']}"
        for r in rows
    )
    print(f"backend_overhead (latency {args.latency}s, ratio of ideal): {summary} -> {path}")


if __name__ == "__main__":
    main()
