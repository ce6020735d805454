"""Record text in the patient's own voice: third person to first person, technical to lay.

Case records are written by clinicians ("The patient reports a 1-month history of double vision
(diplopia). Non-smoker, drinks wine occasionally."), imported sets even more so. A patient says
"For about a month, I've had double vision. I don't smoke, I drink wine now and then." These
rules make that change without adding content: they move words around, swap pronouns and verb
forms, and replace technical terms by the lay words of :data:`~medverify.text.lexicon.
LAY_TERMS`. Every word they add comes from a small fixed vocabulary (:data:`VOICE_WORDS`), which
is what lets the quality suite prove the template patient never says anything the record does not.
"""

from __future__ import annotations

import re
from functools import lru_cache

from medverify.text.lexicon import LAY_TERMS

_I = re.IGNORECASE
_NUMBER_WORDS = {
    "1": "a",
    "one": "a",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
}

# Third-person singular verbs a clinical note starts a fragment with ("Drinks wine.").
_FRAGMENT_VERBS = frozenset(
    re.findall(
        r"\S+",
        "drinks smokes works takes lives uses has is was reports denies notes feels eats exercises "
        "walks sleeps drives travels vapes describes mentions complains endorses states says gets "
        "keeps needs wears plays runs cycles quit quitted smoked drank used worked lived stopped "
        "started began had took experienced noticed underwent received completed admits",
    )
)
_PAST = {
    "quit",
    "quitted",
    "smoked",
    "drank",
    "used",
    "worked",
    "lived",
    "stopped",
    "started",
    "began",
    "had",
    "took",
    "experienced",
    "noticed",
    "underwent",
    "received",
    "completed",
    "was",
}
_IRREGULAR = {"has": "have", "is": "am", "does": "do", "was": "was", "says": "say"}
_ADVERBS = (
    "also|often|usually|occasionally|sometimes|rarely|never|still|only|regularly|currently"
    "|now|always|frequently|mostly|normally|generally|just"
)
_REPORTING = (
    r"(?:reports?|notes?|states?|describes?|mentions?|says|endorses|admits to|complains of"
    r"|complaints of|presents with|presented with|presents to [\w\s]+? with|is experiencing"
    r"|experiences|has been experiencing|has noticed|noticed)"
)
_SUBJECT = (
    r"(?:the patient|patient|pt|she|he|the (?:woman|man|boy|girl|child|lady|gentleman)"
    r"|(?:a|an) [\w\- ]*?(?:man|woman|male|female|boy|girl|patient|gentleman|lady|child))"
)
_UNITS = r"(?:hour|day|week|month|year)"
_HISTORY_OF = re.compile(
    rf"^(?:{_SUBJECT}\s+(?:{_REPORTING}|has|had)\s+|{_REPORTING}\s+)?(?:a|an)\s+(?P<n>\d+|one|two|three"
    rf"|four|five|six|seven|several|few)[- ](?P<unit>{_UNITS})s?[- ](?:long\s+)?history of\s+"
    r"(?:experiencing\s+|having\s+)?",
    _I,
)
_LEAD = re.compile(rf"^{_SUBJECT}\s+{_REPORTING}\s+(?:that\s+)?(?:experiencing\s+|having\s+)?", _I)
_LEAD_FRAGMENT = re.compile(rf"^{_REPORTING}\s+(?:that\s+)?(?:experiencing\s+|having\s+)?", _I)
_DENIES = re.compile(
    rf"^(?:{_SUBJECT}\s+)?denies\s+(?:any\s+)?(?:experiencing\s+|having\s+|a\s+history\s+of\s+)?",
    _I,
)
_FAMILY_START = re.compile(
    r"^(?:her|his|the patient's|patient's)?\s*(?P<who>mother|father|mum|dad|brother|sister"
    r"|grandmother|grandfather|parents|siblings|aunt|uncle|son|daughter|maternal|paternal)\b",
    _I,
)
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|i'll|my|me|myself)\b", _I)
_NO_START = re.compile(r"^(?:no|none|nil|not on any|denies any)\b\s*(?:known\s+)?", _I)
_HISTORY_START = re.compile(r"^(?:past\s+)?(?:medical\s+)?history of\s+", _I)
_ALLERGIC_START = re.compile(r"^allergic to\b", _I)
_OCCUPATION_WORD = re.compile(
    r"\b(?:retired|student|driver|teacher|nurse|designer|engineer|farmer|worker|manager|clerk"
    r"|accountant|doctor|lawyer|cook|chef|mechanic|electrician|builder|cleaner|cashier"
    r"|programmer|developer|officer|soldier|salesman|saleswoman|secretary|housewife"
    r"|homemaker|unemployed|employee|pilot|musician|artist|writer|scientist|technician"
    r"|assistant|labourer|laborer)\b",
    _I,
)
_PAREN = re.compile(r"\s*\(([^()]*)\)")
_LABEL = re.compile(r"^(?P<label>[A-Za-z][A-Za-z ,/\-]{2,40}):\s*(?P<body>\S.*)$")
_LABEL_TEMPLATES = (
    (re.compile(r"^(?:current |regular |home )?(?:medications?|meds|drugs)$", _I), "I take {}"),
    (
        re.compile(r"^(?:past |previous )?(?:medical |surgical )?history$", _I),
        "I have a history of {}",
    ),
    (re.compile(r"^allerg(?:y|ies)$", _I), "I'm allergic to {}"),
    (re.compile(r"^family(?: medical)? history$", _I), "In my family, {}"),
)

