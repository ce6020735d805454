"""Reading a doctor's turn by rules: its sentences, questions, topics, exam and test requests.

The Fact Unit decides which facts of the record a doctor's turn asks about; most of that decision
needs no model. This module is the rule-based half, kept apart because both Fact Units build on
it: the offline unit completes its reading with sentence embeddings, the LLM unit trusts it for
what a model must not decide (exam and test items, diagnosis questions, attempts to break
character, items the record lacks). It is pure and cheap: no model, no I/O.

A sentence is an exam request, a test order, a question on a known topic (medications, allergies,
onset, pain character ... from :mod:`medverify.text.lexicon`), a question naming one of a fact's
keywords, or an open question left for matching by meaning. Diagnosis questions and attempts to
make the patient print its record select nothing. Exam requests and test orders are read by
:mod:`~medverify.simulator.exam_requests`; which findings they return is decided by
:mod:`~medverify.simulator.exam_findings`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from medverify.cases.records import HISTORY_CATEGORIES, CaseRecord, Fact
from medverify.simulator.exam_findings import fact_haystack
from medverify.simulator.exam_requests import UNSPECIFIED_TESTS, fact_terms, read_requests
from medverify.text import lexicon as lx
from medverify.text.matching import STOPWORDS, contains_term, split_sentences, stem, words

__all__ = [
    "UNSPECIFIED_TESTS",
    "Intent",
    "Kind",
    "ParsedTurn",
    "doctor_sentences",
    "in_record_order",
    "parse_turn",
]


#: What a turn does: orders a test, requests an examination, asks a question, or none of these.
Kind = Literal["question", "exam", "test", "other"]
#: Why a turn is answered the way it is: facts asked for, a diagnosis question, a role-play trick...
Intent = Literal[
    "facts", "chief_complaint", "anything_else", "diagnosis_query", "manipulation", "none"
]


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
        volunteered: facts selected only because the turn invited more ("anything else?",
            "tell me more"), not because it asked about them.
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
    volunteered: list[str] = field(default_factory=list)
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


def _keyword_hits(facts: Sequence[Fact], sentence: str, case: CaseRecord) -> list[Fact]:
    return [f for f in facts if any(contains_term(sentence, k) for k in fact_terms(f, case))]


_OVERLAP_STOP = frozenset(
    {stem(w) for w in STOPWORDS}
    | {stem(w) for w in ("did", "start", "long", "going", "feel", "notice", "tell")}
)


def _synonym_hits(facts: Sequence[Fact], sentence: str) -> list[Fact]:
    """Facts naming, in technical words, what the sentence asks in everyday ones."""
    terms = [t for pattern, ts in lx.LAY_SYNONYMS if pattern.search(sentence) for t in ts]
    if not terms:
        return []
    return [f for f in facts if any(contains_term(fact_haystack(f), t) for t in terms)]


def _overlap(a: str, b: str) -> int:
    sa = {stem(w) for w in words(a) if len(w) > 2} - _OVERLAP_STOP
    sb = {stem(w) for w in words(b) if len(w) > 2}
    return len(sa & sb)


#: A line in the simulator's own report format (``[Exam] ...``, ``[Test] ...``).
_REPORTED = re.compile(r"\s*\[(?:exam|test|result|lab)s?\]", re.IGNORECASE)


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
        if _REPORTED.match(sentence):
            # The doctor writing a finding in the simulator's report format ("[Exam]
            # Temperature: 36.8") made it up; it requests nothing. Read as a request, it
            # handed a trained doctor the record's real findings for fabricated ones.
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
        if read_requests(case, sentence, p):
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
                p.volunteered.append(nxt.id)
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


def _best(pool: Sequence[Fact], sentence: str, case: CaseRecord) -> Fact:
    """The fact of ``pool`` that best fits the sentence (then the chief complaint, then order)."""

    def score(item: tuple[int, Fact]) -> tuple[int, int, int, int]:
        index, fact = item
        keyword = int(any(contains_term(sentence, k) for k in fact_terms(fact, case)))
        return (
            keyword,
            _overlap(sentence, fact_haystack(fact)),
            _overlap(case.chief_complaint, fact_haystack(fact)),
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
