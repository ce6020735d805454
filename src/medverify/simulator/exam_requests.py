"""Reading an exam request or a test order in a doctor's sentence, and what it returns.

A request returns the findings of what it names and nothing else: "Let me listen to your heart"
returns the heart findings (not "Heart rate: 72 bpm"), "a slit lamp examination" returns the
slit-lamp finding or is reported missing, and only a general request ("let me examine you")
returns the whole examination. Which item a finding belongs to comes from its own label when it
has one ("Abdominal examination, auscultation: ..." is the abdomen, not the lungs), see
:func:`~medverify.simulator.exam_findings.finding_items`.

This is the request half of the rule-based reading of a doctor turn
(:func:`~medverify.simulator.doctor_turn.parse_turn` hands it each sentence first): finding the
items, keywords and unknown names a sentence requests, narrowing them to a part or body part,
and recording the findings selected or missing. It is pure and cheap: no model, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from medverify.cases.keywords import specific_keywords
from medverify.cases.records import CaseRecord, Fact
from medverify.simulator.exam_findings import (
    Named,
    fact_haystack,
    findings_of,
    item_terms,
    label_parts,
    label_text,
)
from medverify.text import lexicon as lx
from medverify.text.matching import STOPWORDS, contains_term, find_term, normalize, words

if TYPE_CHECKING:
    from medverify.simulator.doctor_turn import ParsedTurn

#: A requested test given without saying which: the narrator asks the doctor to name it.
UNSPECIFIED_TESTS = "unspecified tests"


def fact_terms(fact: Fact, case: CaseRecord) -> list[str]:
    """The keywords that single ``fact`` out in ``case`` (its specific keywords)."""
    return specific_keywords(case).get(fact.id, [])


def _item_spans(sentence: str, items: Sequence[lx.Item]) -> list[Named]:
    """Where the sentence names each item (its longest ask), before overlaps are resolved."""
    spans = []
    for item in items:
        best: Named | None = None
        for ask in item.ask:
            m = find_term(sentence, ask)
            if m and (best is None or m.end() - m.start() > best.end - best.start):
                best = Named(m.start(), m.end(), item, ask)
        if best is not None:
            spans.append(best)
    return spans


def _most_specific(spans: list[Named]) -> list[Named]:
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


def _findings_for(named: Named, findings: Sequence[Fact], sentence: str) -> list[Fact]:
    """The findings of the requested item, narrowed to the asked part or body part."""
    item = named.item
    assert item is not None
    hits = findings_of(item, findings)
    asked = lx.ASKED_PARTS.get(named.ask.lower())
    parts = lx.ITEM_PARTS.get(item.name, {})
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
            hits = [f for f in hits if any(contains_term(fact_haystack(f), n) for n in allowed)]
    return hits


def _item_label(named: Named, sentence: str) -> str:
    item = named.item
    assert item is not None
    if item.imaging:
        for part, names in lx.BODY_PARTS.items():
            if any(contains_term(sentence, n) for n in names):
                return f"{item.name} ({part})"
    if named.ask.lower() in lx.ASKED_PARTS:
        return named.ask.lower()
    return item.name


def _part_of(fact: Fact, parts: dict[str, tuple[str, ...]]) -> str | None:
    """The part (of ``parts``) a finding names first, if any."""
    haystack = fact_haystack(fact)
    first: tuple[int, str] | None = None
    for part, terms in parts.items():
        for term in terms:
            m = find_term(haystack, term)
            if m and (first is None or m.start() < first[0]):
                first = (m.start(), part)
    return first[1] if first else None


#: Every term of the exam and test lexicon: such a word inside a longer keyword of a finding
#: ("heart" of "heart rate", "blood" of "blood pressure") does not name that finding alone.
_TEST_TERMS = frozenset(normalize(t) for i in lx.TEST_ITEMS for t, _ in item_terms(i))
_LEXICON_TERMS = frozenset(
    normalize(t) for i in (*lx.EXAM_ITEMS, *lx.TEST_ITEMS) for t, _ in item_terms(i)
)


def _finding_keywords(fact: Fact, case: CaseRecord) -> list[str]:
    """The keywords that name a finding when a request says them.

    Its specific keywords, less a lexicon word that is only part of a longer keyword of the same
    finding: "Let me listen to your heart" is not a request for "Heart rate: 72 bpm".
    """
    label = label_parts(fact)
    own = normalize(", ".join(x for x in label if x)) if label else ""
    longer = [normalize(k) for k in fact.keywords]
    out = []
    for keyword in fact_terms(fact, case):
        norm = normalize(keyword)
        part_of_longer = any(norm != k and re.search(rf"\b{re.escape(norm)}\b", k) for k in longer)
        if norm in _LEXICON_TERMS and part_of_longer and norm != own:
            continue
        out.append(keyword)
    return out


def _keyword_spans(sentence: str, facts: Sequence[Fact], case: CaseRecord) -> list[Named]:
    """Where the sentence names a finding: by one of its keywords, or by its whole label."""
    spans = []
    for fact in facts:
        label = label_text(fact)
        names = [*_finding_keywords(fact, case), *([label] if label and "," in label else [])]
        for name in names:
            m = find_term(sentence, name)
            if m:
                spans.append(Named(m.start(), m.end(), fact=fact, ask=name))
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


def _resolve(requests: list[_Request], spans: list[Named], sentence: str) -> list[_Request]:
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


def read_requests(case: CaseRecord, sentence: str, p: ParsedTurn) -> bool:
    """Handle an exam request or a test order in ``sentence``; ``True`` if it was one.

    A request returns the findings of what it names, and nothing else:

    * a named item ("your heart", "a chest X-ray") returns the findings of that item
      (:func:`~medverify.simulator.exam_findings.finding_items`), narrowed to the part asked
      for ("your knee" of the joints) and, for imaging, to the body part;
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


def _direct_hit_stands(named: Named, item_hits: dict[Named, list[Fact]]) -> bool:
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
    label = label_parts(named.fact)
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
