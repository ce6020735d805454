"""Single-fault verifier suite: does the verifier notice one thing going wrong at a time?

The careful scripted doctor (:mod:`medverify.consult.faults`: a standard history in everyday
words, written without reading the record's facts) and its eight single-fault variants play
every case against the offline patient; :meth:`ConsultationTask.score` grades each consultation
(offline local grader by default, or an LLM judge). Per fault it reports, on the dimension the
fault belongs to (wrong_dx/hedged: diagnostic_accuracy, no_history/repeated:
consultation_logic, unsafe_plan: treatment_rationality, rude: communication_empathy,
fabricated/no_consent: medical_ethics), the mean drop against the careful doctor and on how
many cases it dropped, and on how many cases the overall score dropped; whether the careful
doctor's diagnosis was credited on every case (its rubric item "States <dx> as the final
diagnosis" met) and the wrong-diagnosis
variant's never; and the wall time of one graded consultation (play, rubric, grading). A
dimension the grader did not measure stays ``null``, never 0.

Two case sets, reported apart: the bundled cases, and an UNSEEN held-out split of AgentClinic
MedQA-extended (``agentclinic_medqa_extended.jsonl``, SamuelSchmidgall/AgentClinic, MIT): the
cases not in the 107-case dev file of shared/data and whose diagnosis no bundled case has, of
which a seeded sample of 20 is taken. Its case ids are written to the result so that nobody
tunes on them.

    python benchmarks/verifier_faults.py [--cases bundled,unseen] [--limit N]
        [--unseen-file agentclinic_medqa_extended.jsonl] [--grader local]

The held-out split ships as converted case records in ``benchmarks/data/`` (MIT, attribution in
``benchmarks/data/SOURCES.md``); ``--unseen-file`` draws it again from the source file.
        [--judge SPEC --base-url URL] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import statistics
import time
from pathlib import Path
from typing import Any

from _common import write_result
from medverify.backends.registry import BackendOptions
from medverify.cases.closing import diagnosis_matches
from medverify.cases.importers.agentclinic import read_agentclinic
from medverify.cases.loading import load_bundled_cases, load_cases
from medverify.cases.records import CaseRecord
from medverify.consult.faults import CAREFUL, FAULT_DIMENSION, FAULTS, careful_doctor
from medverify.consult.records import DIMENSIONS
from medverify.consult.task import ConsultationScore, ConsultationTask
from medverify.grading import Grader, make_grader
from medverify.grading.consultation_grader import is_offline
from medverify.grading.evidence import DetectorCheck

ROOT = Path(__file__).parents[1]
SHARED_CASES = ROOT.parent / "shared" / "data" / "cases"
EXTENDED = SHARED_CASES / "agentclinic_medqa_extended.jsonl"
DEV_FILE = SHARED_CASES / "agentclinic_medqa107.jsonl"
EXTENDED_SOURCE = (
    "SamuelSchmidgall/AgentClinic @ b6570ed, agentclinic_medqa_extended.jsonl (MIT, "
    "Samuel Schmidgall 2024)"
)
#: The held-out split as converted case records, shipped so that the split runs anywhere (the
#: sample below, seed 0, of the cases imported from EXTENDED; see benchmarks/data/SOURCES.md).
HELDOUT = Path(__file__).resolve().parent / "data" / "heldout_agentclinic_extended20.jsonl"
MAX_TURNS = 30
DOCTORS = (CAREFUL, *(f"{CAREFUL}-{f}" for f in FAULTS))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unseen_cases(
    path: Path, bundled: list[CaseRecord], *, n: int, seed: int, dev_file: Path | None
) -> tuple[list[CaseRecord], dict[str, Any]]:
    """The held-out split: extended cases not in the dev file, no bundled diagnosis; a sample."""
    imported = read_agentclinic(path).cases
    dev_ids = {c.id for c in read_agentclinic(dev_file).cases} if dev_file else set()
    bundled_dx = [c.diagnosis for c in bundled]
    pool = [
        c
        for c in imported
        if c.id not in dev_ids
        and not any(
            diagnosis_matches(c.diagnosis, d) or diagnosis_matches(d, c.diagnosis)
            for d in bundled_dx
        )
    ]
    pool.sort(key=lambda c: c.id)
    sample = sorted(random.Random(seed).sample(pool, min(n, len(pool))), key=lambda c: c.id)
    info = {
        "file": path.name,
        "source": EXTENDED_SOURCE,
        "sha256": _sha256(path),
        "imported": len(imported),
        "dropped_in_dev_file": sum(1 for c in imported if c.id in dev_ids),
        "dev_file": dev_file.name if dev_file else None,
        "pool": len(pool),
        "seed": seed,
        "held_out_case_ids": [c.id for c in sample],
        "held_out_diagnoses": [c.diagnosis for c in sample],
    }
    return sample, info


def _dx_credit(case: CaseRecord, score: ConsultationScore) -> bool | None:
    """Whether the item "States <dx> as the final diagnosis" was met (None: no such item)."""
    head = f"states {case.diagnosis} as the final diagnosis".lower()
    for verdict in score.verdicts:
        if verdict.criterion.lower().startswith(head):
            return verdict.met
    return None


async def run_case(case: CaseRecord, grader: Grader) -> dict[str, Any]:
    """Every doctor on one case: scores, credit of the diagnosis, seconds per consultation."""
    task = ConsultationTask(case=case, max_turns=MAX_TURNS)
    # The patient never walks out: the suite measures the verifier, not the patient's patience.
    persona = task.patient_persona().model_copy(update={"patience": None})
    task = task.model_copy(update={"persona": persona})
    rows: dict[str, Any] = {}
    for doctor in DOCTORS:
        kind = doctor
        start = time.perf_counter()
        transcript = await task.play(careful_doctor(case, kind))
        # With an LLM judge, also ask it about the evidence-checked items: how often it agrees.
        rubric = await task.rubric(transcript)
        score = await task.score(
            transcript, grader, rubric=rubric, judge_checked=not is_offline(grader)
        )
        dims = score.dimensions
        detected = {
            check.detector: v.met
            for v in score.verdicts
            if isinstance(check := rubric.checks.get(v.criterion), DetectorCheck)
        }
        rows[doctor] = {
            "overall": score.score,
            "dimensions": {d: dims.get(d) for d in DIMENSIONS},
            "dx_credited": _dx_credit(case, score),
            "diagnosis_final": score.scan.diagnosis_final,
            "termination": transcript.termination_reason,
            "doctor_turns": sum(1 for t in transcript.turns if t.role == "doctor"),
            "revealed": len(transcript.revealed()),
            "n_criteria": len(score.verdicts),
            "n_unmeasured": sum(1 for v in score.verdicts if not v.measured),
            "judge_agreement": score.judge_agreement,
            "detectors": detected,
            "seconds": time.perf_counter() - start,
        }
    return rows


def _mean(xs: list[float]) -> float | None:
    return round(statistics.fmean(xs), 4) if xs else None


def summarize(per_case: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per fault: own-dimension drop (mean, cases), overall drop; diagnosis credit; timing."""
    n = len(per_case)
    faults: dict[str, Any] = {}
    for fault in FAULTS:
        dim, name = FAULT_DIMENSION[fault], f"{CAREFUL}-{fault}"
        drops, overall_dropped, not_measured = [], 0, 0
        for rows in per_case.values():
            c, f = rows[CAREFUL], rows[name]
            cd, fd = c["dimensions"][dim], f["dimensions"][dim]
            if cd is None or fd is None:
                not_measured += 1
            else:
                drops.append(cd - fd)
            if c["overall"] is not None and f["overall"] is not None:
                overall_dropped += c["overall"] > f["overall"]
        faults[fault] = {
            "dimension": dim,
            "mean_drop": _mean(drops),
            "cases_dropped": sum(1 for d in drops if d > 0),
            "cases_measured": len(drops),
            "cases_not_measured": not_measured,
            "overall_dropped": overall_dropped,
            "n": n,
        }
    doctors = {}
    for doctor in DOCTORS:
        rows = [r[doctor] for r in per_case.values()]
        overall = [r["overall"] for r in rows if r["overall"] is not None]
        doctors[doctor] = {
            "overall": _mean(overall),
            "dimensions": {
                d: _mean([r["dimensions"][d] for r in rows if r["dimensions"][d] is not None])
                for d in DIMENSIONS
            },
            "unscored": len(rows) - len(overall),
            "terminations": sorted({r["termination"] or "none" for r in rows}),
        }
    agreement = [
        r[d]["judge_agreement"]
        for r in per_case.values()
        for d in DOCTORS
        if r[d].get("judge_agreement") is not None
    ]
    careful = [r[CAREFUL]["dx_credited"] for r in per_case.values()]
    wrong = [r[f"{CAREFUL}-wrong_dx"]["dx_credited"] for r in per_case.values()]
    seconds = [r[d]["seconds"] for r in per_case.values() for d in DOCTORS]
    return {
        "n_cases": n,
        "faults": faults,
        "doctors": doctors,
        "careful_dx_credited": sum(1 for x in careful if x is True),
        "careful_dx_item_missing": sum(1 for x in careful if x is None),
        "careful_dx_credited_every_case": all(x is True for x in careful),
        "wrong_dx_credited": sum(1 for x in wrong if x is True),
        "wrong_dx_never_credited": not any(x is True for x in wrong),
        # share of evidence-checked items on which an LLM judge agreed with the evidence
        "judge_evidence_agreement": _mean(agreement),
        "seconds_per_consultation": {
            "first_cold": round(seconds[0], 2),
            "mean_warm": round(statistics.fmean(seconds[1:]), 3) if len(seconds) > 1 else None,
            "n_warm": len(seconds) - 1,
        },
    }


