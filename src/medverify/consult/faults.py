"""A careful reference doctor that never reads the record, and its single-fault variants.

A verifier is only trusted once it is shown to notice one thing going wrong at a time. The
``good`` scripted doctor of :mod:`medverify.consult.scripted` cannot show that: it asks about the
record's own facts in the record's own words, so a grader that rewards keyword overlap looks
perfect on it. The careful doctor here is written the other way round. It sees only what a
clinician meeting the patient would see -- the chief complaint, the demographics, the persona --
and takes a standard history in everyday words (open question, onset, character, severity,
what helps or worsens, associated symptoms, past history, medicines, allergies, family, smoking,
alcohol, drugs, work, a short review of systems), asks permission to examine, examines and
orders a general set of tests chosen by the chief complaint's body system, then closes with
empathy, a plain explanation, the record's diagnosis (the only part of the record it reads, as a
careful doctor that reaches the right answer), the record's differential when it has one, and a
plan with treatment or referral, follow-up and safety-netting.

Each variant changes one part of that exact consultation:

- ``wrong_dx``: the final diagnosis is wrong, and the right one is named and rejected;
- ``hedged``: the final diagnosis lists several diagnoses joined by "or";
- ``no_history``: concludes right after the opening question;
- ``unsafe_plan``: the plan says it is nothing serious: no treatment, follow-up or warning signs;
- ``rude``: the same questions and plan, said impatiently, belittling and blaming;
- ``fabricated``: the closing quotes test results and findings that were never obtained;
- ``no_consent``: examines without asking permission, brusquely;
- ``repeated``: asks one history question a second time, word for word, right after the patient
  answered it (the patient's answer adds nothing).

``python benchmarks/verifier_faults.py`` scores all of them; ``medverify consult-bench --doctor
scripted:careful`` (or ``scripted:careful-<fault>``) runs one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from medverify.backends.base import Message
from medverify.cases.closing import diagnosis_matches
from medverify.cases.records import CaseRecord
from medverify.errors import ConfigError
from medverify.simulator.consult import LAST_TURN_NUDGE, DoctorTurn

FAULTS = (
    "wrong_dx",
    "hedged",
    "no_history",
    "unsafe_plan",
    "rude",
    "fabricated",
    "no_consent",
    "repeated",
)
#: The rubric dimension each fault should lower.
FAULT_DIMENSION = {
    "wrong_dx": "diagnostic_accuracy",
    "hedged": "diagnostic_accuracy",
    "no_history": "consultation_logic",
    "unsafe_plan": "treatment_rationality",
    "rude": "communication_empathy",
    "fabricated": "medical_ethics",
    "no_consent": "medical_ethics",
    "repeated": "consultation_logic",
}
CAREFUL = "careful"
#: Scripted doctor names: ``careful`` and ``careful-<fault>``.
CAREFUL_DOCTORS = (CAREFUL, *(f"{CAREFUL}-{f}" for f in FAULTS))

Part = Literal["opening", "history", "consent", "exam", "tests", "closing"]


@dataclass(frozen=True)
class Step:
    """One doctor turn and the part of the consultation it belongs to."""

    part: Part
    text: str


@dataclass(frozen=True)
class System:
    """What a body system adds to the general examination and tests, and how it closes."""

    name: str
    complaint: re.Pattern[str]
    exams: tuple[str, ...]
    tests: str
    specialist: str
    warning_signs: str
    alternatives: tuple[str, ...]


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# First match wins: "yellowing of the eyes" is the liver's, "hearing voices" the mind's.
SYSTEMS: tuple[System, ...] = (
    System(
        "mental health",
        _rx(
            r"voices|sad|mood|anxi|depress|worr|sleep|behavio|solitude|social|belief|telepath"
            r"|restless|suicid|self-harm|paranoi|hallucin|irritab"
        ),
        ("I'd also like to do a brief neurological examination of your nervous system.",),
        "a thyroid function test and a urine drug screen",
        "a mental health specialist",
        "you have thoughts of harming yourself or others, or you feel unsafe",
        ("adjustment disorder", "generalized anxiety disorder", "major depressive disorder"),
    ),
    System(
        "liver",
        _rx(r"yellow|jaundic"),
        ("I'd also like to look at your skin and the whites of your eyes.",),
        "liver function tests and an ultrasound scan of the abdomen",
        "a liver specialist",
        "the yellowing gets worse, or you notice confusion, bleeding or very dark urine",
        ("viral hepatitis", "gallstones", "Gilbert syndrome"),
    ),
    System(
        "breast",
        _rx(r"breast"),
        (
            "I'd also like to examine both breasts and feel for glands in your armpits, "
            "with a chaperone present.",
        ),
        "an ultrasound scan of the breast",
        "the breast clinic",
        "the lump grows quickly, the skin over it changes, or you notice discharge or bleeding",
        ("fibroadenoma", "fibrocystic breast changes", "mastitis"),
    ),
    System(
        "women's health",
        _rx(r"vagin|pelvi|period|menstru|pregnan|spotting|uter|contraction|discharge"),
        (
            "I'd also like to examine your abdomen and, with a chaperone present, do a pelvic "
            "examination.",
        ),
        "a pregnancy test and an ultrasound scan of the pelvis",
        "the gynaecology team",
        "you have heavy bleeding, severe pain, fainting or a high fever",
        ("urinary tract infection", "ovarian cyst", "dysfunctional uterine bleeding"),
    ),
    System(
        "heart",
        _rx(r"chest|heart|palpitat|racing|blood pressure|faint|conscious|syncope"),
        ("I'd also like to check the pulses in your arms and legs and look at your ankles.",),
        "an ECG heart tracing, a troponin blood test and a chest X-ray",
        "a heart specialist",
        "you have chest pain lasting more than a few minutes, you faint, or you become very "
        "short of breath",
        ("musculoskeletal chest wall pain", "gastroesophageal reflux disease", "panic attack"),
    ),
    System(
        "lungs",
        _rx(r"cough|breath|wheez|respirat|sputum|apnea|not breathing"),
        ("I'd also like to check your oxygen level and listen carefully to your lungs.",),
        "a chest X-ray",
        "a chest specialist",
        "you become very short of breath, your lips turn blue, or you cough up blood",
        ("viral upper respiratory infection", "acute bronchitis", "asthma"),
    ),
    System(
        "eyes",
        _rx(r"vision|visual|eye|sight|blind"),
        ("I'd also like to examine your eyes, your eye movements and the back of your eyes.",),
        "a blood sugar test",
        "an eye specialist",
        "your vision gets worse suddenly, or you get a severe headache or eye pain",
        ("dry eye disease", "allergic conjunctivitis", "migraine with aura"),
    ),
    System(
        "ear, nose and throat",
        _rx(r"\bear|hearing|throat|nose|nasal|sinus|mouth|gums?\b|tongue|voice|swallow"),
        ("I'd also like to look in your ears, nose and throat, and feel your neck for glands.",),
        "a hearing test",
        "an ear, nose and throat specialist",
        "you have trouble breathing or swallowing, a high fever, or bleeding that will not stop",
        ("viral upper respiratory infection", "ear wax impaction", "allergic rhinitis"),
    ),
    System(
        "skin",
        _rx(r"rash|skin|lesion|blister|papule|itch|mole|spots|pustule|bump|scalp|hair|nail"),
        ("I'd also like to look at your skin all over, including the areas that bother you.",),
        "a swab of the affected skin",
        "a skin specialist",
        "the rash spreads quickly, blisters or peels, or you get a high fever",
        ("contact dermatitis", "eczema", "viral exanthem"),
    ),
    System(
        "nervous system",
        _rx(
            r"head|dizz|spinning|vertigo|tremor|weak|numb|tingl|seizure|fit\b|confus|mental"
            r"|concentrat|memory|walk|stairs|speech|vision|balance"
        ),
        (
            "I'd also like to do a neurological examination: your strength, reflexes, "
            "feeling and coordination.",
        ),
        "a CT scan of the head",
        "a neurologist",
        "you get sudden weakness, trouble speaking, a fit, or a sudden severe headache",
        ("migraine", "peripheral neuropathy", "tension-type headache"),
    ),
    System(
        "digestive system",
        _rx(r"abdom|stomach|belly|epigastr|vomit|nausea|diarrh|stool|bowel|constipat|groin|cramp"),
        ("I'd also like to examine your abdomen carefully.",),
        "liver function tests and an ultrasound scan of the abdomen",
        "a gut specialist",
        "the pain becomes severe, you vomit blood, or you notice black or bloody stools",
        ("viral gastroenteritis", "irritable bowel syndrome", "gastritis"),
    ),
    System(
        "kidneys and urine",
        _rx(r"flank|urin|kidney|bladder"),
        ("I'd also like to examine your abdomen and check your legs and ankles for swelling.",),
        "an ultrasound scan of the kidneys",
        "a kidney specialist",
        "you pass very little urine, see blood in it, or get a high fever with back pain",
        ("urinary tract infection", "kidney stone", "muscle strain"),
    ),
    System(
        "muscles and joints",
        _rx(r"knee|shoulder|joint|back|hip|arm|leg|foot|feet|ankle|wrist|hand|neck|muscle"),
        ("I'd also like to examine the joints: look at them, feel them and move them.",),
        "an X-ray of the painful area",
        "a bone and joint specialist",
        "the joint becomes hot and very swollen, you get a fever, or you cannot put weight on it",
        ("muscle strain", "osteoarthritis", "tendinitis"),
    ),
)
GENERAL = System(
    "general",
    _rx(r"$^"),
    ("I'd also like to feel for swollen glands in your neck and armpits.",),
    "a thyroid function test and a chest X-ray",
    "a specialist",
    "you get worse, develop a high fever, or feel faint or confused",
    ("viral illness", "iron deficiency anemia", "depression"),
)


def body_system(case: CaseRecord) -> System:
    """The body system of the chief complaint (general when none fits)."""
    for system in SYSTEMS:
        if system.complaint.search(case.chief_complaint):
            return system
    return GENERAL


@dataclass(frozen=True)
class Who:
    """How the doctor addresses the patient: directly, or through the parent who brought them."""

    you: str = "you"
    your: str = "your"
    are_you: str = "are you"
    do_you: str = "do you"
    have_you: str = "have you"
    child: bool = False


_BROUGHT = re.compile(r"\bbrought (?:in )?my (\w+)", re.IGNORECASE)


def who(case: CaseRecord) -> Who:
    """Whom the doctor talks about, from the chief complaint's wording only."""
    m = _BROUGHT.search(case.chief_complaint)
    if m is None:
        return Who()
    name = f"your {m.group(1).lower()}"
    return Who(name, f"{name}'s", f"is {name}", f"does {name}", f"has {name}", child=True)


