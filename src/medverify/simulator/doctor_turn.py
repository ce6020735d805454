"""Reading a doctor's turn by rules: its sentences, questions, topics, exam and test requests.

The Fact Unit decides which facts of the record a doctor's turn asks about; most of that decision
needs no model. This module is the rule-based half, kept apart because both Fact Units build on
it: the offline unit completes its reading with sentence embeddings, the LLM unit trusts it for
what a model must not decide (exam and test items, diagnosis questions, attempts to break
character, items the record lacks). It is pure and cheap: no model, no I/O.

A sentence is an exam request, a test order, a question on a known topic (medications, allergies,
onset, pain character ... from :mod:`medverify.text.lexicon`), a question naming one of a fact's
keywords, or an open question left for matching by meaning. Diagnosis questions and attempts to
make the patient print its record select nothing.

A request returns the findings of what it names and nothing else: "Let me listen to your heart"
returns the heart findings (not "Heart rate: 72 bpm"), "a slit lamp examination" returns the
slit-lamp finding or is reported missing, and only a general request ("let me examine you")
returns the whole examination. Which item a finding belongs to comes from its own label when it
has one ("Abdominal examination, auscultation: ..." is the abdomen, not the lungs), see
:func:`finding_items`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from medverify.cases.keywords import specific_keywords
from medverify.cases.records import HISTORY_CATEGORIES, CaseRecord, Fact
from medverify.text import lexicon as lx
from medverify.text.matching import (
    STOPWORDS,
    contains_term,
    find_term,
    normalize,
    split_sentences,
    stem,
    words,
)

#: What a turn does: orders a test, requests an examination, asks a question, or none of these.
Kind = Literal["question", "exam", "test", "other"]
#: Why a turn is answered the way it is: facts asked for, a diagnosis question, a role-play trick...
Intent = Literal[
    "facts", "chief_complaint", "anything_else", "diagnosis_query", "manipulation", "none"
]
#: A requested test given without saying which: the narrator asks the doctor to name it.
UNSPECIFIED_TESTS = "unspecified tests"


@dataclass
class ParsedTurn:
    """The rule-based reading of one doctor turn (no embeddings).

    Attributes:
        selected: fact ids the rules selected (topics, keywords, requested findings).
        requested: the exams and tests the doctor named.
        missing_exam: requested examinations the record has no finding for.
        missing_test: requested tests the record has no result for.
        intents: what each sentence was (``facts``, ``diagnosis_query``, ...), in turn order.
        unanswered: history topics asked about that the record is silent on.
        open_questions: questions left for matching by meaning.
        silent_topic_questions: questions on a topic the record is silent on (a higher bar).
        open_requests: exam or test requests naming no known item.
        asked: the turn asked a question.
        yes_no: the turn asked a closed question.
        exam: the turn requested an examination.
        test: the turn ordered a test.
        finding_ids: every exam finding and test result of the record: a unit reveals one
            only when the rules selected it (see :func:`~medverify.simulator.fact_unit.
            selection_from`).
    """

    selected: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    missing_exam: list[str] = field(default_factory=list)
    missing_test: list[str] = field(default_factory=list)
    intents: list[Intent] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    open_questions: list[str] = field(default_factory=list)
    silent_topic_questions: list[str] = field(default_factory=list)
    open_requests: list[str] = field(default_factory=list)
    asked: bool = False
    yes_no: bool = False
    exam: bool = False
    test: bool = False
    finding_ids: set[str] = field(default_factory=set)


def doctor_sentences(text: str) -> list[str]:
    """The sentences of a doctor turn, with ``;`` and line breaks as separators too."""
    out: list[str] = []
    for sentence in split_sentences(text.replace(";", ".\n")):
        sentence = sentence.strip(" -*\t")
        if sentence and re.search(r"[A-Za-z]", sentence):
            out.append(sentence)
    return out


def _fact_terms(fact: Fact, case: CaseRecord) -> list[str]:
    return specific_keywords(case).get(fact.id, [])


def _fact_haystack(fact: Fact) -> str:
    # A named id ("cn_ptosis") says what the fact is; a numbered one ("t4") must not read as T4.
    name = "" if re.fullmatch(r"[a-z]{1,2}\d+", fact.id) else fact.id.replace("_", " ")
    return f"{name} {fact.text} {' '.join(fact.keywords)}"


def _named_conditions(case: CaseRecord) -> list[str]:
    return [case.diagnosis, *case.differential]


def _asks_about_condition(case: CaseRecord, sentence: str) -> bool:
    """Whether the sentence asks the patient about the diagnosis or a differential entry.

    A sentence naming one ("Is it myasthenia gravis?", "I think you have migraine, right?") is
    a diagnosis question unless it asks for history ("Has anyone in your family had ...?").
    A distinctive word of a name ("myasthenia") counts only in a guess ("could it be ...?"), so
    that "Any thyroid problems?" stays a history question when "Thyroid eye disease" is in the
    differential.
    """
    lower = sentence.lower()
    if lx.HISTORY_QUESTION.search(lower):
        return False
    names = _named_conditions(case)
    if any(contains_term(sentence, name) for name in names):
        return True
    if not lx.NAMED_CONDITION_QUESTION.search(lower):
        return False
    tokens = {w for name in names for w in words(name) if len(w) >= 5}
    tokens -= lx.GENERIC_WORDS
    return any(contains_term(sentence, t) for t in tokens)


@dataclass(frozen=True)
class _Named:
    """A stretch of the sentence that names an exam or test item (or a finding, by keyword)."""

    start: int
    end: int
    item: lx.Item | None = None
    ask: str = ""
    fact: Fact | None = None

    def inside(self, other: _Named) -> bool:
        """Strictly inside ``other`` (a shorter name within a longer one)."""
        return (
            other.start <= self.start
            and self.end <= other.end
            and (other.end - other.start) > (self.end - self.start)
        )


def _item_spans(sentence: str, items: Sequence[lx.Item]) -> list[_Named]:
    """Where the sentence names each item (its longest ask), before overlaps are resolved."""
    spans = []
    for item in items:
        best: _Named | None = None
        for ask in item.ask:
            m = find_term(sentence, ask)
            if m and (best is None or m.end() - m.start() > best.end - best.start):
                best = _Named(m.start(), m.end(), item, ask)
        if best is not None:
            spans.append(best)
    return spans


def _most_specific(spans: list[_Named]) -> list[_Named]:
    """The spans not strictly inside another: "heart rate" is not also "heart"."""
    kept = [s for s in spans if not any(s.inside(o) for o in spans)]
    items = [(s.start, s.end) for s in kept if s.item is not None]
    kept = [s for s in kept if s.item is not None or (s.start, s.end) not in items]
    names = {s.item.name for s in kept if s.item is not None}
    if "cranial nerves" in names:
        kept = [s for s in kept if s.item is None or s.item.name != "neurological"]
    if names & lx.BLOOD_ITEMS:
        kept = [s for s in kept if s.item is None or s.item.name != "blood tests"]
    return kept


# -- which item each finding belongs to ------------------------------------------------------
#
# A request for an item returns the findings *of that item*. Matching the item's words anywhere
# in a finding is not enough: "Abdominal examination, auscultation: normal bowel sounds" holds
# "auscultation" (a lung word) and "Left ankle: no swelling or erythema" holds "erythema" (a skin
# word). A finding's own label says what it is a finding of, so it decides when there is one.

#: Containers and the items they hold: "vital signs" holds the blood pressure, and a blanket
#: "Vital signs are within normal limits" answers a request for the blood pressure.
_CONTAINS: dict[str, frozenset[str]] = {
    "vital signs": frozenset(
        {"blood pressure", "heart rate", "temperature", "respiratory rate", "oxygen saturation"}
    ),
    "neurological": frozenset({"cranial nerves", "reflexes", "strength", "sensation", "gait"}),
    "blood tests": lx.BLOOD_ITEMS,
}
#: A finding labelled with the key may also be a finding of these items when its text names
#: them ("Cranial nerves: ptosis of the right eyelid" is an eye finding too).
_ALSO: dict[str, frozenset[str]] = {
    **_CONTAINS,
    "cranial nerves": frozenset({"eyes"}),
}
#: Words of an item's match list that other systems use as well ("tenderness", "percussion"):
#: on their own they place a finding only where no other item is named.
_WEAK_TERMS: dict[str, frozenset[str]] = {
    "lungs": frozenset({"auscultation", "percussion", "chest"}),
    "abdomen": frozenset({"tenderness"}),
    "skin": frozenset({"erythema"}),
    "neck": frozenset({"cervical", "nodes"}),
    "joints": frozenset({"range of motion", "effusion"}),
    "legs": frozenset({"edema", "oedema"}),
    "strength": frozenset({"tone", "power"}),
    "blood tests": frozenset({"blood", "level", "levels", "count", "serum", "plasma"}),
}
#: Words for an item that the lexicon lacks, used to place findings ("Dermatological
#: examination" is the skin, "Red blood cell count" is part of the blood count).
_EXTRA_TERMS: dict[str, tuple[str, ...]] = {
    "skin": ("dermatological", "dermatologic", "alopecia"),
    "ears": ("otoscopic", "otoscopy"),
    "throat": ("oral cavity", "mucous membranes"),
    "pelvic": (
        "adnexal",
        "cervical motion",
        "cervical discharge",
        "uterus",
        "uterine",
        "speculum",
        "genitalia",
    ),
    "fundoscopy": ("ophthalmoscopy", "ophthalmoscopic", "retinal"),
    "eyes": ("ophthalmoscopy", "ophthalmoscopic", "retinal"),
    "abdomen": ("hepatomegaly", "splenomegaly", "hepatosplenomegaly"),
    "lungs": ("pulmonary",),
    "complete blood count": (
        "red blood cell",
        "red cell",
        "rbc",
        "mcv",
        "mean corpuscular",
        "white blood cell",
        "leukocyte count",
        "leukocytes",
        "platelet",
        "platelet count",
        "lymphocytes",
        "monocytes",
        "differential count",
    ),
}
#: The parts of an item a request can name ("your knee" of the joints), by the words that name
#: them; findings that name another part of the item ("Right knee" for "your shoulder") do not
#: answer, findings that name none do.
_PARTS: dict[str, dict[str, tuple[str, ...]]] = {
    "joints": {
        "knee": ("knee",),
        "hip": ("hip",),
        "shoulder": ("shoulder", "rotator cuff"),
        "spine": ("spine", "spinal", "vertebral"),
        "elbow": ("elbow",),
        "wrist": ("wrist",),
    },
    "neck": {
        "thyroid": ("thyroid",),
        "lymph nodes": ("lymph", "lymphadenopathy", "nodes", "glands"),
    },
    "legs": {
        "ankle": ("ankle", "achilles"),
        "feet": ("feet", "foot", "soles"),
        "calf": ("calf", "calves"),
    },
    "eyes": {"pupils": ("pupil",), "eyelids": ("eyelid", "ptosis")},
    "throat": {
        "mouth": ("mouth", "oral", "tongue", "teeth", "dental", "mucous", "buccal"),
        "tonsils": ("tonsil",),
    },
}
#: Asks that name one of those parts.
_ASKED_PART: dict[str, str] = {
    **{a: "knee" for a in ("knee", "knees")},
    **{a: "hip" for a in ("hip", "hips")},
    **{a: "shoulder" for a in ("shoulder", "shoulders")},
    "spine": "spine",
    "thyroid gland": "thyroid",
    "lymph nodes": "lymph nodes",
    "glands": "lymph nodes",
    **{a: "ankle" for a in ("ankle", "ankles")},
    "feet": "feet",
    **{a: "calf" for a in ("calf", "calves")},
    "pupils": "pupils",
    **{a: "eyelids" for a in ("eyelid", "eyelids")},
    "mouth": "mouth",
    "tonsils": "tonsils",
}
#: Phrases holding an item's word that are not about that item ("the light reflex" of an
#: eardrum is no tendon reflex, "hears a tone" is no muscle tone).
_NOT_AN_ITEM = re.compile(r"\blight reflex\b|\b(?:a|the) tone\b", re.IGNORECASE)
#: Labels qualified by how they were examined ("Abdominal examination, palpation").
_QUALIFIERS = frozenset(
    {
        "inspection",
        "palpation",
        "auscultation",
        "percussion",
        "general",
        "observation",
        "description",
        "other",
        "details",
        "interpretation",
        "impression",
        "notes",
        "findings",
        "other findings",
        "inspection and palpation",
    }
)
#: Label groups that only gather results ("Blood chemistry, glucose"): the rest of the label says.
_GATHERING = re.compile(
    r"^(?:(?:blood|serum|plasma)\s*(?:chemistry|biochemistry|tests?|work)?|(?:bio)?chemistry"
    r"|laboratory(?: tests?| results?)?|labs?|lab tests|(?:additional|other|routine|basic)"
    r" tests|(?:general |physical )?examination|exam|general)$",
    re.IGNORECASE,
)
#: A label group that declares an examination of its own ("Obstetric examination, ...").
_DECLARED_EXAM = re.compile(r"\b(?:examination|exam|system)\b", re.IGNORECASE)
_LABEL = re.compile(r"^([^:]{2,80}):\s")


@lru_cache(maxsize=256)
def _terms(item: lx.Item) -> tuple[tuple[str, bool], ...]:
    """``(term, strong)`` for every word that names the item (asks, match words, label words)."""
    weak = _WEAK_TERMS.get(item.name, frozenset())
    names = dict.fromkeys([*item.ask, *item.match, *_EXTRA_TERMS.get(item.name, ())])
    return tuple((t, t not in weak) for t in names)


def _named_items(
    text: str, items: Sequence[lx.Item], *, weak_alone: bool, strong_only: bool = False
) -> set[str]:
    """The items a piece of finding text names (most specific of overlapping names).

    Weak words place it only when no item is named by a strong word (``weak_alone``), or, in a
    label, when they name exactly one item ("Range of motion, abduction"); never with
    ``strong_only``.
    """
    strong: list[_Named] = []
    weak: list[_Named] = []
    shadows = [_Named(m.start(), m.end()) for m in _NOT_AN_ITEM.finditer(text)]
    for item in items:
        for term, is_strong in _terms(item):
            m = find_term(text, term)
            if m and not any(s.start <= m.start() and m.end() <= s.end for s in shadows):
                (strong if is_strong else weak).append(_Named(m.start(), m.end(), item, term))
    if strong:
        chosen = strong
    elif strong_only:
        return set()
    elif weak and (weak_alone or len({s.item.name for s in weak if s.item}) == 1):
        chosen = weak
    else:
        return set()
    spans = [s for s in chosen if not any(s.inside(o) for o in [*strong, *weak])]
    return {s.item.name for s in spans if s.item is not None}


def _label(fact: Fact) -> tuple[str, str] | None:
    """``(group, rest)`` of a finding's label ("Abdominal examination", "palpation"), if any."""
    m = _LABEL.match(fact.text)
    if not m or len(words(m.group(1))) > 10:
        return None
    group, _, rest = m.group(1).partition(", ")
    return group.strip(), rest.strip()


