"""How the rubric core words a fact as a checkable criterion.

A grader reads the doctor's lines of a transcript and must be able to say whether "Asks about
X" happened, so a criterion names X in the record's own words: the clauses of the fact that
carry its identifying keywords, without the subject ("The patient reports ..."), the
parentheses, and what the chief complaint already says (the patient volunteers that unasked).
"Patient denies experiencing any chest pain, palpitations, or recent infections" becomes "chest
pain, palpitations or recent infections". Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from medverify.text import lexicon as lx
from medverify.text.matching import STOPWORDS, contains_term, normalize, stem, words

_LEADS = re.compile(
    r"^(?:(?:the |this )?(?:patient|pt|child|boy|girl|man|woman|mother|father|she|he|they)(?:'s)?"
    r"\s+(?:also\s+|further\s+|additionally\s+|currently\s+|now\s+)?"
    r"(?:reports?|notes?|noted|mentions?|mentioned|says|said|states?|stated|describes?|explains?"
    r"|complains? of|presents? with|experiences?|has had|has been|had|has|have|is|was|denies"
    r"|reveals?|admits? to|endorses?|recalls?|remembers?|feels|felt)"
    r"(?:\s+that)?(?:\s+(?:experiencing|having|any|a|an|some))*\s+)",
    re.IGNORECASE,
)
_HISTORY_OF = re.compile(
    r"^(?:an?\s+)?(?:\d+|one|two|three|several|few)[- ](?:day|week|month|year)s?[- ](?:long\s+)?"
    r"history of\s+(?:experiencing\s+)?|^(?:a\s+)?history of\s+",
    re.IGNORECASE,
)
_LABEL = re.compile(r"^[A-Z][A-Za-z ,/&'\-]{2,50}:\s*")
_PARENS = re.compile(r"\s*\([^)]*\)")
_SPLIT = re.compile(r"\s*[,;]\s*|\s+(?:and|or|as well as)\s+(?=[a-z])", re.IGNORECASE)
_SUBJECT = re.compile(
    r"^(?:specifically|recently|currently|also|additionally|now)\s*,?\s+"
    r"|^(?:the )?(?:patient|pt|he|she|they)\s+(?:has\s+|had\s+|is\s+|was\s+)?(?=[a-z]+ed\b)"
    r"|^(?:the )?(?:patient|pt|he|she|they)\s+(?:has|had|is|was)\s+(?=(?:an?|the|some)\s)"
    r"|^(?:has|had|with)\s+(?:a\s+)?(?:known\s+)?(?:history of\s+)?"
    r"|^(?:reports?|notes?|mentions?|complains? of|presents? with|describes?)\s+"
    r"|^(?:on (?:physical )?examination,?\s*)"
    r"|^(?:[a-z]+\s+){0,2}(?:examination|exam|imaging)\s+(?:shows|showed|reveals|revealed)\s+",
    re.IGNORECASE,
)
_NEGATIVE = re.compile(
    r"^(?:the )?(?:patient|pt|she|he|they)?\s*(?:denies|reports no|has no|had no|no history of)"
    r"|^no\b|^denies\b|^negative for\b|^without\b"
    r"|^(?:the )?(?:patient|pt|she|he|they)\s+(?:has|have|had|does|did)\s+not\b",
    re.IGNORECASE,
)
_UNINFORMATIVE = re.compile(
    r"^(?:past medical history:\s*)?(?:unremarkable|non-?contributory|none|nil)\.?$"
    r"|no significant (?:past )?(?:medical|surgical|psychiatric)|previously healthy"
    r"|generally healthy|otherwise healthy|^(?:medical )?history is unremarkable",
    re.IGNORECASE,
)
_MAX_CLAUSE_CHARS = 70


def is_negative(text: str) -> bool:
    """Whether a fact is a pertinent negative ("Denies chest pain", "No history of trauma")."""
    return bool(_NEGATIVE.search(_strip_label(text).strip()))


def is_uninformative(text: str) -> bool:
    """Whether a fact says nothing a question could be about ("Past medical history: none")."""
    return bool(_UNINFORMATIVE.search(text.strip()))


def _strip_label(text: str) -> str:
    return _LABEL.sub("", text.strip(), count=1)


def clauses(text: str) -> list[str]:
    """The content clauses of a fact's text, subject and framing removed, in text order."""
    body = _PARENS.sub("", _strip_label(text)).strip().rstrip(".")
    body = _LEADS.sub("", body, count=1)
    for _ in range(2):
        body = _SUBJECT.sub("", body, count=1)
    body = re.sub(
        r"^(?:denies|no history of|reports no|has no|no|not (?:had|noticed|experienced|taken?|"
        r"used|seen))\s+(?:experiencing\s+|any\s+|particular\s+)*",
        "",
        body,
        flags=re.IGNORECASE,
    )
    body = _HISTORY_OF.sub("", body, count=1)
    out = []
    for part in _SPLIT.split(body):
        part = re.sub(r"^(?:and|or|any|also|a|an)\s+", "", part.strip(), flags=re.IGNORECASE)
        part = _SUBJECT.sub("", part, count=1)
        part = part.strip(" .:")
        if part and words(part):
            out.append(part)
    return out


def _content(text: str) -> set[str]:
    return {
        stem(w)
        for w in words(text)
        if w not in STOPWORDS and w not in lx.GENERIC_WORDS and len(w) > 2
    }