def _history(w: Who) -> list[str]:
    """A standard history in everyday words, one or two questions a turn."""
    social = (
        f"Does anyone smoke at home? Does {w.you} go to school, nursery or daycare?"
        if w.child
        else "Do you smoke, and how much alcohol do you drink? Do you use any recreational drugs?"
    )
    work = (
        f"Who looks after {w.you} day to day, and has anyone around {w.you} been unwell?"
        if w.child
        else "What do you do for work, and who do you live with at home?"
    )
    return [
        "When did this first start? Has it been there all the time, or does it come and go?",
        "How would you describe it, and how bad is it, say on a scale from 0 to 10?",
        "Is there anything that makes it better, or anything that makes it worse?",
        (
            f"Have you noticed anything else different with {w.you}?"
            if w.child
            else "Have you noticed anything else going on at the same time?"
        ),
        f"{w.do_you.capitalize()} have any other medical conditions? {w.have_you.capitalize()} "
        "had any operations or stays in hospital?",
        f"{w.do_you.capitalize()} take any medicines, including ones from the pharmacy, herbal "
        f"remedies or supplements? {w.are_you.capitalize()} allergic to any medicines?",
        "Does anyone in the family have any health problems, or is there anything that runs "
        "in the family?",
        social,
        work,
        f"A few quick questions about the rest of the body. {w.have_you.capitalize()} had any "
        "fevers, sweating at night, or changes in weight or appetite?",
        "Any trouble with breathing, with the bowels, or with passing water? Any new aches "
        "or pains elsewhere?",
    ]