def label_text(fact: Fact) -> str | None:
    """A finding's label as written ("Abdominal examination, palpation"), if it has one."""
    label = _label(fact)
    return ", ".join(x for x in label if x) if label else None


def finding_items(fact: Fact, items: Sequence[lx.Item]) -> set[str]:
    """The names of the exam or test items ``fact`` is a finding of (see :func:`_finding_items`)."""
    kind = "test" if items is lx.TEST_ITEMS else "exam" if items is lx.EXAM_ITEMS else None
    if kind is None:
        return _finding_items(fact, items)
    return set(_cached_items(fact.id, fact.text, tuple(fact.keywords), kind))


@lru_cache(maxsize=8192)
def _cached_items(fact_id: str, text: str, keywords: tuple[str, ...], kind: str) -> frozenset[str]:
    fact = Fact(id=fact_id, category=kind, text=text, keywords=list(keywords))  # type: ignore[arg-type]
    return frozenset(_finding_items(fact, lx.TEST_ITEMS if kind == "test" else lx.EXAM_ITEMS))


def _finding_items(fact: Fact, items: Sequence[lx.Item]) -> set[str]:
    """The names of the exam or test items ``fact`` is a finding of (empty: none of them).

    With a label ("Abdominal examination, auscultation: ..."), the label decides: its group
    first, then the rest unless that only says how it was examined; a group that declares an
    examination the lexicon lacks ("Obstetric examination") is none of the known items. Without
    one, the text and keywords do. A finding of a container ("Vital signs: ...") or of a related
    item also counts for the items its text names ("temperature 38.1 °C").
    """
    label = _label(fact)
    m = _LABEL.match(fact.text)
    value = fact.text[m.end() :] if label and m else fact.text
    if label is None:
        found = _named_items(_fact_haystack(fact), items, weak_alone=True)
    else:
        group, rest = label
        gathering = bool(_GATHERING.match(group))
        named = _named_items(group, items, weak_alone=False)
        if gathering:  # "Laboratory tests, ...": only a container it names counts
            found = {n for n in named if n in _CONTAINS}
        else:
            found = named
            if not found and (_DECLARED_EXAM.search(group) or (rest and items is lx.TEST_ITEMS)):
                return set()  # an examination or test of its own ("Arthrocentesis, ...")
        if rest and rest.lower() not in _QUALIFIERS and (gathering or not found):
            found |= _named_items(rest, items, weak_alone=False)
        if not found:
            return _named_items(value, items, weak_alone=False, strong_only=True)
    # "Temperature: ..." is a finding of the temperature, not of the vital signs as a whole
    # (unless it says "vital signs" itself).
    found = {
        n
        for n in found
        if not (_CONTAINS.get(n, frozenset()) & found) or _names_container(fact.text, n)
    }
    extra = {n for f in found for n in _ALSO.get(f, ())}
    if extra:
        own = label_text(fact) or ""
        haystack = " ".join([value, *(k for k in fact.keywords if not contains_term(own, k))])
        named = _named_items(haystack, [i for i in items if i.name in extra], weak_alone=False)
        found |= named
    return found


