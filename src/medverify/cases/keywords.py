"""Which of a fact's keywords identify it: the words that decide a fact was asked about.

The Fact Unit selects facts by them, the Guard blocks replies that would leak them, and the rubric
generator words its history items with them, so they are a property of the case, computed once.
"""

from __future__ import annotations

from medverify.cases.records import CaseRecord
from medverify.text import lexicon as lx
from medverify.text.matching import STOPWORDS, normalize, words

_SPECIFIC_CACHE: dict[tuple, dict[str, list[str]]] = {}


def specific_keywords(case: CaseRecord) -> dict[str, list[str]]:
    """Each fact's keywords that identify it: used by no other fact, not a generic word.

    Imported records keep every content word as a keyword ("days", "elevated", "symptoms");
    such words match many doctor questions and must not select a fact (or, in the Guard, block a
    reply) on their own.
    """
    key = (case.id, tuple((f.id, tuple(f.keywords)) for f in case.all_facts()))
    cached = _SPECIFIC_CACHE.get(key)
    if cached is not None:
        return cached
    owners: dict[str, set[str]] = {}
    for fact in case.all_facts():
        for keyword in fact.keywords:
            owners.setdefault(normalize(keyword), set()).add(fact.id)
    out: dict[str, list[str]] = {}
    for fact in case.all_facts():
        keep = []
        for keyword in fact.keywords:
            norm = normalize(keyword)
            tokens = words(norm)
            if len(norm) < 3 or len(owners.get(norm, ())) > 1 or not tokens:
                continue
            if all(t in lx.GENERIC_WORDS or t in STOPWORDS or t.isdigit() for t in tokens):
                continue
            if len(tokens) == 1 and len(tokens[0]) < 3:
                continue
            keep.append(keyword)
        out[fact.id] = keep
    if len(_SPECIFIC_CACHE) > 512:
        _SPECIFIC_CACHE.clear()
    _SPECIFIC_CACHE[key] = out
    return out
