"""Offline patient turns per second on one CPU core (target >= 50), model load time apart.

Pins the process to one core and torch to one thread, loads all-MiniLM-L6-v2 once (reported
separately), then plays the scripted doctors of the quality suite against the bundled cases
through ``ConsultationEnv.respond`` (Fact Unit, Affective Unit, Guard, Gate; no I/O). Two
numbers:

* ``warm``: the embedding LRU on, as in evaluation and RL rollouts, where doctors repeat
  themselves (the same question to many cases and personas);
* ``cold``: the LRU cleared before every turn, so every doctor sentence the rules do not settle
  is embedded afresh (a stream of never-seen doctor turns);
* ``worst``: as ``cold``, and every doctor sentence is embedded as if no rule had settled it --
  the upper bound of the per-turn cost.

    python benchmarks/simulator_throughput.py [--cases 36] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from _common import write_result
from medverify.cases.loading import load_bundled_cases
from medverify.simulator.doctor_suite import scripted_doctors
from medverify.simulator.environment import ConsultationEnv
from medverify.simulator.fact_unit import OfflineFactUnit, doctor_sentences
from medverify.text.embeddings import default_embedder, load_model


def pin_one_core() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    return torch.get_num_threads()


async def play(cases, *, cold: bool, embed_all: bool = False) -> tuple[int, float, int]:
    embedder = default_embedder()
    unit = OfflineFactUnit(embedder)
    turns = embedded = 0
    elapsed = 0.0
    for case in cases:
        unit.prepare(case)  # fact embeddings: once per case, not per turn
        for doctor in scripted_doctors(case, 3):
            env = ConsultationEnv.create(
                case, max_turns=len(doctor.probes) + 1, offline_fact_unit=unit
            )
            env.opening()
            for probe in doctor.probes:
                if env.is_finished():
                    break
                if cold:
                    embedder.clear()
                misses = embedder.misses
                start = time.perf_counter()
                if embed_all:
                    embedder.embed(doctor_sentences(probe.text))
                await env.respond(probe.text)
                elapsed += time.perf_counter() - start
                embedded += embedder.misses - misses
                turns += 1
    return turns, elapsed, embedded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=None, help="only the first N bundled cases")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    threads = pin_one_core()
    start = time.perf_counter()
    load_model()
    load_s = time.perf_counter() - start
    cases = load_bundled_cases()[: args.cases]
    rows = {}
    for name, cold, embed_all in (
        ("warm", False, False),
        ("cold", True, False),
        ("worst", True, True),
    ):
        turns, elapsed, embedded = asyncio.run(play(cases, cold=cold, embed_all=embed_all))
        rows[name] = {
            "turns": turns,
            "seconds": round(elapsed, 2),
            "turns_per_s": round(turns / elapsed, 1),
            "ms_per_turn": round(1000 * elapsed / turns, 2),
            "sentences_embedded": embedded,
        }
    path = write_result(
        "simulator_throughput",
        {
            "what": "offline patient turns/s (ConsultationEnv.respond), one core, torch 1 thread",
            "torch_threads": threads,
            "model_load_s": round(load_s, 2),
            "cases": len(cases),
            **rows,
            "target": "turns_per_s >= 50",
        },
        args.out,
    )
    print(
        f"simulator_throughput (1 core): warm {rows['warm']['turns_per_s']} turns/s, "
        f"cold {rows['cold']['turns_per_s']}, worst {rows['worst']['turns_per_s']}; "
        f"model load {load_s:.1f} s -> {path}"
    )


if __name__ == "__main__":
    main()