def _covers(item: lx.Item, fact: Fact, found: set[str]) -> bool:
    """Whether a request for ``item`` is answered by ``fact`` (whose items are ``found``)."""
    if item.name in found:
        return True
    for container, parts in _CONTAINS.items():
        if item.name == container and found & parts:
            return True  # "neurological" asks for the cranial nerves too
        # A blanket statement on the container ("Vital signs are within normal limits",
        # "afebrile, vital signs normal") answers for each of its parts; a list of readings
        # ("Vital signs: temperature 38.1 °C, ...") only for those it lists.
        blanket = not (found & parts) or bool(_BLANKET.search(fact.text))
        if (
            container in found
            and item.name in parts
            and blanket
            and _names_container(fact.text, container)
        ):
            return True
    return False


_BLANKET = re.compile(r"\b(?:normal|unremarkable|stable|intact)\b", re.IGNORECASE)
_CONTAINER_ITEMS = {i.name: i for i in (*lx.EXAM_ITEMS, *lx.TEST_ITEMS) if i.name in _CONTAINS}


def _names_container(text: str, container: str) -> bool:
    """Whether ``text`` names the container itself ("vital signs"), not just one of its parts."""
    item = _CONTAINER_ITEMS.get(container)
    return item is not None and any(contains_term(text, ask) for ask in item.ask)


