"""Offline detectors for a consultation's judgement items: what can be read off the words.

Communication, ethics and plan quality are judgement: an LLM judge decides them when one is
configured. Offline there is no judge, and a classifier that scores every doctor 1.00 on
communication measures nothing. Some faults and some good habits are still plain in the
doctor's own words and in the turn order, and the detectors here read exactly those:

* belittling or blaming language, and acknowledgement of the patient's feelings;
* asking permission before the first examination (turn order);
* checking understanding, inviting questions; honesty about uncertainty;
* results stated that were never obtained (a claimed test or exam result whose test or
  findings the simulator never revealed);
* sharing the patient's information with a third party without asking;
* medical terms left unexplained for a patient of low health literacy;
* a plan: treatment or referral, follow-up, safety-netting, urgency; reassurance with no plan.

Each detector reads negation ("I'm not saying you're overreacting" is not belittling) and returns
a verdict that cites the turn it relied on, or ``None`` when it cannot decide: the item is then
reported as *not measured offline*, never given a constant.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from medverify.grading.evidence import ConsultationEvidence, DetectorCheck, content_stems
from medverify.grading.records import Grade
from medverify.text import lexicon as lx
from medverify.text.lexicon import LAY_TERMS
from medverify.text.matching import contains_term, stem

_NEGATORS = re.compile(
    r"\b(?:not|never|no|don't|do not|doesn't|does not|didn't|isn't|aren't|wasn't|won't|"
    r"wouldn't|shouldn't|can't|cannot|nobody|no one)\b",
    re.IGNORECASE,
)


def _affirmed(sentence: str, match: re.Match[str]) -> bool:
    """Whether a match is asserted, not negated within the few words before it."""
    before = sentence[: match.start()].split()[-4:]
    return not _NEGATORS.search(" ".join(before))


def _says(pattern: re.Pattern[str], text: str) -> bool:
    """Whether ``text`` asserts the pattern somewhere ("no follow-up is needed" does not)."""
    for sentence in re.split(r"(?<=[.!?;])\s+|\n", text):
        for match in pattern.finditer(sentence):
            if _affirmed(sentence, match):
                return True
    return False


def _find(
    ev: ConsultationEvidence,
    pattern: re.Pattern[str],
    end: int | None = None,
    keep: Callable[[int, str], bool] | None = None,
) -> tuple[int, str] | None:
    """The first doctor sentence (turn, text) asserting the pattern, and passing ``keep``."""
    for turn, sentence in ev.doctor_sentences(end):
        match = pattern.search(sentence)
        if (
            match is not None
            and _affirmed(sentence, match)
            and (keep is None or keep(turn, sentence))
        ):
            return turn, sentence
    return None


def _cite(found: tuple[int, str]) -> str:
    return f"turn {found[0]}: {found[1][:90]!r}"


def _yes_if(found: tuple[int, str] | None, missing: str) -> Grade:
    if found is not None:
        return Grade(met=True, explanation=f"detector: {_cite(found)}")
    return Grade(met=False, explanation=f"detector: {missing}")


_BELITTLING = re.compile(
    r"\b(?:overreact\w*|(?:so|being) dramatic|drama queen|all in your head|(?:stop|quit|keep) "
    r"(?:complaining|whining|moaning)|whin(?:e|ing)|waste of (?:my|our) time|wasting "
    r"(?:my|our) time|(?:i )?(?:don't|do not) have (?:all day|time for)|hurry up|get to the point|"
    r"just answer|answer the question|(?:your|you're) own fault|you should have known|"
    r"what did you expect|stupid|ridiculous|silly|pathetic|nonsense|obviously you|"
    r"as i (?:already )?(?:said|told you)|how many times|calm down|pull yourself together|"
    r"man up|toughen up|grow up|not my problem|figure it out yourself|google|"
    r"(?:stop|quit) (?:interrupting|asking))",
    re.IGNORECASE,
)
_EMPATHY = re.compile(
    r"\b(?:i (?:can )?(?:understand|imagine|see (?:why|how|that))|(?:that|this|it) (?:sounds|must "
    r"(?:be|have been)) (?:\w+ )?(?:hard|difficult|frightening|scary|worrying|stressful|"
    r"distressing|upsetting|exhausting|tough|uncomfortable|painful)|i'm (?:so |very )?sorry|"
    r"i am (?:so |very )?sorry|(?:it's|it is) (?:completely |very )?understandable|"
    r"(?:thank you|thanks) for (?:telling|sharing|coming|explaining)|you did the right thing|"
    r"(?:we|i) will (?:work|get through|figure) (?:this|it) (?:out )?together)",
    re.IGNORECASE,
)
#: Sympathy for something in particular ("I'm sorry for your loss", "sorry about the pain"):
#: it acknowledges a feeling only when the patient spoke of that thing.
_SORRY_FOR = re.compile(
    r"\bsorry (?:for|about|to hear (?:about|of)) (?:your|the|this|all (?:the|your)) "
    r"((?:[\w'-]+ ){0,2}[\w'-]+)",
    re.IGNORECASE,
)
#: Sympathy for the patient's situation as a whole fits whatever they came with.
_ANY_TROUBLE = frozenset(
    {
        "situation",
        "trouble",
        "troubles",
        "worry",
        "worries",
        "concern",
        "concerns",
        "symptom",
        "symptoms",
        "difficulty",
        "difficulties",
        "experience",
        "condition",
        "problem",
        "problems",
        "discomfort",
        "suffering",
        "distress",
        "struggle",
        "struggles",
        "ordeal",
        "visit",
    }
)
#: What a patient says of a bereavement; "sorry for your loss" fits only after one.
_LOSS_WORDS = re.compile(
    r"\b(?:lost|losing|loss|died|dead|death|passed away|passing|bereave\w*|grie\w+|funeral|"
    r"miscarr\w+|widow\w*)\b",
    re.IGNORECASE,
)
_UNDERSTANDING = re.compile(
    r"\b(?:(?:any|have you got any|do you have any) (?:other )?questions|does (?:that|this|all "
    r"that) make sense|is (?:that|this|everything) clear|(?:can|could) you tell me (?:back )?"
    r"(?:what|how) you understand|what (?:questions|concerns) do you have|"
    r"let me know if (?:you have|anything)|(?:do you|did you) understand|"
    r"is there anything (?:you'd like|you would like|else you want) (?:me )?to (?:ask|know|"
    r"explain|go over))",
    re.IGNORECASE,
)
_PERMISSION = re.compile(
    r"\b(?:is it (?:all right|alright|ok|okay) (?:if|for me to|with you)|may i|do you mind if|"
    r"would (?:it be|you be) (?:all right|alright|ok|okay|comfortable)|would you mind|"
    r"with your (?:permission|consent)|can i (?:examine|take a look|have a look|check|listen|"
    r"feel|look)|(?:are you|is that) (?:ok|okay|comfortable|all right) (?:with|if)|"
    r"do i have your (?:permission|consent)|is that (?:all right|alright|ok|okay)\b|"
    r"if (?:that's|that is) (?:all right|alright|ok|okay)|are you happy (?:for me to|if i))",
    re.IGNORECASE,
)
_UNCERTAINTY = re.compile(
    r"\b(?:(?:not|isn't|aren't) (?:yet |entirely |completely |100% )?(?:sure|certain|"
    r"confirmed)|can(?:no|')t (?:yet )?be (?:sure|certain)|to (?:confirm|rule out|be sure)|"
    r"(?:will|would|need to|needs to|should) (?:help )?confirm|until (?:the|we get the|your) "
    r"(?:results|tests)|most likely|probably|i suspect|it could (?:also )?be|other possibilit|"
    r"(?:further|more) tests?|once (?:the|we have the) results)",
    re.IGNORECASE,
)
_RESULT_NOUN = (
    r"(?:blood (?:tests?|work|count|results?)|labs?|lab (?:tests?|results?)|x-?rays?|"
    r"(?:ct|cat|mri|pet) scans?|scans?|ultrasound|ecg|ekg|electrocardiogram|urine (?:tests?|"
    r"sample)|urinalysis|cultures?|biopsy|swab|results?|levels?|counts?|antibod\w+|"
    r"(?:white|red) (?:blood )?cells?|haemoglobin|hemoglobin|platelets?|troponin|glucose|"
    r"sodium|potassium|creatinine|cholesterol|echo(?:cardiogram)?|endoscopy|emg|eeg|"
    r"spinal tap|lumbar puncture|exam(?:ination)?|examination findings|findings)"
)
_CLAIMED_RESULT = re.compile(
    rf"\b(?:your|the|my|these|those|both) (?:\w+ )?{_RESULT_NOUN} (?:\w+ )?"
    r"(?:shows?|showed|came back|revealed?|reveals|confirm(?:s|ed)?|demonstrated?|indicated?|"
    r"were|was|are|is) (?:\w+ ){0,3}?(?:positive|negative|elevated|raised|high|low|abnormal|"
    r"normal|consistent|\d|clear|significant|markedly|mild|severe|an?\b)",
    re.IGNORECASE,
)
_VALUE = re.compile(
    r"\b\d+(?:\.\d+)?\s*(?:mg/dl|mmol/l|g/dl|g/l|mmhg|bpm|/mm3|iu/l|u/l|x\s?10|%|"
    r"mcg|ng/ml|meq/l)",
    re.IGNORECASE,
)
_THIRD_PARTY = re.compile(
    r"\b(?:i(?:'ll| will| am going to|'m going to| have)|we(?:'ll| will)) (?:also )?"
    r"(?:tell|inform|let|call|contact|notify|email|send|share|write to|report to|update|phone)"
    r"\b[^.?!]{0,40}\b(?:your|the) (?:employer|boss|manager|work|school|teacher|wife|husband|"
    r"partner|family|parents?|mother|father|mum|mom|dad|children|son|daughter|insurer|"
    r"insurance|landlord|friends?|coach|colleagues?|relatives?)",
    re.IGNORECASE,
)
_ASKS_FIRST = re.compile(
    r"\b(?:would you like me to|do you want me to|with your (?:permission|consent|agreement)|"
    r"if you (?:agree|want|like|are happy|consent)|is it (?:ok|okay|all right) if i)",
    re.IGNORECASE,
)
_TREATMENT = re.compile(
    r"\b(?:start|prescribe|give|take|treat|treatment|therapy|medication|medicine|tablets?|"
    r"antibiotics?|refer|referral|specialist|admit|admission|hospital|surgery|operation|"
    r"physiotherapy|physical therapy|injection|drops|cream|inhaler|stop(?:ping)? (?:the|your)|"
    r"manage|management|plan)\b",
    re.IGNORECASE,
)
_FOLLOW_UP = re.compile(
    r"\b(?:follow[- ]?up|come back|see you (?:again|in|next)|review (?:you|your|in)|"
    r"appointment|check in|recheck|in (?:\d+|one|two|three|a few|a couple of) (?:days?|weeks?|"
    r"months?)|next week|monitor)\b",
    re.IGNORECASE,
)
_SAFETY_NET = re.compile(
    r"\b(?:(?:if|should) (?:you|it|the|your|things|symptoms?|anything)\b[^.?!]{0,80}\b(?:worse|"
    r"worsen\w*|develop|notice|get|gets|become|becomes|start|starts|return|returns|spread)"
    r"\b[^.?!]{0,80}\b(?:come (?:straight |right )?back|return|seek|call|contact|"
    r"go (?:to|straight)|emergency|a&e|"
    r"er\b|911|999|urgent|immediately|right away|straight away)|(?:come (?:straight |right )?back|"
    r"return|seek help|"
    r"call (?:us|me|an ambulance)|go to (?:the )?(?:emergency|hospital|a&e|er))\b[^.?!]{0,40}"
    r"\bif (?:you|it|the|your|things|symptoms?|anything)\b|warning signs?|red flags?|"
    r"seek (?:urgent|immediate|emergency) (?:care|help|attention))",
    re.IGNORECASE,
)
_REASSURE = re.compile(
    r"\b(?:nothing (?:serious|to worry about|major|much|wrong)|(?:it's|it is|this is) (?:just|"
    r"only|probably just|nothing)|no need to (?:worry|come back|do anything|treat)|"
    r"(?:will|should) (?:go away|settle|clear up|pass) (?:on its own|by itself)|"
    r"don't (?:worry|bother)|stop worrying|just (?:stress|anxiety|in your head)|"
    r"you're fine|you are fine|perfectly fine)",
    re.IGNORECASE,
)
_URGENT = re.compile(
    r"\b(?:emergency|hospital|admit\w*|ambulance|a&e|er\b|immediately|urgent\w*|right away|"
    r"straight away|intensive care|icu|surgery (?:today|now)|now\b)",
    re.IGNORECASE,
)
_ROUTINE = re.compile(
    r"\b(?:go home|home and rest|rest at home|see how (?:it|you) go|routine|in (?:a|one|two|"
    r"\d+) weeks?|nothing (?:serious|to worry))",
    re.IGNORECASE,
)
_DRUGS = re.compile(
    r"\b(?:allerg\w*|medications?|medicines?|pills|tablets|prescriptions?|drugs? (?:do|are|have)|"
    r"taking any)\b",
    re.IGNORECASE,
)
_OPEN = re.compile(
    r"^\s*(?:\w+[,.!]\s*)*(?:what|how|tell me|can you tell me|could you tell me|describe|"
    r"talk me through|walk me through)\b",
    re.IGNORECASE,
)
_ONSET = re.compile(
    r"\b(?:when did|when was|how long|since when|start(?:ed)?|began|begin|first (?:notice|"
    r"appear)|come on)\b",
    re.IGNORECASE,
)
_EXPLAIN = re.compile(
    r"\b(?:which means|that means|this means|meaning|in other words|in simple terms|"
    r"is when|is a (?:condition|problem|kind|type)|is an? \w+ (?:condition|problem)|"
    r"basically|what this means)\b|\(",
    re.IGNORECASE,
)


def _closing_text(ev: ConsultationEvidence) -> str | None:
    turn = ev.closing_turn
    return ev.transcript.turns[turn].text if turn is not None else None


def _plan_text(ev: ConsultationEvidence) -> str:
    closing = _closing_text(ev) or ""
    return f"{ev.closing.plan or ''}\n{closing}"


def belittles(ev: ConsultationEvidence) -> Grade:
    """Belittling, blaming or brushing off the patient, anywhere in the consultation."""
    return _yes_if(_find(ev, _BELITTLING), "no belittling or blaming words")


def _patient_said_before(ev: ConsultationEvidence, turn: int) -> str:
    return " ".join(t.text for t in ev.transcript.turns[:turn] if t.role == "patient")


def _fits(ev: ConsultationEvidence, turn: int, sentence: str) -> bool:
    """Whether sympathy for something in particular answers what the patient said of it.

    "I'm sorry for your loss" to a patient who lost no one, or "sorry for your pain" to one
    who is dizzy, is a formula, not an acknowledgement: a doctor trained against the detector
    learned to say it every turn (session 12's transcripts), so only sympathy that fits counts.
    """
    said = _patient_said_before(ev, turn)
    for match in _SORRY_FOR.finditer(sentence):
        words = match.group(1).lower().split()  # up to three words: "loss", "chest pain"
        if {"loss", "losses"} & set(words):
            if _LOSS_WORDS.search(said) is None:
                return False
        elif not _ANY_TROUBLE & set(words) and not content_stems(match.group(1)) & content_stems(
            said
        ):
            return False
    return True


def empathy(ev: ConsultationEvidence) -> Grade:
    """An acknowledgement of the patient's feelings, from a doctor who never belittles them.

    Sympathy for something the patient never spoke of ("sorry for your loss" to a dizzy
    patient) does not count, nor does an offer of help that acknowledges nothing
    ("I'm here to help").
    """
    rude = _find(ev, _BELITTLING)
    if rude is not None:
        return Grade(met=False, explanation=f"detector: belittles at {_cite(rude)}")
    fitting = _find(ev, _EMPATHY, keep=lambda turn, sentence: _fits(ev, turn, sentence))
    if fitting is not None:
        return Grade(met=True, explanation=f"detector: {_cite(fitting)}")
    unfit = _find(ev, _EMPATHY)
    if unfit is not None:
        return Grade(
            met=False,
            explanation=f"detector: sympathy for what the patient never said, {_cite(unfit)}",
        )
    return Grade(met=False, explanation="detector: no acknowledgement of the patient's feelings")


def checks_understanding(ev: ConsultationEvidence) -> Grade:
    """Invites questions or checks that the explanation was understood."""
    return _yes_if(_find(ev, _UNDERSTANDING), "never invites questions or checks understanding")


def _first_exam_turn(ev: ConsultationEvidence) -> int | None:
    exams = {f.id for f in ev.case.exam_findings}
    turns = [t for f, t in ev.first_revealed.items() if f in exams]
    turns += [i for i, turn in enumerate(ev.transcript.turns) if turn.requested and i not in turns]
    return min(turns) if turns else None


def consent(ev: ConsultationEvidence) -> Grade | None:
    """Permission asked at or before the doctor turn that led to the first examination."""
    first = _first_exam_turn(ev)
    if first is None:
        return Grade(met=False, explanation="detector: the patient was never examined")
    found = _find(ev, _PERMISSION, end=first)
    if found is not None:
        return Grade(met=True, explanation=f"detector: asks first at {_cite(found)}")
    return Grade(
        met=False, explanation=f"detector: examined (turn {first}) without asking permission"
    )


def uncertainty(ev: ConsultationEvidence) -> Grade:
    """Says what is not yet known or how the diagnosis will be confirmed."""
    return _yes_if(_find(ev, _UNCERTAINTY), "states no uncertainty and no way to confirm")


_GENERIC_RESULT_WORDS = frozenset(
    stem(w)
    for w in [
        "blood",
        "test",
        "tests",
        "result",
        "results",
        "scan",
        "scans",
        "show",
        "showed",
        "shows",
        "level",
        "levels",
        "count",
        "counts",
        "exam",
        "examination",
        "finding",
        "findings",
        "normal",
        "came",
        "back",
        "your",
        "the",
        "found",
        "revealed",
    ]
)


def _named_items(sentence: str) -> list[lx.Item]:
    """The specific examinations and tests a sentence names ("blood tests" alone is too vague)."""
    return [
        it
        for it in (*lx.TEST_ITEMS, *lx.EXAM_ITEMS)
        if it.name != "blood tests" and any(contains_term(sentence, a) for a in it.ask)
    ]


def _supported(sentence: str, ev: ConsultationEvidence) -> bool:
    """Whether every result a sentence states was obtained in the consultation.

    Each specific test or examination it names must have a revealed finding, and each measured
    value it quotes must appear in one; a sentence naming neither must share at least two
    specific words with a revealed finding.
    """
    obtained = [ev.case.fact(f) for f in ev.first_revealed if f in ev.findings]
    texts = [f"{f.text} {' '.join(f.keywords)}" for f in obtained]
    named = _named_items(sentence)
    values = [re.match(r"\d+(?:\.\d+)?", m.group(0)).group(0) for m in _VALUE.finditer(sentence)]
    if named or values:
        for it in named:
            if not any(contains_term(text, m) for text in texts for m in it.match):
                return False
        return all(any(v in text for text in texts) for v in values)
    words = content_stems(sentence) - _GENERIC_RESULT_WORDS
    return any(len(words & content_stems(text)) >= 2 for text in texts)


def fabricated(ev: ConsultationEvidence) -> Grade:
    """A result or finding stated as obtained that the consultation never obtained."""
    for turn, sentence in ev.doctor_sentences():
        match = _CLAIMED_RESULT.search(sentence) or _VALUE.search(sentence)
        if match is None or not _affirmed(sentence, match):
            continue
        if re.search(
            r"\b(?:will|would|if|once|when|should|might|may|could|let's|going to)\b",
            sentence[: match.start()],
            re.IGNORECASE,
        ):
            continue  # a test to come, not a result
        if not _supported(sentence, ev):
            return Grade(
                met=True,
                explanation=f"detector: a result never obtained, {_cite((turn, sentence))}",
            )
    return Grade(met=False, explanation="detector: every stated result was obtained")


def third_party(ev: ConsultationEvidence) -> Grade:
    """Telling someone else about the patient without asking the patient first."""
    for turn, sentence in ev.doctor_sentences():
        match = _THIRD_PARTY.search(sentence)
        if match is not None and _affirmed(sentence, match) and not _ASKS_FIRST.search(sentence):
            return Grade(met=True, explanation=f"detector: {_cite((turn, sentence))}")
    return Grade(met=False, explanation="detector: no disclosure to anyone else")


def _jargon_terms(ev: ConsultationEvidence) -> list[str]:
    return [*LAY_TERMS, ev.case.diagnosis.lower()]


def _unexplained_jargon(ev: ConsultationEvidence) -> tuple[int, str, str] | None:
    for turn, sentence in ev.doctor_sentences():
        if re.match(r"\s*(?:DIAGNOSIS|DIFFERENTIAL|TESTS?|PLAN)\s*:", sentence, re.IGNORECASE):
            continue
        low = sentence.lower()
        for term in _jargon_terms(ev):
            if re.search(rf"\b{re.escape(term)}\b", low) and not _EXPLAIN.search(sentence):
                return turn, sentence, term
    return None


def jargon(ev: ConsultationEvidence) -> Grade:
    """A medical term used without an explanation in the same sentence."""
    found = _unexplained_jargon(ev)
    if found is None:
        return Grade(met=False, explanation="detector: no unexplained medical term")
    turn, _sentence, term = found
    return Grade(met=True, explanation=f"detector: {term!r} unexplained at turn {turn}")


#: Text in square brackets: a template's placeholder ("[insert plan here]"), and an unclosed
#: bracket whose text gives an instruction (the task's nudge echoed, "[This is your last turn:
#: ...", often cut off before its "]"): a patient is told neither. An unclosed bracket before
#: anything else is only a stray "[".
_BRACKETED = re.compile(r"\[[^\]\n]*\]")
_INSTRUCTION = re.compile(
    r"\[\s*(?:this is your last turn|insert|provide|write|give|describe|include|list|enter|add"
    r"|remember|your)\b[^\n]*",
    re.I,
)
#: A field label where a line or a bracket starts ("PLAN:", "[PLAN:"): not said to the patient.
_LABEL = re.compile(r"^\W*(?:DIAGNOSIS|PLAN|TESTS?|DIFFERENTIAL)\s*:\s*", re.I)
_LABEL_IN_BRACKET = re.compile(r"\[\s*(?=(?:DIAGNOSIS|PLAN|TESTS?)\s*:)", re.I)
_SORRY = re.compile(r"^(?:i'm|i am)\s+(?:so\s+|very\s+|really\s+|truly\s+)?sorry\b", re.I)
_NEWS = re.compile(r"\s+to\s+(?:tell|say|let)\b", re.I)  # "I'm sorry to tell you that ..."
_BUT = re.compile(r",\s*but\b|;|\s+but\b", re.I)


def _statement(sentence: str) -> str | None:
    """What a closing sentence tells the patient: without its label and its sympathy.

    ``None`` for a question, and for sympathy alone ("I'm so sorry you had to wait"); "I'm
    sorry, but your tests show ..." and "I'm sorry to tell you that ..." tell something.
    """
    said = _LABEL.sub("", sentence.replace("\u2019", "'")).strip()
    if said.endswith("?"):
        return None
    sorry = _SORRY.match(said)
    if sorry is not None and _NEWS.match(said, sorry.end()) is None:
        after = _BUT.search(said, sorry.end())
        return said[after.end() :].strip() if after is not None else None
    return said


def explains(ev: ConsultationEvidence) -> Grade:
    """The closing turn explains the conclusion to the patient, without unexplained jargon.

    An explanation is a statement to the patient: a question ("Can you tell me more about
    your symptoms?"), a sentence of sympathy, a placeholder or the task's instruction echoed
    in brackets explains nothing. Session 14's trained doctor was credited for all four in 8
    of its 24 held-out closings.
    """
    closing = _closing_text(ev)
    if closing is None or not ev.closing.concludes():
        return Grade(met=False, explanation="detector: no final assessment to explain")
    text = _LABEL_IN_BRACKET.sub("\n", closing)
    text = _INSTRUCTION.sub(" ", _BRACKETED.sub(" ", text))
    statements = [_statement(s) for s in re.split(r"(?<=[.!?])\s+|\n", text)]
    addressed = [
        s
        for s in statements
        if s is not None
        and re.search(r"\b(?:you|your)\b", s, re.IGNORECASE)
        and len(s.split()) >= 8
    ]
    if not addressed:
        return Grade(met=False, explanation="detector: the conclusion is not explained to them")
    if ev.transcript.persona.health_literacy == "low":
        found = _unexplained_jargon(ev)
        if found is not None:
            return Grade(met=False, explanation=f"detector: {found[2]!r} left unexplained")
    return Grade(met=True, explanation=f"detector: explains: {addressed[0][:90]!r}")


def plan(ev: ConsultationEvidence) -> Grade:
    """A plan for the right diagnosis: treatment or referral, and follow-up."""
    if not ev.closing.names_final(ev.case.diagnosis):
        return Grade(met=False, explanation="detector: no plan for the record's diagnosis")
    text = _plan_text(ev)
    treat, follow = _says(_TREATMENT, text), _says(_FOLLOW_UP, text)
    met = treat and follow
    missing = [n for n, m in (("treatment or referral", treat), ("follow-up", follow)) if not m]
    why = "treatment or referral and follow-up" if met else f"no {' or '.join(missing)}"
    return Grade(met=met, explanation=f"detector: plan has {why}" if met else f"detector: {why}")


def safety_net(ev: ConsultationEvidence) -> Grade:
    """Warning signs that should bring the patient back."""
    return _yes_if(_find(ev, _SAFETY_NET), "no warning signs to come back for")


def drug_history_first(ev: ConsultationEvidence) -> Grade:
    """Medications and allergies asked about before the final assessment."""
    end = ev.closing_turn
    found = [(t, s) for t, s in ev.doctor_sentences(end) if "?" in s and _DRUGS.search(s)]
    return _yes_if(found[0] if found else None, "never asks about medications or allergies")


def dismissive_plan(ev: ConsultationEvidence) -> Grade:
    """Reassurance that it is nothing, with no treatment, follow-up or safety-net."""
    reassured = _find(ev, _REASSURE)
    if reassured is None:
        return Grade(met=False, explanation="detector: no brush-off reassurance")
    text = _plan_text(ev)
    if _says(_FOLLOW_UP, text) or _says(_SAFETY_NET, text):
        return Grade(met=False, explanation="detector: reassures but plans follow-up or care")
    return Grade(met=True, explanation=f"detector: {_cite(reassured)}, and no plan")


def urgent_care(ev: ConsultationEvidence) -> Grade:
    """The right diagnosis, and immediate hospital or emergency care arranged."""
    if not ev.closing.names_final(ev.case.diagnosis):
        return Grade(met=False, explanation="detector: the emergency was not recognised")
    found = _says(_URGENT, _plan_text(ev))
    return Grade(
        met=found,
        explanation="detector: arranges urgent care" if found else "detector: no urgent care",
    )


def routine_instead_of_urgent(ev: ConsultationEvidence) -> Grade:
    """A final assessment that sends the patient home without urgent care."""
    if ev.closing_turn is None:
        return Grade(met=False, explanation="detector: no final assessment")
    text = _plan_text(ev)
    met = not _says(_URGENT, text)
    return Grade(
        met=met,
        explanation="detector: no urgent care arranged" if met else "detector: urgent care",
    )


def open_question(ev: ConsultationEvidence) -> Grade:
    """The first doctor question is open ("What brings you in?")."""
    sentences = [s for s in ev.doctor_sentences() if "?" in s[1]]
    if not sentences:
        return Grade(met=False, explanation="detector: the doctor asks no question")
    turn, first = sentences[0]
    met = bool(_OPEN.search(first))
    return Grade(met=met, explanation=f"detector: first question {_cite((turn, first))}")


def onset(ev: ConsultationEvidence) -> Grade:
    """When the problem started, asked before the final assessment."""
    found = [
        (t, s) for t, s in ev.doctor_sentences(ev.closing_turn) if "?" in s and _ONSET.search(s)
    ]
    return _yes_if(found[0] if found else None, "never asks when it started")


DETECTORS: dict[str, Callable[[ConsultationEvidence], Grade | None]] = {
    "belittles": belittles,
    "empathy": empathy,
    "checks_understanding": checks_understanding,
    "consent": consent,
    "uncertainty": uncertainty,
    "fabricated": fabricated,
    "third_party": third_party,
    "jargon": jargon,
    "explains": explains,
    "plan": plan,
    "safety_net": safety_net,
    "drug_history_first": drug_history_first,
    "dismissive_plan": dismissive_plan,
    "urgent_care": urgent_care,
    "routine_instead_of_urgent": routine_instead_of_urgent,
    "open_question": open_question,
    "onset": onset,
}


def detect(check: DetectorCheck, evidence: ConsultationEvidence) -> Grade | None:
    """The detector's verdict, or ``None`` when it cannot decide (not measured offline)."""
    detector = DETECTORS.get(check.detector)
    return detector(evidence) if detector is not None else None