#: Words the voice rules may add to a sentence (everything else comes from the record).
VOICE_WORDS = frozenset(
    re.findall(
        r"[a-z']+",
        "i i'm i've i'd me my myself am have had haven't don't do not didn't been having for "
        "about a an the two three four five six seven several few hours days weeks months years "
        "hour day week month year take taking allergic to any smoke drink there's in family "
        "it's yes no known always now and then nothing much anything in history",
    )
)


def _lay_pattern(term: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w\-]){re.escape(term)}(?![\w\-])", _I)


_LAY = [(_lay_pattern(k), v) for k, v in sorted(LAY_TERMS.items(), key=lambda kv: -len(kv[0]))]


@lru_cache(maxsize=8192)
def lay_words(text: str) -> str:
    """``text`` with technical terms replaced by everyday ones (low health literacy)."""
    out = _PAREN.sub(lambda m: _paren_low(m.group(1)), text)
    for pattern, lay in _LAY:
        out = pattern.sub(lay, out)
    return _tidy(out)


def _paren_low(inner: str) -> str:
    """A parenthetical for a low-literacy voice: glosses go, content stays."""
    if _is_technical(inner):
        return ""
    return f" ({inner})"


def _is_technical(phrase: str) -> bool:
    p = phrase.strip().lower()
    return p in LAY_TERMS or (len(p.split()) == 1 and p.endswith(("ia", "osis", "itis", "emia")))


def drop_technical_glosses(text: str) -> str:
    """``"double vision (diplopia)"`` -> ``"double vision"``; other parentheticals stay."""
    return _tidy(_PAREN.sub(lambda m: "" if _is_technical(m.group(1)) else m.group(0), text))


def _verb_base(verb: str) -> str:
    low = verb.lower()
    if low in _IRREGULAR:
        return _IRREGULAR[low]
    if low in _PAST:
        return low
    if low.endswith("ies") and len(low) > 4:
        return low[:-3] + "y"
    if low.endswith(("shes", "ches", "xes", "sses", "oes")):
        return low[:-2]
    if low.endswith("s") and not low.endswith("ss"):
        return low[:-1]
    return low


def _agree(text: str) -> str:
    """Fix "I drinks" -> "I drink", "I is" -> "I am", "I also takes" -> "I also take"."""

    def fix(m: re.Match[str]) -> str:
        adverb = m.group("adv") or ""
        return f"I {adverb}{_verb_base(m.group('verb'))}"

    return re.sub(
        rf"\bI (?P<adv>(?:{_ADVERBS}) )?(?P<verb>[a-z]+(?:s|es))\b(?!')",
        lambda m: fix(m) if _looks_like_verb(m.group("verb")) else m.group(0),
        text,
    )


def _looks_like_verb(word: str) -> bool:
    low = word.lower()
    if low in _IRREGULAR or low in _FRAGMENT_VERBS:
        return True
    return low.endswith("s") and low not in {"always", "sometimes", "perhaps", "was", "has"}