def findings_of(item: lx.Item, findings: Sequence[Fact]) -> list[Fact]:
    """The findings that answer a request for ``item`` by its own name ("your lungs").

    What :func:`parse_turn` returns for "Let me examine your lungs" (before any narrowing to a
    part or body part); scripted doctors use it to know what a request should bring.
    """
    items = lx.TEST_ITEMS if item.kind == "test" else lx.EXAM_ITEMS
    return [f for f in findings if _covers(item, f, finding_items(f, items))]


def _findings_for(named: _Named, findings: Sequence[Fact], sentence: str) -> list[Fact]:
    """The findings of the requested item, narrowed to the asked part or body part."""
    item = named.item
    assert item is not None
    hits = findings_of(item, findings)
    asked = _ASKED_PART.get(named.ask.lower())
    parts = _PARTS.get(item.name, {})
    if asked in parts:
        # "Your knee": the findings naming the knee, and those naming no part -- unless the
        # record's findings of this item name only other parts (a shoulder case has no knee).
        named_parts = {f.id: _part_of(f, parts) for f in hits}
        if asked in named_parts.values() or not any(named_parts.values()):
            hits = [f for f in hits if named_parts[f.id] in (None, asked)]
        else:
            hits = []
    if item.imaging:
        parts = [
            part
            for part, names in lx.BODY_PARTS.items()
            if any(contains_term(sentence, n) for n in names)
        ]
        if parts:
            allowed = [n for p in parts for n in lx.BODY_PARTS[p]]
            hits = [f for f in hits if any(contains_term(_fact_haystack(f), n) for n in allowed)]
    return hits


