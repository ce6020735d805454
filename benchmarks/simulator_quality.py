"""The patient simulator's quality suite, offline, on the bundled cases.

Replays the scripted doctors of ``medverify.simulator.doctor_suite`` (every fact in three
paraphrases, exams and tests present and absent, adversarial turns, "anything else?") against
every bundled case with four personas, and records recall, both kinds of leakage,
hallucination, persona consistency and termination correctness. Targets: leakage 0, recall
>= 0.9, hallucination 0. The same numbers as ``medverify simulate eval``.

    python benchmarks/simulator_quality.py [--cases DIR] [--doctors 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio

from _common import write_result
from medverify.cases.loading import load_bundled_cases, load_cases
from medverify.simulator.quality import DEFAULT_PERSONAS, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=None, help="case file or directory (default: bundled)")
    parser.add_argument("--doctors", type=int, default=3)
    parser.add_argument("--personas", default=",".join(DEFAULT_PERSONAS))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cases = load_cases(args.cases) if args.cases else load_bundled_cases()
    personas = [p for p in args.personas.split(",") if p]
    report = asyncio.run(evaluate(cases, personas=personas, doctors=args.doctors))
    summary = report.model_dump(exclude={"per_case", "failures"})
    path = write_result(
        "simulator_quality",
        {
            "what": "patient simulator quality suite, offline (embeddings + templates)",
            **summary,
            "targets": {"leakage": 0, "recall": ">= 0.9", "hallucination": 0},
            "targets_met": report.targets(),
            "first_failures": [f.model_dump() for f in report.failures[:20]],
        },
        args.out,
    )
    print(
        f"simulator_quality ({report.cases} cases, {report.patient_turns} turns): "
        f"recall {report.recall:.3f}, leak dx {report.leak_dx}, leak unasked "
        f"{report.leak_unasked}, hallucination {report.hallucination:.4f}, persona "
        f"{report.persona:.3f}, termination {report.termination:.3f}, {report.seconds:.0f} s "
        f"-> {path}"
    )


if __name__ == "__main__":
    main()