def _pronouns(text: str) -> str:
    """Third-person pronouns of the patient to first person."""
    rules = [
        (r"\bthe patient's\b|\bpatient's\b|\bpt's\b", "my"),
        (r"\bthe patient\b|\bpatient\b(?=\s+(?:is|was|has|had|reports|denies|notes|feels))", "I"),
        (r"\bherself\b|\bhimself\b", "myself"),
        (r"\bshe\b|\bhe\b", "I"),
        (r"\bhis\b", "my"),
        (r"\bher\b(?=\s+(?:to|that|a|an|the|about|and|with|for|if)\b|\s*[,.;]|\s*$)", "me"),
        (r"\bher\b", "my"),
        (r"\bhim\b", "me"),
    ]
    out = text
    for pattern, repl in rules:
        out = re.sub(pattern, lambda m, r=repl: _case_like(m.group(0), r), out, flags=_I)
    out = re.sub(
        r"\b(and|but) (?:also )?(?:reports|notes|describes|endorses|complains of|admits to)"
        r"(?: feeling| having| experiencing)?\b",
        r"\1 I've had",
        out,
    )
    if re.match(r"^I\b", out):  # "I feel sick and has taken ..." -> "... and have taken"
        out = re.sub(r"\b(and|but|or) has\b", r"\1 have", out)
        out = re.sub(r"\b(and|but|or) is\b", r"\1 am", out)
    out = re.sub(r"\bI is\b", "I am", out)
    out = re.sub(r"\bI has\b", "I have", out)
    out = re.sub(r"\bI does\b", "I do", out)
    return _agree(out)


def _case_like(original: str, repl: str) -> str:
    if repl == "I":
        return "I"
    return repl.capitalize() if original[:1].isupper() else repl


def _contract(text: str) -> str:
    rules = [
        (r"\bI am not\b", "I'm not"),
        (r"\bI am\b", "I'm"),
        (r"\bI have not\b", "I haven't"),
        (r"\bI do not\b", "I don't"),
        (r"\bI did not\b", "I didn't"),
        (r"\bI have (been|had|noticed|never|always|also)\b", r"I've \1"),
    ]
    out = text
    for pattern, repl in rules:
        out = re.sub(pattern, repl, out)
    return out


def _lower_first(text: str) -> str:
    first = text.split(" ", 1)[0]
    if first[:1].isupper() and first[1:].islower():
        return text[:1].lower() + text[1:]
    return text


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def _tidy(text: str) -> str:
    out = re.sub(r"\s+([,.;:!?])", r"\1", text)
    out = re.sub(r"\s{2,}", " ", out).strip()
    out = re.sub(r",\s*,", ",", out)
    return out


def _duration(n: str, unit: str) -> str:
    n = n.lower()
    word = _NUMBER_WORDS.get(n, n)
    if word == "a":
        return f"about a{'n' if unit == 'hour' else ''} {unit}"
    return f"{word} {unit}s"