def _item_label(named: _Named, sentence: str) -> str:
    item = named.item
    assert item is not None
    if item.imaging:
        for part, names in lx.BODY_PARTS.items():
            if any(contains_term(sentence, n) for n in names):
                return f"{item.name} ({part})"
    if named.ask.lower() in _ASKED_PART:
        return named.ask.lower()
    return item.name


def _part_of(fact: Fact, parts: dict[str, tuple[str, ...]]) -> str | None:
    """The part (of ``parts``) a finding names first, if any."""
    haystack = _fact_haystack(fact)
    first: tuple[int, str] | None = None
    for part, terms in parts.items():
        for term in terms:
            m = find_term(haystack, term)
            if m and (first is None or m.start() < first[0]):
                first = (m.start(), part)
    return first[1] if first else None


#: Every term of the exam and test lexicon: such a word inside a longer keyword of a finding
#: ("heart" of "heart rate", "blood" of "blood pressure") does not name that finding alone.
_TEST_TERMS = frozenset(normalize(t) for i in lx.TEST_ITEMS for t, _ in _terms(i))
_LEXICON_TERMS = frozenset(
    normalize(t) for i in (*lx.EXAM_ITEMS, *lx.TEST_ITEMS) for t, _ in _terms(i)
)


def _finding_keywords(fact: Fact, case: CaseRecord) -> list[str]:
    """The keywords that name a finding when a request says them.

    Its specific keywords, less a lexicon word that is only part of a longer keyword of the same
    finding: "Let me listen to your heart" is not a request for "Heart rate: 72 bpm".
    """
    label = _label(fact)
    own = normalize(", ".join(x for x in label if x)) if label else ""
    longer = [normalize(k) for k in fact.keywords]
    out = []
    for keyword in _fact_terms(fact, case):
        norm = normalize(keyword)
        part_of_longer = any(norm != k and re.search(rf"\b{re.escape(norm)}\b", k) for k in longer)
        if norm in _LEXICON_TERMS and part_of_longer and norm != own:
            continue
        out.append(keyword)
    return out


def _keyword_spans(sentence: str, facts: Sequence[Fact], case: CaseRecord) -> list[_Named]:
    """Where the sentence names a finding: by one of its keywords, or by its whole label."""
    spans = []
    for fact in facts:
        label = label_text(fact)
        names = [*_finding_keywords(fact, case), *([label] if label and "," in label else [])]
        for name in names:
            m = find_term(sentence, name)
            if m:
                spans.append(_Named(m.start(), m.end(), fact=fact, ask=name))
    return spans


#: Words before "exam" or "test" that do not name one ("a full physical exam").
_PLAIN_MODIFIERS = frozenset(
    re.findall(
        r"\S+",
        """physical full general quick brief complete thorough clinical proper short detailed
        basic routine formal bedside overall focused focussed standard initial further another
        first second repeat little usual whole entire head-to-toe systematic simple few couple
        same exam examination test tests""",
    )
)
_EXAM_NOUN = re.compile(r"\b(?:exam|examination)\b(?!\s+of\b)", re.IGNORECASE)
_TEST_NOUN = re.compile(
    r"\btest\b(?!\s+(?:of|for|your|you|the|my|his|her)\b)"
    # laboratory procedures that make a known word something else ("hemoglobin electrophoresis")
    r"|\b(?P<procedure>electrophoresis|genotyping|genotype)\b",
    re.IGNORECASE,
)
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z'\-]*)\W*$")