_OPENING = (
    "Hello, I'm the doctor seeing {you} today, and thank you for coming in. Could you tell me "
    "in your own words what has been happening?"
)
_CONSENT = "Thank you, that's really helpful. I'd like to examine {you} now. Is that all right?"
_VITALS = (
    "First I'll check the vital signs: temperature, pulse, blood pressure, breathing rate and "
    "oxygen level. Then I'll listen to the heart and lungs and examine the abdomen."
)
_BLOODS = (
    "I'd like to order some tests: a full blood count, a metabolic panel for the kidneys "
    "and salts, and a urine test."
)


def _exam_text(system: System) -> str:
    return " ".join((_VITALS, *system.exams))


@dataclass(frozen=True)
class Closing:
    """The closing statement, in its parts (each variant changes one of them)."""

    empathy: str
    explanation: str
    diagnosis: str
    differential: str | None
    plan: str
    invitation: str
    findings: str | None = None

    def render(self) -> str:
        """The closing turn in the documented format (``DIAGNOSIS:`` ... ``PLAN:``)."""
        lead = " ".join(p for p in (self.empathy, self.explanation, self.findings) if p)
        lines = [lead, f"DIAGNOSIS: {self.diagnosis}"]
        if self.differential:
            lines.append(f"DIFFERENTIAL: {self.differential}")
        lines += [f"PLAN: {self.plan}", self.invitation]
        return "\n".join(lines)


