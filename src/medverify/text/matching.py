"""Word-level text matching shared by the Fact Unit, the Guard and the quality suite.

The Fact Unit looks for a fact's keywords in the doctor's turn; the Guard looks for the diagnosis,
the differential and unrevealed keywords in the patient's turn; the quality suite checks the same
things independently. All of them need the same notion of "this term occurs in this text":
case-insensitive, on word boundaries (``"rest"`` is not in ``"arrest"``, ``"light"`` is not in
``"light-headed"``), tolerant of obvious variants (plural ``-s``/``-es``, possessive ``'s``, a
hyphen or a space between words: ``"non-smoker"`` matches ``"non smoker"``). Pure functions;
patterns are compiled once and cached.
"""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")

#: Words that carry no content: ignored when comparing vocabularies.
STOPWORDS = frozenset(
    re.findall(
        r"\S+",
        """a an the and or but if then so of to in on at by for with without from into onto over
    under about after before during since until as than that this these those there here it its
    it's is am are was were be been being do does did doing done have has had having i i'm i've
    i'd i'll me my mine myself you your yours we our us they them their he him his she her
    what when where which who whom why how not no nor don't didn't doesn't haven't hasn't isn't
    aren't wasn't weren't can can't could would should will shall may might must just also very
    too quite really some any all each every both either neither more most much many few little
    one ones yes okay ok oh well up down out off again once only own same such other another
    s t d ll m re ve y""",
    )
)


def words(text: str) -> list[str]:
    """Lower-case word tokens (letters, digits, an inner apostrophe)."""
    return _WORD.findall(text.lower().replace("’", "'"))


def stem(word: str) -> str:
    """A crude stem, so that "smoker" and "smoke", "headaches" and "headache" compare equal."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    for suffix in ("ing", "ers", "er", "ied", "ies", "ed", "es", "ly", "s", "e", "y"):
        if len(w) - len(suffix) >= 3 and w.endswith(suffix):
            w = w[: -len(suffix)]
            if suffix in ("ied", "ies", "y"):
                w += "i"
            break
    return w


def split_sentences(text: str) -> list[str]:
    """Sentences of a short utterance (on ``.``, ``!``, ``?`` followed by space, and newlines)."""
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def normalize(term: str) -> str:
    """Lower case, hyphens and runs of spaces as one space, curly apostrophes straightened."""
    t = term.lower().replace("’", "'").replace("-", " ")
    return re.sub(r"\s+", " ", t).strip()


@lru_cache(maxsize=8192)
def term_pattern(term: str) -> re.Pattern[str] | None:
    """A regex that finds ``term`` and its obvious variants on word boundaries.

    Variants: any case; hyphen, space or nothing between the words; ``-s``/``-es``/``'s`` on the
    last word, or without a final ``s`` when the term has one. ``None`` for an empty term.
    """
    parts = [re.escape(p).replace("'", "['’]") for p in re.split(r"[\s\-]+", normalize(term)) if p]
    if not parts:
        return None
    last = parts[-1]
    if last.endswith("s") and len(last) > 3:
        last = f"{last[:-1]}(?:s|es)?"
    elif last.endswith("y") and len(last) > 3:
        last = f"(?:{last}|{last[:-1]}ies)"
    parts[-1] = last + r"(?:s|es|'s|’s)?"
    body = r"[\s\-]*".join(parts)
    return re.compile(rf"(?<![\w\-]){body}(?![\w\-])", re.IGNORECASE)


def contains_term(text: str, term: str) -> bool:
    """Whether ``term`` (or a variant) occurs in ``text`` as whole words."""
    pattern = term_pattern(term)
    return bool(pattern and pattern.search(text))


def find_term(text: str, term: str) -> re.Match[str] | None:
    """The first occurrence of ``term`` (or a variant) in ``text``."""
    pattern = term_pattern(term)
    return pattern.search(text) if pattern else None


def initialism(name: str) -> str | None:
    """Upper-case initials of a 2-5 word name ("Multiple sclerosis" -> "MS"), else ``None``."""
    parts = [p for p in re.split(r"[\s\-]+", name.strip()) if p and p[0].isalpha()]
    if not 2 <= len(parts) <= 5:
        return None
    return "".join(p[0].upper() for p in parts)


def mentions(haystack: str, needle: str) -> bool:
    """Case-insensitive whole-phrase containment (ignores punctuation differences)."""
    norm_needle = _normalize_phrase(needle)
    if not norm_needle:
        return False
    return f" {norm_needle} " in f" {_normalize_phrase(haystack)} "


def _normalize_phrase(text: str) -> str:
    text = text.lower().replace("’", "'").replace("'s ", " ")
    return " ".join(re.findall(r"[a-z0-9]+", text))