@dataclass(frozen=True)
class _Request:
    """A named examination or test in a sentence ("slit lamp examination")."""

    start: int  # where the name starts
    name_end: int  # where the name ends
    end: int  # where the noun ends
    name: str


def _named_requests(sentence: str, noun: re.Pattern[str]) -> list[_Request]:
    """Every "<name> exam" ("slit lamp examination") or "<name> test" in the sentence.

    The name is the run of words right before the noun, up to a function word or a word that
    names no particular examination ("physical", "full"); "a physical exam" has no name. A
    laboratory procedure ("electrophoresis") is part of the name.
    """
    out = []
    for m in noun.finditer(sentence):
        names: list[str] = []
        start = m.start()
        head = sentence[: m.start()]
        while len(names) < 4:
            w = _WORD_BEFORE.search(head)
            if not w:
                break
            word = w.group(1)
            if word.lower() in STOPWORDS or word.lower() in _PLAIN_MODIFIERS:
                break
            if lx.EXAM_VERBS.fullmatch(word) or lx.TEST_VERBS.fullmatch(word):
                break
            names.insert(0, word)
            start = w.start(1)
            head = head[: w.start(1)]
        if m.groupdict().get("procedure"):
            names.append(m.group(0))
            out.append(_Request(start, m.end(), m.end(), " ".join(names)))
        elif names:
            out.append(_Request(start, m.start(), m.end(), " ".join(names)))
    return out


def _resolve(requests: list[_Request], spans: list[_Named], sentence: str) -> list[_Request]:
    """The named requests that no known item or keyword accounts for (``spans`` is updated).

    "a slit lamp examination" names nothing known; "an (internal) pelvic examination" is the
    pelvic one: the last word of the name decides. A name whose last word is unknown while an
    item covers an earlier one ("hemoglobin electrophoresis": "hemoglobin" is the blood count)
    is something else: the item is dropped from ``spans``.
    """
    unknown = []
    for request in requests:
        inside = [s for s in spans if s.start < request.name_end and request.start < s.end]
        covered = set()
        for s in inside:
            covered |= set(range(max(s.start, request.start), min(s.end, request.name_end)))
        name_chars = {
            i
            for w in re.finditer(r"[A-Za-z0-9]+", sentence[request.start : request.name_end])
            for i in range(request.start + w.start(), request.start + w.end())
        }
        head = max(name_chars) if name_chars else request.start
        if inside and head in covered:
            continue  # the last word names a known item: "an internal pelvic examination"
        unknown.append(request)
        for s in inside:
            if s.item is not None and s.start >= request.start and s.end <= request.name_end:
                spans.remove(s)
    return unknown


def _by_label(findings: Sequence[Fact], name: str) -> list[Fact]:
    """Findings whose name is ``name`` ("Slit lamp: ..." for "slit lamp").

    Their label (else their text) has a word for each word of the name, allowing other endings
    ("Otoscopic examination shows ..." for "otoscopy").
    """
    wanted = words(name)
    if not wanted:
        return []
    out = []
    for fact in findings:
        have = words(label_text(fact) or fact.text)
        if all(any(_same_word(w, h) for h in have) for w in wanted):
            out.append(fact)
    return out


def _same_word(a: str, b: str) -> bool:
    """The same word up to its ending ("fundoscopic", "fundoscopy"; "lamp", "lamps")."""
    if a == b:
        return True
    if min(len(a), len(b)) < 4:
        return False
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    return common >= 4 and common >= max(len(a), len(b)) - 3


def _keyword_hits(facts: Sequence[Fact], sentence: str, case: CaseRecord) -> list[Fact]:
    return [f for f in facts if any(contains_term(sentence, k) for k in _fact_terms(f, case))]


_OVERLAP_STOP = frozenset(
    {stem(w) for w in STOPWORDS}
    | {stem(w) for w in ("did", "start", "long", "going", "feel", "notice", "tell")}
)


def _synonym_hits(facts: Sequence[Fact], sentence: str) -> list[Fact]:
    """Facts naming, in technical words, what the sentence asks in everyday ones."""
    terms = [t for pattern, ts in lx.LAY_SYNONYMS if pattern.search(sentence) for t in ts]
    if not terms:
        return []
    return [f for f in facts if any(contains_term(_fact_haystack(f), t) for t in terms)]


def _overlap(a: str, b: str) -> int:
    sa = {stem(w) for w in words(a) if len(w) > 2} - _OVERLAP_STOP
    sb = {stem(w) for w in words(b) if len(w) > 2}
    return len(sa & sb)


