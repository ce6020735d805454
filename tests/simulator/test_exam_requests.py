"""A request for one examination or test returns that one, and only that one.

The doctor turns here are written in plain clinical words from a list of examinations and tests
(not from the records' keywords): "Let me listen to your heart", "We'll get a chest X-ray".
``REQUESTS`` is that list; ``WANTED`` says, for every exam finding and test result of the 36
bundled cases, which of those requests it answers. A name ending in ``?`` marks a finding that
may come back for that request without being wrong (a knee finding for "look at your legs");
``*`` marks a whole-examination statement ("Physical examination is unremarkable") that may come
back for any examination of that case.

``measure`` asks every request on every bundled case and counts, for requests the record has
findings for, how many return exactly the wanted findings, something extra, or miss some; and
for requests the record has nothing for, how many return nothing (the item is reported missing)
or something anyway. Run this file as a script to print the counts
(``python tests/simulator/test_exam_requests.py``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from medverify.backends.mock import MockBackend
from medverify.cases.importers import read_agentclinic
from medverify.cases.importers.agentclinic import case_id as agentclinic_case_id
from medverify.cases.loading import load_bundled_cases
from medverify.cases.records import CaseRecord
from medverify.simulator.doctor_turn import parse_turn
from medverify.simulator.environment import ConsultationEnv
from medverify.simulator.fact_unit_llm import LLMFactUnit

# ---------------------------------------------------------------- the requests, in plain words

EXAM_REQUESTS: dict[str, str] = {
    "general": "Let me examine you.",
    "vitals": "First I'll take your vital signs.",
    "temperature": "Let me take your temperature.",
    "blood pressure": "I'm going to check your blood pressure.",
    "pulse": "Let me feel your pulse.",
    "breathing rate": "I'll count your breathing rate.",
    "oxygen": "I'll put this clip on your finger to check your oxygen level.",
    "weight": "Let me weigh you and measure your height.",
    "appearance": "I'll start by looking at your general appearance.",
    "eyes": "Let me look at your eyes.",
    "back of the eyes": "I'll look at the back of your eyes with a light.",
    "slit lamp": "I'd like to look at your eyes with the slit lamp.",
    "ears": "Let me look in your ears.",
    "hearing": "I'll test your hearing with a tuning fork.",
    "nose": "Let me look inside your nose.",
    "mouth": "Open wide so I can look inside your mouth.",
    "neck": "Let me examine your neck.",
    "lymph nodes": "I'll feel for any swollen lymph nodes.",
    "thyroid": "Let me feel your thyroid gland.",
    "heart": "Let me listen to your heart.",
    "lungs": "I'll listen to your lungs.",
    "chest": "Let me examine your chest.",
    "abdomen": "I'm going to press on your belly.",
    "skin": "Let me have a look at your skin.",
    "scalp": "Let me look at your scalp.",
    "neurological": "I'll do a neurological examination.",
    "cranial nerves": "Let me test your cranial nerves.",
    "strength": "Push against my hands as hard as you can so I can test your strength.",
    "reflexes": "I'll check your reflexes with my hammer.",
    "sensation": "Now I'll check your sensation with this cotton wool.",
    "coordination": "Touch your nose, then my finger, so I can check your coordination.",
    "gait": "Could you walk across the room for me so I can watch your walking?",
    "mental state": "I'll ask a few questions to check your memory and orientation.",
    "face": "Let me look at your face.",
    "speech": "I'd like to listen to how you speak.",
    "arms": "Let me examine your arms and hands.",
    "joints": "Let me examine your joints.",
    "knee": "Let me examine your knee.",
    "ankle": "Let me look at your ankle.",
    "shoulder": "Let me examine your shoulder and see how far it moves.",
    "legs": "Let me look at your legs.",
    "kidney area": "I'll tap on your back over the kidneys.",
    "genitals": "I need to examine your genitals.",
    "pelvic": "I'll need to do an internal pelvic examination.",
    "pregnancy": "I'll examine your bump and listen to the baby's heartbeat.",
    "positional test": "I'll do a positional test: I'll lie you back quickly, head turned.",
}
TEST_REQUESTS: dict[str, str] = {
    "blood count": "We'll get a full blood count.",
    "kidney function": "I'll send blood to check your kidney function.",
    "electrolytes": "We'll check your electrolytes.",
    "liver tests": "Let's send off liver tests.",
    "blood sugar": "We'll check your blood sugar.",
    "thyroid tests": "Let's test your thyroid hormone levels.",
    "inflammation": "I'll check your inflammation markers.",
    "iron": "Let's check your iron levels.",
    "cholesterol": "We'll check your cholesterol.",
    "albumin": "We'll check your albumin level.",
    "muscle enzymes": "We'll check your muscle enzymes.",
    "pancreatic enzymes": "Let's check your pancreatic enzymes.",
    "troponin": "We'll check your troponin.",
    "urine": "We'll test a urine sample.",
    "urine drugs": "We'll do a urine drug screen.",
    "blood cultures": "Let's draw blood cultures.",
    "stool": "Let's send a stool sample.",
    "chest x-ray": "We'll get a chest X-ray.",
    "shoulder x-ray": "Let's X-ray your shoulder.",
    "chest ct": "We'll do a CT scan of your chest.",
    "abdominal ct": "We'll get a CT scan of your abdomen.",
    "brain mri": "We'll do an MRI of your brain.",
    "ecg": "We'll do a heart tracing.",
    "nerve conduction": "We'll do an electrical test of your nerves and muscles.",
    "spinal tap": "We'll need a spinal tap.",
    "skin biopsy": "I'd like to take a small skin biopsy.",
    "bone marrow": "We'll take a bone marrow sample.",
    "genetic test": "We'll send a genetic test.",
    "joint fluid": "I'll draw some fluid from your knee with a needle to test it.",
    "hiv": "We'll test you for HIV.",
    "tb test": "We'll do a TB skin test.",
    "autoantibodies": "We'll check your blood for autoantibodies.",
    "cd4": "Let's check your CD4 count.",
    "hemoglobin types": "We'll send a hemoglobin electrophoresis.",
    "routine bloods": "Let's do some routine blood tests.",
}
REQUESTS = {**EXAM_REQUESTS, **TEST_REQUESTS}

_V = "temperature, blood pressure, pulse, breathing rate"  # the usual four vital signs
_NORMAL_VITALS = f"{_V}, oxygen?"  # "Vital signs are within normal limits."
# Requests that ask for a part of another one: its findings are wanted for that one too.
PARTS = {
    "vitals": ("temperature", "blood pressure", "pulse", "breathing rate", "oxygen"),
    "neurological": ("cranial nerves", "strength", "reflexes", "sensation", "coordination", "gait"),
    "routine bloods": (
        "blood count",
        "kidney function",
        "electrolytes",
        "liver tests",
        "blood sugar",
        "inflammation",
    ),
}
# ... and what such a request may bring besides ("routine bloods" may include the iron studies).
MAY_ALSO = {
    "routine bloods": (
        "thyroid tests",
        "iron",
        "cholesterol",
        "albumin",
        "muscle enzymes",
        "pancreatic enzymes",
        "troponin",
        "autoantibodies",
        "cd4",
        "hiv",
        "hemoglobin types",
        "blood cultures",
    ),
    "slit lamp": ("eyes",),  # "look at your eyes with the slit lamp" is an eye examination
    # The lexicon's items that cover two of these requests: a U&E panel, gait and coordination,
    # the genital and pelvic examination.
    "electrolytes": ("kidney function",),
    "kidney function": ("electrolytes",),
    "gait": ("coordination",),
    "coordination": ("gait",),
    "genitals": ("pelvic",),
    "pelvic": ("genitals",),
}

# ---------------------------------------------------------------- what each finding answers

WANTED: dict[str, dict[str, str]] = {
    "agentclinic-medqa-001": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        "e5": "cranial nerves, eyes?, face?",
        "e6": "strength, arms?",
        "e7": "reflexes",
        "e8": "sensation",
        "t1": "autoantibodies",
        "t2": "nerve conduction",
        "t3": "chest ct",
    },
    "agentclinic-medqa-005": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        "e5": "skin",
        "e6": "heart, pulse?, chest?",
        "e7": "abdomen, kidney area?",
        "e8": "kidney area, abdomen?",
        "t1": "kidney function, electrolytes?",
        "t2": "kidney function, electrolytes?",
        "t3": "urine",
        "t4": "urine",
        "t5": "urine",
    },
    "agentclinic-medqa-017": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        **{f"e{i}": "abdomen" for i in range(5, 9)},
        **{f"t{i}": "blood count" for i in range(1, 6)},
        "t6": "inflammation",
        "t7": "stool",
    },
    "agentclinic-medqa-021": {
        **dict(zip(("e1", "e2", "e3"), _V.split(", "), strict=False)),
        "e4": "weight",
        "e5": "weight",
        "e6": "weight",
        "e7": "lymph nodes, neck",
        "e8": "skin",
        "e9": "back of the eyes, eyes",
        "t1": "cd4, blood count?",
    },
    "agentclinic-medqa-022": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        "e5": "knee, joints, legs?",
        "e6": "ankle, joints, legs?",
        "e7": "ankle, joints?, legs?",
        "e8": "genitals",
        "e9": "eyes, slit lamp?",
        "t1": "blood count",
        "t2": "blood count",
        "t3": "blood count",
        "t4": "inflammation",
        "t5": "kidney function",
        "t6": "blood sugar",
        "t7": "kidney function",
        **{f"t{i}": "urine" for i in range(8, 12)},
        "t12": "hiv",
        **{f"t{i}": "joint fluid" for i in range(13, 17)},
    },
    "agentclinic-medqa-028": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        **{f"e{i}": "shoulder, joints, arms?" for i in range(5, 11)},
        "e11": "shoulder, joints, strength?, arms?",
        **{f"t{i}": "shoulder x-ray" for i in range(1, 4)},
    },
    "agentclinic-medqa-032": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        "e5": "appearance",
        "e6": "lymph nodes, neck",
        "e7": "abdomen",
        **{f"t{i}": "blood count" for i in range(1, 4)},
    },
    "agentclinic-medqa-040": {
        "e1": "blood pressure",
        "e2": "pulse",
        "e3": "temperature",
        "e4": "appearance",
        "e5": "abdomen",
        "e6": "heart, pulse?, chest?",
        "e7": "lungs, chest",
        "t1": "blood count",
        "t2": "blood count",
        **{f"t{i}": "iron" for i in range(3, 7)},
        "t7": "bone marrow",
        "t8": "genetic test",
    },
    "agentclinic-medqa-044": {
        **dict(zip(("e1", "e2", "e3"), _V.split(", "), strict=False)),
        **{f"e{i}": "abdomen" for i in range(4, 8)},
        "t1": "abdominal ct",
    },
    "agentclinic-medqa-060": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        **{f"e{i}": "abdomen" for i in range(5, 9)},
        "e9": "pelvic",
        "e10": "pelvic",
        "e11": "pelvic, genitals?",
        "t1": "blood count",
        "t2": "inflammation",
    },
    "agentclinic-medqa-063": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        "e5": "skin",
        "e6": "skin",
        **{f"t{i}": "blood count" for i in range(1, 4)},
    },
    "agentclinic-medqa-066": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        "e5": "appearance",
        "e6": "heart, chest?",
        "e7": "lungs, chest",
        "e8": "legs, ankle?",
        "t1": "blood count",
        "t2": "blood count",
        "t3": "blood count",
        "t4": "kidney function",
        "t5": "blood sugar",
        "t6": "kidney function",
        "t7": "albumin",
        "t8": "cholesterol",
        **{f"t{i}": "urine" for i in range(9, 14)},
        "t14": "chest x-ray",
        "t15": "chest ct",
    },
    "agentclinic-medqa-072": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        "e5": "oxygen",
        "e6": "cranial nerves, eyes?, ears?, hearing?",
        "e7": "gait, coordination?",
        "e8": "positional test",
        "t1": "blood count, routine bloods",
        "t2": "electrolytes, kidney function?, routine bloods",
        # "Laboratory tests, other: No other abnormalities detected." answers any blood test.
        "t3": "routine bloods, blood count?, electrolytes?, kidney function?, liver tests?, "
        "blood sugar?, troponin?, blood cultures?, hemoglobin types?, inflammation?",
        "t4": "brain mri",
    },
    "agentclinic-medqa-080": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        "e5": "pregnancy, abdomen?",
        "e6": "pregnancy, abdomen?",
        "e7": "pregnancy, abdomen?",
        "e8": "mental state, neurological?, appearance?",
        "e9": "cranial nerves",
        "e10": "strength",
        "e11": "sensation",
        "e12": "reflexes",
        "t1": "blood cultures",
        **{f"t{i}": "blood count" for i in range(2, 5)},
        **{f"t{i}": "liver tests" for i in range(5, 8)},
        **{f"t{i}": "urine" for i in range(8, 13)},
    },
    "agentclinic-medqa-084": {
        **dict(zip(("e1", "e2", "e3"), _V.split(", "), strict=False)),
        "e4": "mental state, neurological?, appearance?",
        "e5": "strength",
        "e6": "reflexes",
        "t1": "blood count",
        "t2": "muscle enzymes",
        "t3": "urine drugs, urine?",
        "t4": "brain mri",
        **{f"t{i}": "spinal tap" for i in range(5, 10)},
        "t10": "spinal tap, blood sugar?",
    },
    "agentclinic-medqa-090": {
        "e1": "blood pressure",
        "e2": "pulse",
        "e3": "breathing rate",
        "e4": "temperature",
        "e5": "face, neurological?, cranial nerves?, appearance?",
        "e6": "speech, neurological?, mental state?",
        "e7": "arms, neurological?, strength?",
        "e8": "arms, neurological?, strength?",
        **{f"t{i}": "blood count" for i in range(1, 4)},
        "t4": "thyroid tests",
        "t5": "thyroid tests",
        "t6": "brain mri",
    },
    "agentclinic-medqa-093": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        "e5": "abdomen",
        "e6": "lymph nodes, neck?",
        "e7": "lungs, chest",
        "e8": "back of the eyes, eyes",
        "t1": "chest x-ray",
        "t2": "tb test",
    },
    "agentclinic-medqa-094": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        "e5": "chest, neck?, lungs?",
        "e6": "chest, lungs?, heart?",
        "e7": "chest, neck?, lungs?",
        "t1": "chest x-ray",
    },
    "agentclinic-medqa-096": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        "e5": "mental state, neurological?",
        "e6": "cranial nerves",
        "e7": "strength",
        "e8": "sensation",
        "e9": "coordination",
        "e10": "gait",
        **{f"t{i}": "blood count" for i in range(1, 4)},
        **{f"t{i}": "liver tests" for i in range(4, 8)},
        **{f"t{i}": "electrolytes, kidney function?" for i in range(8, 12)},
        "t12": "thyroid tests",
        "t13": "thyroid tests",
    },
    "agentclinic-medqa-098": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        "e5": "skin, arms?",
        "e6": "skin",
        "e7": "mouth, genitals?",
        "t1": "skin biopsy",
        "t2": "skin biopsy, autoantibodies?",
        "t3": "blood count",
        "t4": "autoantibodies",
    },
    "mediq-medqa-0001": {
        "e1": "weight",
        "e2": "appearance, weight?",
        "e3": "temperature, pulse, blood pressure",
        "e4": "mouth",
        "e5": "lungs, chest",
        "e6": "abdomen",
        "e7": "*",
    },
    "mediq-medqa-0043": {
        "e1": "temperature",
        "e2": "pulse",
        "e3": "blood pressure",
        "e4": "lymph nodes, neck, ears?, scalp?",
        "e5": "skin",
        "e6": "skin, arms?, legs?",
    },
    "mediq-medqa-0100": {"e1": "ears", "e2": "hearing"},
    "mediq-medqa-0147": {
        **dict(zip(("e1", "e2", "e3", "e4"), _V.split(", "), strict=True)),
        "e5": "nose",
    },
    "mediq-medqa-0150": {"e1": _NORMAL_VITALS, "e2": "lungs, chest"},
    "mediq-medqa-0217": {
        "e1": _NORMAL_VITALS,
        "e2": "*",
        **{f"t{i}": "blood count" for i in range(1, 6)},
        "t6": "hemoglobin types",
    },
    "mediq-medqa-0231": {"e1": _NORMAL_VITALS, "e2": "*"},
    "mediq-medqa-0275": {
        "e1": _NORMAL_VITALS,
        "e2": "ears",
        **{f"e{i}": "hearing, ears?" for i in range(3, 7)},
        "t1": "hearing",
    },
    "mediq-medqa-0451": {"e1": "thyroid, neck", "e2": "pelvic", "e3": "pelvic"},
    "mediq-medqa-0526": {"e1": "*"},
    "mediq-medqa-0686": {"e1": "lymph nodes, neck, ears?", "e2": "scalp, skin"},
    "mediq-medqa-0771": {
        "e1": "temperature",
        "e2": "blood pressure",
        "e3": "pulse",
        "e4": "breathing rate",
        "e5": "oxygen",
    },
    "mediq-medqa-0982": {
        "e1": "temperature",
        "e2": "pulse",
        "e3": "blood pressure",
        "e4": "lungs, chest",
        "e5": "abdomen",
        **{f"t{i}": "blood count" for i in range(1, 4)},
        **{f"t{i}": "electrolytes, kidney function?" for i in range(4, 7)},
        "t7": "liver tests",
        "t8": "pancreatic enzymes",
        "t9": "pancreatic enzymes",
        "t10": "ecg",
    },
    "mediq-medqa-1019": {
        "e1": "temperature",
        "e2": "pulse",
        "e3": "blood pressure",
        "e4": "lungs, chest",
        "e5": "heart, chest?",
    },
    "mediq-medqa-1128": {
        "e1": f"{_V}, weight",
        "e2": "eyes, mouth",
        "e3": "lymph nodes, neck?",
        "t1": "heart, lungs, abdomen, chest",
        "t2": "blood count, inflammation",
        **{f"t{i}": "autoantibodies" for i in range(3, 9)},
    },
    "mediq-medqa-1224": {
        "e1": "temperature",
        "e2": "blood pressure",
        "e3": "pulse",
        "e4": "breathing rate",
        "e5": "oxygen",
        "e6": "appearance, weight?",
        "t1": "ecg",
        "t2": "troponin",
    },
}


def _own(case: CaseRecord, request: str) -> tuple[set[str], set[str]]:
    """``(wanted, may)``: the findings ``WANTED`` ties to ``request`` itself, plain and ``?``."""
    wanted: set[str] = set()
    may: set[str] = set()
    for fact_id, spec in WANTED[case.id].items():
        for part in (p.strip() for p in spec.split(",")):
            if part == "*" and request in EXAM_REQUESTS:
                may.add(fact_id)
            elif part == request:
                wanted.add(fact_id)
            elif part == f"{request}?":
                may.add(fact_id)
    return wanted, may


def expected(case: CaseRecord, request: str) -> tuple[set[str], set[str]]:
    """``(wanted, allowed)`` fact ids for ``request`` on ``case`` (``allowed`` includes wanted)."""
    wanted, allowed = _own(case, request)
    for part in PARTS.get(request, ()):  # "vitals" wants the blood pressure ...
        part_wanted, part_may = _own(case, part)
        wanted |= part_wanted
        allowed |= part_may
    for other in MAY_ALSO.get(request, ()):  # ... and may bring what MAY_ALSO says
        allowed |= set().union(*_own(case, other))
    if request == "general":
        wanted |= {f.id for f in case.exam_findings}
        allowed |= {f.id for f in case.test_results if "examination" in f.text.lower()}
    return wanted, wanted | allowed


Select = Callable[[CaseRecord, str], list[str]]


def rule_selection(case: CaseRecord, text: str) -> list[str]:
    """The fact ids the rule-based reading of ``text`` selects."""
    return parse_turn(case, text).selected


def measure(cases: list[CaseRecord], select: Select = rule_selection) -> dict[str, Counter]:
    """Counts of outcomes per kind of request (see the module docstring)."""
    present: Counter = Counter()
    absent: Counter = Counter()
    for case in cases:
        for request, text in REQUESTS.items():
            wanted, allowed = expected(case, request)
            got = set(select(case, text))
            extra = got - allowed
            if wanted:
                if extra:
                    present["extra"] += 1
                elif wanted <= got:
                    present["exact"] += 1
                elif got & wanted:
                    present["partial"] += 1
                else:
                    present["none"] += 1
            else:
                absent["extra" if extra else "nothing"] += 1
    return {"present": present, "absent": absent}


def failures(cases: list[CaseRecord], select: Select = rule_selection) -> list[str]:
    """One line per request that returned something it should not have."""
    lines = []
    for case in cases:
        for request, text in REQUESTS.items():
            wanted, allowed = expected(case, request)
            got = set(select(case, text))
            if got - allowed:
                lines.append(
                    f"{case.id} {request!r}: extra {sorted(got - allowed)} "
                    f"missed {sorted(wanted - got)}"
                )
    return lines


def misses(cases: list[CaseRecord], select: Select = rule_selection) -> list[str]:
    """One line per request that missed some of what it asked for."""
    lines = []
    for case in cases:
        for request, text in REQUESTS.items():
            wanted, _allowed = expected(case, request)
            got = set(select(case, text))
            if wanted - got:
                lines.append(f"{case.id} {request!r}: missed {sorted(wanted - got)}")
    return lines


# ---------------------------------------------------------------- tests

BUNDLED = load_bundled_cases()
BY_ID = {c.id: c for c in BUNDLED}
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "cases"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason="no ../shared/data/cases beside the repository"
)


def test_the_table_covers_every_finding_of_every_bundled_case() -> None:
    assert set(WANTED) == set(BY_ID)
    for case in BUNDLED:
        ids = {f.id for f in [*case.exam_findings, *case.test_results]}
        assert set(WANTED[case.id]) == ids, case.id
        for spec in WANTED[case.id].values():
            names = {p.strip().rstrip("?") for p in spec.split(",")} - {"*"}
            assert names <= set(REQUESTS), names - set(REQUESTS)


# Requests that still bring something extra, and why (none of them is an examination dump).
KNOWN_EXTRAS = {
    # "hemoglobin" is a word of the blood count: a full blood count brings the electrophoresis.
    "mediq-medqa-0217 'blood count': extra ['t6'] missed []",
    # "Could you walk ... for me?" reads as a question; "walking" is in a history fact.
    "mediq-medqa-1224 'gait': extra ['f4'] missed []",
}


def test_requests_return_no_extra_findings_on_the_bundled_cases() -> None:
    selections: dict[tuple[str, str], list[str]] = {}

    def cached(case: CaseRecord, text: str) -> list[str]:
        key = (case.id, text)
        if key not in selections:
            selections[key] = rule_selection(case, text)
        return selections[key]

    assert set(failures(BUNDLED, cached)) == KNOWN_EXTRAS
    counts = measure(BUNDLED, cached)
    # The rest: most requests get everything they ask for; the misses are requests in words the
    # lexicon does not know ("count your breathing rate", "inflammation markers").
    assert counts["present"]["exact"] >= 300, counts
    assert counts["absent"]["extra"] <= 1, counts


@pytest.mark.parametrize(
    ("case_id", "turn", "wanted"),
    [
        ("agentclinic-medqa-066", "Let me listen to your heart.", ["e6"]),
        ("agentclinic-medqa-066", "I'll have a listen to your chest and lungs.", ["e7"]),
        ("agentclinic-medqa-093", "We'll get a chest X-ray.", ["t1"]),
        ("agentclinic-medqa-093", "I'll look at the back of your eyes.", ["e8"]),
        ("agentclinic-medqa-001", "Let me check your reflexes.", ["e7"]),
        ("agentclinic-medqa-017", "I'm going to examine your tummy.", ["e5", "e6", "e7", "e8"]),
        ("agentclinic-medqa-005", "We'll send off a urine sample.", ["t3", "t4", "t5"]),
        ("mediq-medqa-0100", "I'd like to look in your ears with the otoscope.", ["e1"]),
        ("agentclinic-medqa-040", "I'll have a listen to your chest.", ["e7"]),
        ("agentclinic-medqa-028", "Let me examine your knee.", []),  # a shoulder case
        ("agentclinic-medqa-022", "Let me examine your knee.", ["e5"]),
        ("agentclinic-medqa-022", "I'll check your blood sugar.", ["t6"]),
        ("agentclinic-medqa-084", "We'll check your blood sugar.", []),  # CSF glucose is the LP
        (
            "agentclinic-medqa-060",
            "I'll need to do an internal pelvic examination.",
            ["e9", "e10", "e11"],
        ),
        ("mediq-medqa-0217", "Let me take your blood pressure.", ["e1"]),  # "vital signs normal"
        ("mediq-medqa-1224", "We'll do an ECG.", ["t1"]),
    ],
)
def test_a_named_request_returns_that_item_only(case_id: str, turn: str, wanted: list) -> None:
    assert parse_turn(BY_ID[case_id], turn).selected == wanted


@pytest.mark.parametrize(
    "turn",
    [
        "I'd like to look at your eyes with the slit lamp.",
        "I'll do a slit-lamp examination.",
        "Let's do a slit lamp exam.",
        "Can I perform a slit lamp examination?",
        "I'd like to do a slit lamp examination of your eyes.",
    ],
)
def test_a_slit_lamp_request_never_returns_the_whole_examination(turn: str) -> None:
    case = BY_ID["agentclinic-medqa-093"]  # tuberculosis: vitals, liver, nodes, lungs, fundus
    p = parse_turn(case, turn)
    assert set(p.selected) <= {"e8"}, p.selected  # at most the eye finding, never e1..e7, t1, t2
    assert p.exam and p.requested
    if not p.selected:
        assert p.missing_exam  # reported as not in the record (a normal finding)


def test_a_general_examination_still_returns_the_general_exam() -> None:
    case = BY_ID["agentclinic-medqa-093"]
    for turn in ("Let me examine you.", "I'd like to do a physical examination.", "Full exam now."):
        assert parse_turn(case, turn).selected == [f.id for f in case.exam_findings], turn


async def test_the_patient_answers_a_slit_lamp_request_with_no_other_finding() -> None:
    case = BY_ID["agentclinic-medqa-093"]
    env = ConsultationEnv.create(case)
    turn = await env.respond("I'd like to look at your eyes with the slit lamp.")
    assert set(turn.revealed_fact_ids) <= {"e8"}
    turn = await env.respond("Let me listen to your heart.")
    assert turn.revealed_fact_ids == []  # no heart finding; "Heart rate" is not one


async def test_llm_mode_cannot_add_findings_the_request_did_not_name() -> None:
    case = BY_ID["agentclinic-medqa-093"]
    everything = json.dumps({"fact_ids": [f.id for f in case.all_facts()]})
    unit = LLMFactUnit(MockBackend(lambda messages, params: everything))
    slit = await unit.select(case, "I'll do a slit-lamp examination.")
    assert slit.fact_ids == [] and slit.missing_exam_items == ["slit-lamp examination"]
    lungs = await unit.select(case, "I'll listen to your lungs.")
    assert lungs.fact_ids == ["e7"]
    general = await unit.select(case, "Let me examine you.")
    assert general.fact_ids == [f.id for f in case.exam_findings]
    history = await unit.select(case, "Any cough or fever?")
    assert not set(history.fact_ids) & {f.id for f in case.exam_findings + case.test_results}


# ---------------------------------------------------------------- on cases imported from ../shared


@pytest.fixture(scope="module")
def imported() -> dict[str, CaseRecord]:
    """The AgentClinic cases of ../shared, by line ("line8")."""
    path = SHARED / "agentclinic_medqa107.jsonl"
    cases = {c.id: c for c in read_agentclinic(path).cases}
    lines = path.read_text(encoding="utf-8").splitlines()
    ids = {n: agentclinic_case_id(json.loads(line)) for n, line in enumerate(lines, start=1)}
    return {f"line{n}": cases[i] for n, i in ids.items() if i in cases}


def _label_ids(case: CaseRecord, *labels: str) -> list[str]:
    """Ids of the findings whose label (text before ':') starts with one of ``labels``."""
    found = [
        f.id
        for f in [*case.exam_findings, *case.test_results]
        if f.text.split(":", 1)[0].lower().startswith(tuple(x.lower() for x in labels))
    ]
    assert found, (case.id, labels)
    return found


@needs_shared
def test_slit_lamp_on_an_imported_case_returns_the_slit_lamp_finding_only(imported) -> None:
    case = imported["line8"]  # congenital rubella: a slit-lamp finding among seven exam findings
    wanted = _label_ids(case, "Slit lamp")
    for turn in (
        "I'd like to look at your eyes with the slit lamp.",
        "I'll do a slit-lamp examination.",
        "Let's do a slit lamp exam.",
    ):
        assert parse_turn(case, turn).selected == wanted, turn


@needs_shared
@pytest.mark.parametrize(
    ("line", "turn", "labels"),
    [
        (8, "Let me listen to your heart.", ("Murmur",)),
        (8, "We'll get an echocardiogram.", ("Echocardiogram",)),
        (8, "Let me take your temperature.", ("Temperature",)),
        # lungs: the respiratory findings, not the abdominal auscultation and percussion
        (25, "I'll listen to your lungs.", ("Respiratory examination",)),
        (25, "I'm going to press on your belly.", ("Abdominal examination",)),
        (10, "Let me listen to your chest.", ("Pulmonary examination",)),
        (39, "Let me listen to your heart.", ("A grade 2/6 holosystolic murmur",)),
    ],
)
def test_named_requests_on_imported_cases(imported, line: int, turn: str, labels: tuple) -> None:
    case = imported[f"line{line}"]
    assert parse_turn(case, turn).selected == _label_ids(case, *labels)


@needs_shared
@pytest.mark.parametrize("line", [3, 4, 14, 24])
def test_lungs_of_an_abdominal_case_are_not_its_abdominal_findings(imported, line: int) -> None:
    case = imported[f"line{line}"]  # abdominal examination by inspection ... palpation, no lungs
    p = parse_turn(case, "I'll listen to your lungs.")
    assert p.selected == [] and p.missing_exam == ["lungs"]


@needs_shared
def test_requests_on_all_imported_agentclinic_cases_never_return_the_whole_exam(
    imported,
) -> None:
    """A named exam never returns every exam finding (unless the case has just one or two)."""
    named = {k: v for k, v in EXAM_REQUESTS.items() if k not in ("general", "vitals")}
    dumps = []
    for case in imported.values():
        exam_ids = [f.id for f in case.exam_findings]
        if len(exam_ids) < 5:
            continue
        for request, text in named.items():
            got = parse_turn(case, text).selected
            if set(exam_ids) <= set(got):
                dumps.append(f"{case.id} {request}")
    assert dumps == []


if __name__ == "__main__":
    counts = measure(BUNDLED)
    for kind, counter in counts.items():
        print(kind, dict(counter), "of", sum(counter.values()))
    print("\n".join(failures(BUNDLED)))
    print("\n".join(misses(BUNDLED)))