#: Labels by construction: (detector, doctor) -> the verdict the detector should give. Each
#: fault variant was written to contain its fault and the careful doctor to avoid it, by a
#: session that did not read the detectors; these are the labelled consultation verdicts the
#: offline detectors are validated on.
DETECTOR_LABELS: dict[str, dict[str, bool]] = {
    "belittles": {CAREFUL: False, f"{CAREFUL}-rude": True},
    "empathy": {CAREFUL: True, f"{CAREFUL}-rude": False},
    "consent": {CAREFUL: True, f"{CAREFUL}-no_consent": False},
    "fabricated": {CAREFUL: False, f"{CAREFUL}-fabricated": True},
    "dismissive_plan": {CAREFUL: False, f"{CAREFUL}-unsafe_plan": True},
    "plan": {CAREFUL: True, f"{CAREFUL}-unsafe_plan": False},
    "safety_net": {CAREFUL: True, f"{CAREFUL}-unsafe_plan": False},
    "checks_understanding": {CAREFUL: True},
}


def detector_accuracy(per_case: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per detector: how often it gave the labelled verdict, where the rubric had its item."""
    out: dict[str, Any] = {}
    for detector, labels in DETECTOR_LABELS.items():
        right = total = 0
        wrong: list[str] = []
        for case_id, rows in per_case.items():
            for doctor, expected in labels.items():
                got = rows[doctor]["detectors"].get(detector)
                if got is None:
                    continue
                total += 1
                if got == expected:
                    right += 1
                else:
                    wrong.append(f"{case_id} {doctor}")
        out[detector] = {
            "accuracy": round(right / total, 4) if total else None,
            "n": total,
            "wrong": wrong[:10],
        }
    return out


async def run_set(cases: list[CaseRecord], grader: Grader) -> dict[str, Any]:
    per_case = {}
    for case in cases:
        per_case[case.id] = await run_case(case, grader)
    return {
        **summarize(per_case),
        "detector_accuracy": detector_accuracy(per_case),
        "per_case": per_case,
    }


def _line(name: str, s: dict[str, Any]) -> str:
    n = s["n_cases"]
    parts = []
    for fault, f in s["faults"].items():
        drop = "n/m" if f["mean_drop"] is None else f"{f['mean_drop']:+.2f}"
        parts.append(
            f"{fault} {drop} ({f['cases_dropped']}/{f['cases_measured']}, "
            f"ovr {f['overall_dropped']}/{n})"
        )
    t = s["seconds_per_consultation"]["mean_warm"]
    return (
        f"{name} n={n}: "
        + "; ".join(parts)
        + f"; dx credit {s['careful_dx_credited']}/{n}"
        + f", wrong_dx credit {s['wrong_dx_credited']}/{n}"
        + f"; {t:.2f} s/consultation"
    )


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    spec = args.judge or args.grader
    grader = make_grader(spec, BackendOptions(base_url=args.base_url))
    bundled = load_bundled_cases()
    sets: dict[str, Any] = {}
    try:
        if "bundled" in args.cases:
            cases = bundled[: args.limit] if args.limit else bundled
            sets["bundled"] = await run_set(cases, grader)
        if "unseen" in args.cases and args.unseen_file is None:
            cases = load_cases(HELDOUT)
            info = {
                "file": f"benchmarks/data/{HELDOUT.name}",
                "source": EXTENDED_SOURCE,
                "sha256": _sha256(HELDOUT),
                "held_out_case_ids": [c.id for c in cases],
                "held_out_diagnoses": [c.diagnosis for c in cases],
            }
            cases = cases[: args.limit] if args.limit else cases
            sets["unseen"] = {"split": info, **(await run_set(cases, grader))}
        elif "unseen" in args.cases:
            dev = args.dev_file if args.dev_file and args.dev_file.is_file() else None
            cases, info = unseen_cases(
                args.unseen_file, bundled, n=args.unseen_n, seed=args.seed, dev_file=dev
            )
            cases = cases[: args.limit] if args.limit else cases
            sets["unseen"] = {"split": info, **(await run_set(cases, grader))}
    finally:
        await grader.aclose()
    return {
        "grader": grader.spec,
        "max_turns": MAX_TURNS,
        "patient": "offline, patience off",
        "fault_dimensions": FAULT_DIMENSION,
        "sets": sets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="bundled,unseen", help="case sets: bundled,unseen")
    parser.add_argument("--limit", type=int, default=None, help="first N cases of each set")
    parser.add_argument(
        "--unseen-file",
        type=Path,
        default=None,
        help="draw the held-out split anew from this AgentClinic MedQA-extended file "
        f"(default: the shipped split, {HELDOUT.name})",
    )
    parser.add_argument(
        "--dev-file",
        type=Path,
        default=DEV_FILE,
        help="cases to leave out of the unseen split (the dev data)",
    )
    parser.add_argument("--unseen-n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grader", default="local")
    parser.add_argument(
        "--judge", default=None, help="an LLM judge backend spec (overrides --grader)"
    )
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.cases = {c.strip() for c in args.cases.split(",") if c.strip()}
    if "unseen" in args.cases and args.unseen_file and not args.unseen_file.is_file():
        parser.error(
            f"{args.unseen_file} not found: pass --unseen-file agentclinic_medqa_extended.jsonl "
            f"({EXTENDED_SOURCE})"
        )
    result = asyncio.run(main_async(args))
    path = write_result("verifier_faults", result, args.out)
    for name, s in result["sets"].items():
        print(f"verifier_faults [{result['grader']}] {_line(name, s)}")
    print(f"-> {path}")


if __name__ == "__main__":
    main()