def parse_turn(case: CaseRecord, doctor_turn: str, revealed: Iterable[str] = ()) -> ParsedTurn:
    """The rule-based reading of a doctor turn: requests, topics, keyword hits, intents.

    Pure and cheap (no model): the offline unit completes it with embeddings, the LLM unit uses
    it for exam/test items, intents and safety.
    """
    p = ParsedTurn(finding_ids={f.id for f in [*case.exam_findings, *case.test_results]})
    seen = set(revealed)
    history = [f for f in case.facts if f.category in HISTORY_CATEGORIES]
    for sentence in doctor_sentences(doctor_turn):
        if re.search(r"\bDIAGNOSIS\s*:", sentence):
            continue
        lower = sentence.lower()
        if lx.MANIPULATION.search(lower):
            p.intents.append("manipulation")
            continue
        is_question = "?" in sentence or bool(lx.QUESTION_START.search(lower))
        if lx.DIAGNOSIS_QUERY.search(lower) and not lx.HISTORY_QUESTION.search(lower):
            p.intents.append("diagnosis_query")
            continue
        if _asks_about_condition(case, sentence):
            p.intents.append("diagnosis_query")
            continue
        if _requests(case, sentence, p):
            continue
        if not is_question:
            continue
        p.asked = True
        if lx.YES_NO_START.search(lower):
            p.yes_no = True
        if lx.CHIEF_COMPLAINT.search(lower):
            p.intents.append("chief_complaint")
            continue
        found: list[str] = []
        names: set[str] = set()
        for topic in lx.TOPICS:
            if topic.name in names or (topic.name == "pmh" and "family" in names):
                continue
            if not topic.trigger.search(sentence):
                continue
            names.add(topic.name)
            pool = [f for f in history if f.category in topic.categories]
            if topic.fact_filter is not None:
                pool = [f for f in pool if topic.fact_filter.search(f"{f.text} {f.keywords}")]
            if not pool:
                p.unanswered.append(topic.name)
                continue
            if topic.pick == "best":
                pool = [_best(pool, sentence, case)]
            found.extend(f.id for f in pool)
        found.extend(f.id for f in _keyword_hits(history, sentence, case))
        found.extend(f.id for f in _synonym_hits(history, sentence))
        if not found and lx.ANYTHING_ELSE.search(lower):
            p.intents.append("anything_else")
            nxt = _most_salient_unrevealed(case, seen | set(p.selected))
            if nxt is not None:
                found.append(nxt.id)
        if found:
            p.intents.append("facts")
            p.selected.extend(found)
        elif names:
            # A topic the record is silent on: only a close match in meaning may answer it.
            p.silent_topic_questions.append(sentence)
        else:
            p.open_questions.append(sentence)
    p.selected = in_record_order(case, p.selected)
    return p


def _requests(case: CaseRecord, sentence: str, p: ParsedTurn) -> bool:
    """Handle an exam request or a test order in ``sentence``; ``True`` if it was one.

    A request returns the findings of what it names, and nothing else:

    * a named item ("your heart", "a chest X-ray") returns the findings of that item
      (:func:`finding_items`), narrowed to the part asked for ("your knee" of the joints) and,
      for imaging, to the body part;
    * a finding's own keywords select it ("Let me look for a murmur"), but not where a longer
      name covers them ("heart" in "heart rate" is the heart rate);
    * an examination or test the lexicon does not know ("a slit lamp examination") returns the
      findings labelled with its name, else it is reported missing; it never falls back to the
      whole examination;
    * only a general request ("let me examine you", "a physical exam") returns every finding
      of the examination.
    """
    lower = sentence.lower()
    if lx.PAST_TEST_QUESTION.search(lower):
        return False
    exam_verb = bool(lx.EXAM_VERBS.search(lower))
    test_verb = bool(lx.TEST_VERBS.search(lower))
    spans = _item_spans(sentence, lx.EXAM_ITEMS) if exam_verb else []
    test_spans = _item_spans(sentence, lx.TEST_ITEMS) if test_verb else []
    test_context = test_verb and (bool(test_spans) or bool(lx.TEST_CONTEXT.search(lower)))
    if exam_verb:
        exam_words = _keyword_spans(sentence, case.exam_findings, case)
        if lx.TEST_CONTEXT.search(lower):  # "test your thyroid levels" is no thyroid exam
            exam_words = [s for s in exam_words if normalize(s.ask) not in _TEST_TERMS]
        spans += exam_words
    if test_context:
        spans += _keyword_spans(sentence, case.test_results, case)
    spans = _most_specific([*spans, *test_spans])
    named_exams = _named_requests(sentence, _EXAM_NOUN) if exam_verb else []
    named_tests = _named_requests(sentence, _TEST_NOUN) if test_verb else []
    unknown_exams = _resolve(named_exams, spans, sentence)
    unknown_tests = _resolve(named_tests, spans, sentence)
    general_exam = exam_verb and _general_exam(sentence, named_exams)
    unspecified = (
        test_verb
        and bool(lx.UNSPECIFIED_TESTS.search(lower))
        and not test_spans
        and not unknown_tests
    )
    if not any((spans, unknown_exams, unknown_tests, general_exam, unspecified)):
        return False
    exam_items = [s for s in spans if s.item is not None and s.item.kind == "exam"]
    test_items = [s for s in spans if s.item is not None and s.item.kind == "test"]
    exam_hits = {n: _findings_for(n, case.exam_findings, sentence) for n in exam_items}
    test_hits = {n: _findings_for(n, case.test_results, sentence) for n in test_items}
    direct = [
        s
        for s in spans
        if s.fact is not None
        and _direct_hit_stands(s, exam_hits if s.fact.category == "exam" else test_hits)
    ]
    for named in exam_items:
        p.exam = True
        label = _item_label(named, sentence)
        p.requested.append(label)
        hits = exam_hits[named]
        if hits:
            p.selected.extend(f.id for f in hits)
        else:
            p.missing_exam.append(label)
    for request in unknown_exams:
        name = request.name
        p.exam = True
        p.requested.append(f"{name} examination")
        hits = _by_label(case.exam_findings, name)
        if hits:
            p.selected.extend(f.id for f in hits)
        else:
            p.missing_exam.append(f"{name} examination")
    for named in direct:
        assert named.fact is not None
        if named.fact.category == "exam":
            p.exam = True
        else:
            p.test = True
        p.selected.append(named.fact.id)
    if general_exam and not exam_items and not unknown_exams and not direct:
        p.exam = True
        p.requested.append("physical examination")
        p.selected.extend(f.id for f in case.exam_findings)
        if not case.exam_findings:
            p.missing_exam.append("physical examination")
    for named in test_items:
        p.test = True
        label = _item_label(named, sentence)
        p.requested.append(label)
        hits = test_hits[named]
        if hits:
            p.selected.extend(f.id for f in hits)
        else:
            p.missing_test.append(label)
    for request in unknown_tests:
        name = request.name
        p.test = True
        p.requested.append(f"{name} test")
        hits = _by_label(case.test_results, name)
        if hits:
            p.selected.extend(f.id for f in hits)
        else:
            p.missing_test.append(f"{name} test")
    if unspecified and not any(s.fact is not None and s.fact.category == "test" for s in direct):
        p.test = True
        p.requested.append(UNSPECIFIED_TESTS)
        p.missing_test.append(UNSPECIFIED_TESTS)
    return True