def _clause(clause: str, category: str, first: bool) -> str:
    """One clause of a record sentence in the patient's voice."""
    c = re.sub(r"\b(is|are|was|were) (?:described|characterized) as\b", r"\1", clause.strip())
    if not c:
        return c
    label = _LABEL.match(c) if first else None
    if label:
        body = label.group("body").strip()
        for pattern, template in _LABEL_TEMPLATES:
            if pattern.match(label.group("label").strip()):
                no = _NO_START.match(body)
                if no and not body[no.end() :].strip(" ."):
                    return f"I don't have any {label.group('label').strip().lower()}"
                if no:
                    return _clause(body, category, True)
                return template.format(_lower_first(body))
        return _clause(body, category, True)
    if _FIRST_PERSON.search(c) and not re.search(rf"\b{_SUBJECT}\b", c, _I):
        return c
    m = _HISTORY_OF.match(c)
    if m:
        rest = c[m.end() :]
        return f"For {_duration(m.group('n'), m.group('unit').lower())}, I've had {rest}"
    m = _DENIES.match(c)
    if m:
        return f"I haven't had {c[m.end() :]}"
    m = _LEAD.match(c) or (_LEAD_FRAGMENT.match(c) if first else None)
    if m:
        rest = c[m.end() :]
        clause_follows = re.search(r"\bthat\s*$", m.group(0), _I) or re.match(
            rf"^(?:{_SUBJECT}|these|the|her|his|my|their|this|it|they|i)\b", rest, _I
        )
        if clause_follows:
            return _pronouns(rest)
        return f"I've had {_pronouns(rest)}"
    m = _FAMILY_START.match(c)
    if m and category == "family":
        rest = c[m.start("who") :]
        return f"My {_lower_first(_pronouns(rest))}"
    if category == "family" and re.match(r"^family history of\b", c, _I):
        return f"There's a history of {c[len('family history of ') :]} in my family"
    if re.match(r"^non-?smoker\b", c, _I):
        return "I don't smoke" + c[re.match(r"^non-?smoker", c, _I).end() :]
    if re.match(r"^non-?drinker\b", c, _I):
        return "I don't drink" + c[re.match(r"^non-?drinker", c, _I).end() :]
    m = _NO_START.match(c)
    if m and category in ("medication", "allergy", "history", "family"):
        rest = c[m.end() :]
        if category == "medication":
            return f"I'm not taking any {rest}" if rest else "I'm not taking anything"
        if category == "family":
            return f"There's no {rest} in my family" if rest else "Nothing in my family"
        return f"I don't have any {'known ' if 'known' in c.lower() else ''}{rest}".strip()
    if _ALLERGIC_START.match(c):
        return f"I'm {_lower_first(c)}"
    if _HISTORY_START.match(c) and category == "history":
        return f"I have a {_lower_first(_HISTORY_START.sub('history of ', c))}"
    first_word = c.split(" ", 1)[0].lower().strip(",;")
    if first_word in _FRAGMENT_VERBS:
        verb, _, rest = c.partition(" ")
        base = _verb_base(verb)
        return _agree(_pronouns(f"I {base} {rest}".strip()))
    if re.match(rf"^{_SUBJECT}\b", c, _I) or re.search(r"\b(?:she|he|her|his)\b", c, _I):
        return _pronouns(c)
    if not first:
        return c
    if category == "medication":
        return f"I take {_lower_first(c)}"
    if category == "allergy":
        return f"I'm allergic to {_lower_first(c)}"
    if category == "social" and _OCCUPATION_WORD.search(c.split(",")[0]) and not _has_verb(c):
        article = "an" if c[:1].lower() in "aeiou" else "a"
        return f"I'm {article} {_lower_first(c)}"
    if category in ("symptom", "history") and not _has_verb(c):
        return f"I've had {_lower_first(c)}"
    return c


_VERB_HINT = re.compile(
    r"\b(?:is|are|was|were|am|be|been|has|have|had|do|does|did|gets?|got|feels?|felt|comes?"
    r"|came|goes|went|seems?|started|began|worsens?|worsened|improves?|improved|lasts?|occurs?"
    r"|occurred|happens?|happened|makes?|bothers?|wakes?|radiates?|spreads?|moved|moves|stops?"
    r"|stopped|can|can't|cannot|won't|will|would|could|takes?|took|used|uses|lives?|works?"
    r"|drinks?|smokes?|eats?|denies|reports?)\b",
    _I,
)


def _has_verb(text: str) -> bool:
    return bool(_VERB_HINT.search(text))


@lru_cache(maxsize=4096)
def first_person(text: str, category: str = "symptom") -> str:
    """A record sentence (or several) said by the patient.

    ``"The patient reports a 1-month history of double vision."`` ->
    ``"For about a month, I've had double vision."``; ``"Non-smoker, drinks wine occasionally."``
    -> ``"I don't smoke, I drink wine occasionally."``; first-person text is left alone. Exam
    findings and test results are not the patient's words and should not come here.
    """
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    out = []
    for sentence in sentences:
        end = sentence[-1] if sentence and sentence[-1] in ".!?" else "."
        body = sentence.rstrip(".!? ")
        clauses = re.split(r"(\s*[;,]\s+(?:and\s+|but\s+)?)", body)
        pieces = []
        for i, piece in enumerate(clauses):
            if i % 2 == 1:
                pieces.append(piece)
                continue
            first = i == 0
            word = piece.strip().split(" ", 1)[0].lower() if piece.strip() else ""
            if not first and word in _FRAGMENT_VERBS:
                pieces.append(_clause(piece, category, True))
            else:
                pieces.append(_clause(piece, category, first))
        said = _contract(_upper_first(_tidy("".join(pieces))))
        out.append(said + end)
    return " ".join(s for s in out if s.strip(".!? "))
