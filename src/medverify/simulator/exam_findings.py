"""Which exam or test item a finding of the record belongs to, and which findings answer it.

A request for an item ("let me listen to your heart", "a chest X-ray") must return the findings
*of that item* and nothing else, and scripted doctors need to know in advance what a request
should bring. Both rest on the same question, asked of the record alone: which items is this
finding a finding of? This module answers it (:func:`finding_items`, :func:`findings_of`), apart
from the reading of the doctor's sentence (:mod:`~medverify.simulator.exam_requests`). It is
pure and cheap: no model, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from medverify.cases.records import Fact
from medverify.text import lexicon as lx
from medverify.text.matching import contains_term, find_term, words


def fact_haystack(fact: Fact) -> str:
    """The words that name a fact: its id (when it is a name), its text and its keywords."""
    # A named id ("cn_ptosis") says what the fact is; a numbered one ("t4") must not read as T4.
    name = "" if re.fullmatch(r"[a-z]{1,2}\d+", fact.id) else fact.id.replace("_", " ")
    return f"{name} {fact.text} {' '.join(fact.keywords)}"


@dataclass(frozen=True)
class Named:
    """A stretch of the sentence that names an exam or test item (or a finding, by keyword)."""

    start: int
    end: int
    item: lx.Item | None = None
    ask: str = ""
    fact: Fact | None = None

    def inside(self, other: Named) -> bool:
        """Strictly inside ``other`` (a shorter name within a longer one)."""
        return (
            other.start <= self.start
            and self.end <= other.end
            and (other.end - other.start) > (self.end - self.start)
        )


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
def item_terms(item: lx.Item) -> tuple[tuple[str, bool], ...]:
    """``(term, strong)`` for every word that names the item (asks, match words, label words)."""
    weak = lx.ITEM_WEAK_TERMS.get(item.name, frozenset())
    names = dict.fromkeys([*item.ask, *item.match, *lx.ITEM_EXTRA_TERMS.get(item.name, ())])
    return tuple((t, t not in weak) for t in names)


def _named_items(
    text: str, items: Sequence[lx.Item], *, weak_alone: bool, strong_only: bool = False
) -> set[str]:
    """The items a piece of finding text names (most specific of overlapping names).

    Weak words place it only when no item is named by a strong word (``weak_alone``), or, in a
    label, when they name exactly one item ("Range of motion, abduction"); never with
    ``strong_only``.
    """
    strong: list[Named] = []
    weak: list[Named] = []
    shadows = [Named(m.start(), m.end()) for m in _NOT_AN_ITEM.finditer(text)]
    for item in items:
        for term, is_strong in item_terms(item):
            m = find_term(text, term)
            if m and not any(s.start <= m.start() and m.end() <= s.end for s in shadows):
                (strong if is_strong else weak).append(Named(m.start(), m.end(), item, term))
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


def label_parts(fact: Fact) -> tuple[str, str] | None:
    """``(group, rest)`` of a finding's label ("Abdominal examination", "palpation"), if any."""
    m = _LABEL.match(fact.text)
    if not m or len(words(m.group(1))) > 10:
        return None
    group, _, rest = m.group(1).partition(", ")
    return group.strip(), rest.strip()


def label_text(fact: Fact) -> str | None:
    """A finding's label as written ("Abdominal examination, palpation"), if it has one."""
    label = label_parts(fact)
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
    label = label_parts(fact)
    m = _LABEL.match(fact.text)
    value = fact.text[m.end() :] if label and m else fact.text
    if label is None:
        found = _named_items(fact_haystack(fact), items, weak_alone=True)
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

    What :func:`~medverify.simulator.doctor_turn.parse_turn` returns for "Let me examine your
    lungs" (before any narrowing to a part or body part); scripted doctors use it to know what a
    request should bring.
    """
    items = lx.TEST_ITEMS if item.kind == "test" else lx.EXAM_ITEMS
    return [f for f in findings if _covers(item, f, finding_items(f, items))]
