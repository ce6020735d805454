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
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from medverify.cases.keywords import specific_keywords
from medverify.cases.records import HISTORY_CATEGORIES, CaseRecord, Fact
from medverify.text import lexicon as lx
from medverify.text.matching import (
    STOPWORDS,
    contains_term,
    find_term,
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
    return f"{fact.id.replace('_', ' ')} {fact.text} {' '.join(fact.keywords)}"


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


def _items_in(sentence: str, items: Sequence[lx.Item]) -> list[lx.Item]:
    """The exam or test items a sentence names, the most specific of overlapping names.

    "heart rate" is not also "heart"; "chest X-ray" is not also "X-ray"; "back of your eyes" is
    fundoscopy, not also "eyes".
    """
    spans: list[tuple[int, int, lx.Item]] = []
    for item in items:
        best = None
        for ask in item.ask:
            m = find_term(sentence, ask)
            if m and (best is None or m.end() - m.start() > best[1] - best[0]):
                best = (m.start(), m.end())
        if best is not None:
            spans.append((best[0], best[1], item))
    found = []
    for start, end, item in spans:
        inside = any((s <= start and end <= e) and (e - s) > (end - start) for s, e, _ in spans)
        if not inside:
            found.append(item)
    names = {i.name for i in found}
    if "cranial nerves" in names:
        found = [i for i in found if i.name != "neurological"]
    if any(i.name in lx.BLOOD_ITEMS for i in found):
        found = [i for i in found if i.name != "blood tests"]
    return found


def _findings_for(item: lx.Item, findings: Sequence[Fact], sentence: str) -> list[Fact]:
    hits = [f for f in findings if any(contains_term(_fact_haystack(f), m) for m in item.match)]
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


def _item_label(item: lx.Item, sentence: str) -> str:
    if item.imaging:
        for part, names in lx.BODY_PARTS.items():
            if any(contains_term(sentence, n) for n in names):
                return f"{item.name} ({part})"
    return item.name


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
    p = ParsedTurn()
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
    """Handle an exam request or a test order in ``sentence``; ``True`` if it was one."""
    lower = sentence.lower()
    if lx.PAST_TEST_QUESTION.search(lower):
        return False
    exam_items = _items_in(sentence, lx.EXAM_ITEMS) if lx.EXAM_VERBS.search(lower) else []
    test_items = _items_in(sentence, lx.TEST_ITEMS) if lx.TEST_VERBS.search(lower) else []
    exam_verb = bool(lx.EXAM_VERBS.search(lower))
    test_verb = bool(lx.TEST_VERBS.search(lower))
    test_context = test_verb and (bool(test_items) or bool(lx.TEST_CONTEXT.search(lower)))
    direct_tests = _keyword_hits(case.test_results, sentence, case) if test_context else []
    direct_exams = _keyword_hits(case.exam_findings, sentence, case) if exam_verb else []
    general_exam = exam_verb and bool(lx.GENERAL_EXAM.search(lower))
    unspecified = test_verb and bool(lx.UNSPECIFIED_TESTS.search(lower)) and not test_items
    if not any((exam_items, test_items, direct_tests, direct_exams, general_exam, unspecified)):
        return False
    for item in exam_items:
        p.exam = True
        p.requested.append(item.name)
        hits = _findings_for(item, case.exam_findings, sentence)
        if hits:
            p.selected.extend(f.id for f in hits)
        else:
            p.missing_exam.append(item.name)
    for fact in direct_exams:
        p.exam = True
        p.selected.append(fact.id)
    if general_exam and not exam_items and not direct_exams:
        p.exam = True
        p.requested.append("physical examination")
        p.selected.extend(f.id for f in case.exam_findings)
        if not case.exam_findings:
            p.missing_exam.append("physical examination")
    for item in test_items:
        p.test = True
        label = _item_label(item, sentence)
        p.requested.append(label)
        hits = _findings_for(item, case.test_results, sentence)
        if hits:
            p.selected.extend(f.id for f in hits)
        else:
            p.missing_test.append(label)
    for fact in direct_tests:
        p.test = True
        p.selected.append(fact.id)
    if unspecified and not direct_tests:
        p.test = True
        p.requested.append(UNSPECIFIED_TESTS)
        p.missing_test.append(UNSPECIFIED_TESTS)
    return True


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