def _direct_hit_stands(named: _Named, item_hits: dict[_Named, list[Fact]]) -> bool:
    """Whether a finding selected by its own keyword stays selected.

    When the sentence also names items of the same kind ("an internal pelvic examination"), a
    keyword of another finding ("internal" of "Range of motion, internal rotation") selects it
    only if it is that finding's label, or the finding is one of those items'.
    """
    assert named.fact is not None
    if not item_hits:
        return True
    if any(named.fact in hits for hits in item_hits.values()):
        return True
    label = _label(named.fact)
    if label is None:
        return False
    names = {normalize(x) for x in (*label, label_text(named.fact) or "") if x}
    return normalize(named.ask) in names


def _general_exam(sentence: str, named_exams: Sequence[_Request]) -> bool:
    """Whether the sentence asks for the whole examination ("let me examine you").

    "exam" or "examination" after a name ("a slit lamp examination") is that examination, not
    the general one.
    """
    for m in lx.GENERAL_EXAM.finditer(sentence):
        bare = m.group(0).lower() in ("exam", "examination")
        if bare and any(r.name_end <= m.start() < r.end for r in named_exams):
            continue
        return True
    return False


def _best(pool: Sequence[Fact], sentence: str, case: CaseRecord) -> Fact:
    """The fact of ``pool`` that best fits the sentence (then the chief complaint, then order)."""

    def score(item: tuple[int, Fact]) -> tuple[int, int, int, int]:
        index, fact = item
        keyword = int(any(contains_term(sentence, k) for k in _fact_terms(fact, case)))
        return (
            keyword,
            _overlap(sentence, _fact_haystack(fact)),
            _overlap(case.chief_complaint, _fact_haystack(fact)),
            -index,
        )

    return max(enumerate(pool), key=score)[1]


def _most_salient_unrevealed(case: CaseRecord, revealed: set[str]) -> Fact | None:
    """The first untold symptom (else the first untold present-illness history fact).

    A symptom the chief complaint already names is not news: it comes after the others.
    """
    symptoms = [f for f in case.facts if f.category == "symptom" and f.id not in revealed]
    fresh = [f for f in symptoms if not _keyword_hits([f], case.chief_complaint, case)]
    if fresh or symptoms:
        return (fresh or symptoms)[0]
    for fact in case.facts:
        if fact.category == "history" and fact.id not in revealed and lx.DURATION.search(fact.text):
            return fact
    return None


def in_record_order(case: CaseRecord, ids: Iterable[str]) -> list[str]:
    """The ids among ``ids`` that name facts of ``case``, once each, in record order."""
    wanted = set(ids)
    return [f.id for f in case.all_facts() if f.id in wanted]
