"""How many torch threads on a small CPU, idle and busy: what a user waiting on ``chat`` sees.

On a 2-core machine running something else, torch with one thread per core waits at every
operation for the thread that shares its core; a user measured ``chat --max-tokens 48`` at 70 s
with the old default (all cores) against 15 s with ``MEDVERIFY_THREADS=1``. This benchmark runs
the installed entry point, ``medverify chat --max-tokens N --no-cache`` (a fresh process each
time, model load included, as the user waits for it), under three loads (nothing else running,
then 1 and 2 busy-looping processes, unpinned) with three thread settings side by side: one
thread, one per core, and the default (:func:`medverify.backends.torch_runtime.cpu_threads`,
the cores other work leaves free when the model loads). Each cell is the median of ``--repeat``
runs; the ratios compare each setting with the best one under the same load.

    python benchmarks/cpu_threads.py [--max-tokens 48] [--repeat 1] [--out FILE]

Writes ``benchmarks/results/cpu_threads.json`` and prints one summary line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

from _common import write_result

PROMPT = "I have had a dry cough and a mild fever for four days. Should I see a doctor?"
SPIN = "while True: pass"


def chat_seconds(threads: int | None, max_tokens: int) -> float:
    """Wall seconds of one ``medverify chat`` call with ``MEDVERIFY_THREADS`` set or unset."""
    env = dict(os.environ)
    env.pop("MEDVERIFY_THREADS", None)
    if threads is not None:
        env["MEDVERIFY_THREADS"] = str(threads)
    exe = shutil.which("medverify") or "medverify"
    cmd = [exe, "chat", PROMPT, "--max-tokens", str(max_tokens), "--no-cache"]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"medverify chat failed ({done.returncode}): {done.stderr[-500:]}")
    return seconds


def default_threads() -> int:
    """The thread count the default picks right now (in a fresh process, as chat does)."""
    env = dict(os.environ)
    env.pop("MEDVERIFY_THREADS", None)
    code = "from medverify.backends.torch_runtime import cpu_threads; print(cpu_threads())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return int(out.stdout.strip())


def measure(load: int, cores: int, max_tokens: int, repeat: int) -> dict[str, Any]:
    """All three settings under ``load`` busy-looping processes."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(load)]
    try:
        time.sleep(1.0 if load else 0.0)
        picked = default_threads()
        cells: dict[str, Any] = {}
        for name, threads in (("1 thread", 1), (f"{cores} threads", cores), ("default", None)):
            runs = [chat_seconds(threads, max_tokens) for _ in range(repeat)]
            cells[name] = {"seconds": round(statistics.median(runs), 2), "runs": runs}
        cells["default"]["threads"] = picked
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    best = min(c["seconds"] for c in cells.values())
    for c in cells.values():
        c["x_best"] = round(c["seconds"] / best, 2)
    return {"busy_processes": load, "settings": cells}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    chat_seconds(1, 4)  # the conversion cache and the page cache warm, not timed
    rows = [measure(load, cores, args.max_tokens, args.repeat) for load in range(cores + 1)]
    result = {
        "what": "medverify chat wall time (model load + greedy reply), fresh process per call",
        "model": "local (SmolLM2-135M-Instruct, embedded)",
        "max_tokens": args.max_tokens,
        "repeat": args.repeat,
        "loads": rows,
        "worst_x_best": {
            name: max(r["settings"][name]["x_best"] for r in rows) for name in rows[0]["settings"]
        },
    }
    path = write_result("cpu_threads", result, args.out)
    parts = []
    for r in rows:
        s = r["settings"]
        cells = " / ".join(f"{s[k]['seconds']:.1f}" for k in s)
        parts.append(f"{r['busy_processes']} busy: {cells} s (default {s['default']['threads']})")
    print(
        f"cpu_threads: chat {args.max_tokens} tokens, 1 thread / {cores} threads / default: "
        + "; ".join(parts)
        + f"; worst vs best: default {result['worst_x_best']['default']}x -> {path}"
    )


if __name__ == "__main__":
    main()