def topic_of(text: str, exclude: Iterable[str] = (), *, max_clauses: int = 3) -> str:
    """A short phrase naming what a fact is about, for 'Asks about <phrase>'.

    Clauses that only repeat words of ``exclude`` (the chief complaint) are dropped, at most three
    are kept, each at most ~70 characters. Empty when nothing is left to ask.

    Args:
        text: the fact's text.
        exclude: texts whose words the phrase need not repeat (the chief complaint).
        max_clauses: most clauses kept.

    Returns:
        The phrase, or an empty string.
    """
    known = set().union(*(_content(t) for t in exclude)) if exclude else set()
    picked: list[str] = []
    for clause in clauses(text):
        new = _content(clause) - known
        if not new:
            continue
        if len(clause) > _MAX_CLAUSE_CHARS:
            cut = clause[:_MAX_CLAUSE_CHARS].rsplit(" ", 1)[0].split()
            while cut and cut[-1].lower() in STOPWORDS:
                cut.pop()
            clause = " ".join(cut)
        picked.append(clause[0].lower() + clause[1:] if not clause[:2].isupper() else clause)
        if len(picked) == max_clauses:
            break
    return join_or(picked)


def join_or(parts: Sequence[str], conj: str = "or") -> str:
    """``a``, ``a or b``, ``a, b or c``.

    Args:
        parts: the phrases; empty ones are skipped.
        conj: the word before the last phrase.

    Returns:
        The joined phrase.
    """
    parts = [p for p in parts if p]
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} {conj} {parts[-1]}"


def key_terms(text: str, keywords: Sequence[str], *, limit: int = 3) -> list[str]:
    """The most telling keywords of a fact, longest phrases first, none inside another.

    Args:
        text: the fact's text (the result follows the order of its mentions).
        keywords: the candidate keywords.
        limit: most keywords kept.

    Returns:
        The chosen keywords, in the order ``text`` mentions them.
    """
    chosen: list[str] = []
    for kw in sorted(dict.fromkeys(keywords), key=lambda k: (-len(words(k)), -len(k))):
        norm = normalize(kw)
        toks = words(norm)
        if not toks or all(t in STOPWORDS or t in lx.GENERIC_WORDS or t.isdigit() for t in toks):
            continue
        if any(contains_term(c, norm) for c in chosen):
            continue
        chosen.append(kw)
        if len(chosen) == limit:
            break
    # Read them in the order the fact's text mentions them.
    low = text.lower()
    return sorted(chosen, key=lambda k: low.find(k.lower()) if k.lower() in low else len(low))


def complaint_phrase(chief_complaint: str) -> str:
    """What the patient came with, as a noun phrase ("double vision"), or "the symptoms"."""
    text = chief_complaint.strip().rstrip(".!")
    m = re.search(r"\bbecause (?:of |my |i )?(.+)$|\b(?:with|about|for) (.+)$", text, re.IGNORECASE)
    phrase = (m.group(1) or m.group(2)) if m else ""
    phrase = re.sub(r"^(?:a |an |the |my |some )", "", phrase.strip(), flags=re.IGNORECASE)
    phrase = _HISTORY_OF.sub("", phrase)
    phrase = re.sub(
        r"\s+(?:for|over|since|in) (?:the )?(?:past |last )?(?:\d+|a|one|two|three|few|several)?"
        r"\s*(?:hours?|days?|weeks?|months?|years?)\b.*$",
        "",
        phrase,
        flags=re.IGNORECASE,
    )
    if not phrase or len(phrase) > 60:
        return "the symptoms"
    return phrase


def short_finding(text: str, *, limit: int = 80) -> str:
    """A finding's text trimmed for a parenthesis ("ptosis that worsens with upward gaze").

    Args:
        text: the finding's text.
        limit: most characters before it is cut at a word and ends in "...".

    Returns:
        The trimmed text.
    """
    body = _PARENS.sub("", _strip_label(text)).strip().rstrip(".")
    if len(words(body)) <= 2:  # "Present": the label carries the meaning
        body = _PARENS.sub("", text).strip().rstrip(".")
    if len(body) > limit:
        body = body[:limit].rsplit(" ", 1)[0] + "..."
    return body


def finding_label(text: str) -> str | None:
    """The label of a finding ("Acetylcholine receptor antibodies: Present" -> its label)."""
    if ":" not in text:
        return None
    label = text.split(":", 1)[0].strip()
    label = re.sub(r"\s+(?:findings?|results?|levels?)$", "", label, flags=re.IGNORECASE)
    if not label or len(words(label)) > 6:
        return None
    return label


def finding_name(text: str, *, limit: int = 50) -> str:
    """How a finding is named in a criterion: its label, else its text without the subject.

    Args:
        text: the finding's text.
        limit: most characters of an unlabelled finding's text (cut at a word).

    Returns:
        The name.
    """
    label = finding_label(text)
    if label:
        return label[0].lower() + label[1:] if not label[:2].isupper() else label
    body = _PARENS.sub("", text).strip().rstrip(".")
    body = _LEADS.sub("", body, count=1)
    for _ in range(2):
        body = _SUBJECT.sub("", body, count=1)
    if len(body) > limit:
        cut = body[:limit].rsplit(" ", 1)[0].split()
        while cut and cut[-1].lower().strip(",") in STOPWORDS:
            cut.pop()
        body = " ".join(cut).rstrip(",")
    return body