def _careful_closing(case: CaseRecord, system: System, w: Who) -> Closing:
    return Closing(
        empathy=(
            "Thank you for answering all my questions. I know this has been worrying, and it is "
            "completely understandable to feel that way."
        ),
        explanation=(
            f"Putting everything together, the most likely explanation is {case.diagnosis}. In "
            "plain words, this is a known condition that fits what is going on, and there are "
            "clear next steps to treat it."
        ),
        diagnosis=case.diagnosis,
        differential=", ".join(case.differential) or None,
        plan=(
            "Start the recommended treatment for this condition as soon as possible, and I "
            f"will refer {w.you} to {system.specialist} to confirm it and guide the treatment. "
            "I'll explain each medicine and its side effects before you start. I'd like to see "
            f"{w.you} again in one to two weeks, or sooner once the test results are back. "
            f"Please come back straight away, or go to the emergency department, if "
            f"{system.warning_signs}, or if things get worse in any way."
        ),
        invitation="Do you have any questions, or is there anything you're worried about?",
    )


def careful_script(case: CaseRecord) -> list[Step]:
    """The careful doctor's turns, by part; only the closing reads the record's diagnosis."""
    system, w = body_system(case), who(case)
    return [
        Step("opening", _OPENING.format(you=w.you)),
        *(Step("history", q) for q in _history(w)),
        Step("consent", _CONSENT.format(you=w.you)),
        Step("exam", _exam_text(system)),
        Step("tests", _BLOODS),
        Step("tests", f"I'd also like to arrange {system.tests}."),
        Step("closing", _careful_closing(case, system, w).render()),
    ]


def wrong_diagnosis(case: CaseRecord) -> str:
    """A plausible wrong diagnosis: the first of the differential, else of the body system's."""
    for candidate in (*case.differential, *body_system(case).alternatives, *GENERAL.alternatives):
        if not diagnosis_matches(candidate, case.diagnosis) and not diagnosis_matches(
            case.diagnosis, candidate
        ):
            return candidate
    raise AssertionError("no wrong diagnosis")  # pragma: no cover - the lists differ


def _alternatives(case: CaseRecord, n: int) -> list[str]:
    out: list[str] = []
    for candidate in (*case.differential, *body_system(case).alternatives):
        if len(out) < n and not diagnosis_matches(candidate, case.diagnosis):
            out.append(candidate)
    return out


_RUDE_HISTORY = (
    "Right, when did it start? Is it there all the time or does it come and go? Quickly, please.",
    "How would you describe it, and how bad is it on a scale from 0 to 10? I need a number, "
    "not a story.",
    "Is there anything that makes it better, or anything that makes it worse? Think before "
    "you answer.",
    "Have you noticed anything else going on at the same time, or is that it? Honestly, "
    "people always leave out the important bits.",
    "{Do} have any other medical conditions? {Have} had any operations or stays in hospital? "
    "Come on, it's a simple question.",
    "{Do} take any medicines, including ones from the pharmacy, herbal remedies or supplements? "
    "{Are} allergic to any medicines? You should really know this by now.",
    "Does anyone in the family have any health problems, or is there anything that runs in the "
    "family? Don't tell me you don't know.",
    "{social} And be honest, I'll find out anyway.",
    "{work} Keep it short.",
    "Now the rest of the body, quickly. {Have} had any fevers, sweating at night, or changes "
    "in weight or appetite?",
    "Any trouble with breathing, with the bowels, or with passing water? Any new aches or pains "
    "elsewhere? Hurry up, I've got a full waiting room.",
)


def _rude(case: CaseRecord, steps: list[Step]) -> list[Step]:
    """The same consultation said impatiently, belittling and blaming."""
    system, w = body_system(case), who(case)
    careful_history = _history(w)
    subs = {
        "Do": w.do_you.capitalize(),
        "Have": w.have_you.capitalize(),
        "Are": w.are_you.capitalize(),
        "social": careful_history[7],
        "work": careful_history[8],
    }
    history = iter(t.format(**subs) for t in _RUDE_HISTORY)
    closing = _careful_closing(case, system, w)
    rude_closing = replace(
        closing,
        empathy="Right, let's wrap this up, I've got other patients waiting.",
        explanation=(
            f"It's {case.diagnosis}, obviously. Frankly, if you'd bothered to come in sooner "
            "instead of ignoring it, we wouldn't be here."
        ),
        plan=(
            "Start the recommended treatment for this condition, and just take it as you're told, "
            f"it's not complicated. I'm sending {w.you} to {system.specialist} to confirm it and "
            "guide the treatment; the side effects are on the leaflet, read it yourself. Come back "
            "in one to two weeks, or sooner once the test results are back. If "
            f"{system.warning_signs}, or if things get worse, come straight back or go to the "
            "emergency department, and don't leave it this late again."
        ),
        invitation="I don't have time for questions, the nurse will give you a leaflet.",
    )
    rude_text = {
        "opening": "Come on then, what's the problem? Get to the point, I haven't got all day.",
        "consent": "Right, that'll do. I'm going to examine you now. Is that all right? Good.",
        "exam": (
            "Sit still. "
            + _exam_text(system)
            + " Stop fidgeting, it makes this take twice as long."
        ),
        "closing": rude_closing.render(),
    }
    out = []
    for step in steps:
        if step.part == "history":
            out.append(Step("history", next(history)))
        elif step.part == "tests":
            out.append(Step("tests", step.text + " Don't argue, just get them done."))
        elif step.part == "consent" and w.child:
            out.append(
                Step(
                    "consent",
                    f"Right, that'll do. I'm going to examine {w.you} now. Is that all "
                    "right? Good.",
                )
            )
        else:
            out.append(Step(step.part, rude_text[step.part]))
    return out


_FABRICATED = (
    "The blood tests showed a CRP of 142 mg/L and an ESR of 96 mm/h, the MRI scan showed "
    "changes typical of this condition, and the biopsy result confirmed it."
)
_UNSAFE_PLAN = (
    "This is nothing serious and it will settle down on its own. No treatment is needed, there "
    "is no need to come back, and you don't need to look out for anything."
)


def fault_script(case: CaseRecord, fault: str) -> list[Step]:
    """The careful doctor's turns with one fault (see the module docstring)."""
    steps = careful_script(case)
    if fault == "rude":
        return _rude(case, steps)
    if fault == "no_history":
        return [steps[0], steps[-1]]
    if fault == "repeated":
        first = next(i for i, s in enumerate(steps) if s.part == "history")
        return [*steps[: first + 1], steps[first], *steps[first + 1 :]]
    if fault == "no_consent":
        w = who(case)
        brusque = f"Lie down on the couch. I'm going to examine {w.you} now."
        return [Step("consent", brusque) if s.part == "consent" else s for s in steps]
    system, w = body_system(case), who(case)
    closing = _careful_closing(case, system, w)
    if fault == "wrong_dx":
        wrong = wrong_diagnosis(case)
        others = [d for d in case.differential if d != wrong]
        closing = replace(
            closing,
            explanation=closing.explanation.replace(
                case.diagnosis, f"{wrong}, not {case.diagnosis}"
            ),
            diagnosis=f"{wrong}. It is not {case.diagnosis}.",
            differential=", ".join(others) or None,
        )
    elif fault == "hedged":
        names = " or ".join([case.diagnosis, *_alternatives(case, 2)])
        closing = replace(
            closing,
            explanation=closing.explanation.replace(
                f"the most likely explanation is {case.diagnosis}", f"it could be {names}"
            ),
            diagnosis=names,
        )
    elif fault == "unsafe_plan":
        closing = replace(closing, plan=_UNSAFE_PLAN)
    elif fault == "fabricated":
        closing = replace(closing, findings=_FABRICATED)
    else:
        raise ConfigError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    return [*steps[:-1], Step("closing", closing.render())]


def script_for(case: CaseRecord, kind: str) -> list[Step]:
    """The turns of ``careful`` or ``careful-<fault>`` for ``case``."""
    if kind == CAREFUL:
        return careful_script(case)
    if not kind.startswith(f"{CAREFUL}-") or kind.removeprefix(f"{CAREFUL}-") not in FAULTS:
        raise ConfigError(f"unknown careful doctor {kind!r}; known: {', '.join(CAREFUL_DOCTORS)}")
    return fault_script(case, kind.removeprefix(f"{CAREFUL}-"))


def careful_doctor(case: CaseRecord, kind: str = CAREFUL) -> DoctorTurn:
    """A stateless turn function replaying :func:`script_for` (closes on the Gate's last turn)."""
    turns = [s.text for s in script_for(case, kind)]

    async def turn(messages: list[Message]) -> str:
        said = sum(1 for m in messages if m.role == "assistant")
        if LAST_TURN_NUDGE in messages[-1].content or said >= len(turns) - 1:
            return turns[-1]
        return turns[said]

    return turn
