"""The Guard: a last check on every patient turn before the doctor sees it.

The Fact Unit and the Affective Unit are built not to leak, but a patient model can still
improvise, and record text can carry a name it should not ("Chest CT: no thymoma" when thymoma is
in the differential). So every turn is checked against what the patient must never say:

* the diagnosis and every differential entry (whole names, always, with their obvious variants
  and their initials: "Multiple sclerosis", "multiple-sclerosis", "MS");
* the distinctive words of those names ("myasthenia", "gravis") unless the patient legitimately
  uses the word: it occurs in a fact already revealed, in one selected now, in its lay rendering
  or in the chief complaint (a patient with migraines says "headache" even if "Tension-type
  headache" is in the differential);
* the keywords of facts not revealed so far and not selected now, unless a revealed or selected
  fact uses the same word (only keywords that identify their fact: a keyword shared by several
  facts or a generic word like "days" is no secret).

Matching is case-insensitive on word boundaries with plural and hyphen/space variants
(:mod:`~medverify.text.matching`). What happens on a violation is the caller's choice
(:class:`~medverify.simulator.environment.ConsultationEnv`): an LLM reply is regenerated once and
then replaced by the template rendering; in a template rendering the offending sentence is
dropped; in a narrator line (a finding, the record's own words) the name is redacted so that the
rest of the finding still reaches the doctor. Every intervention is returned as data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from medverify.cases.keywords import specific_keywords
from medverify.cases.records import CaseRecord, Persona
from medverify.simulator.affective import Rendering, Utterance, speak
from medverify.simulator.voice import lay_words
from medverify.text.matching import contains_term, find_term, initialism, split_sentences, words

REDACTED = "[withheld]"

#: Words of condition names too common to block on their own (body parts, generic terms).
GENERIC_NAME_WORDS = frozenset(
    re.findall(
        r"\S+",
        """acute chronic disease disorder syndrome infection failure attack type primary secondary
    with without left right upper lower pain headache headaches stone stones cancer tumor
    benign malignant severe mild simple complex partial total general generalized local
    induced related associated due from of the and or heart lung lungs kidney liver blood
    bone bones skin head chest back neck stomach bowel brain eye eyes ear ears nose throat
    muscle muscles nerve nerves joint joints leg legs arm arms foot feet hand hands body
    medication overuse early late first second third new old adult child childhood
    community acquired hospital viral bacterial fungal exacerbation""",
    )
)

ViolationKind = Literal["diagnosis", "differential", "name_word", "unrevealed_keyword"]
GuardAction = Literal["pass", "dropped_sentences", "redacted", "regenerated", "template_fallback"]


class Violation(BaseModel):
    """One forbidden term found in a patient turn."""

    term: str
    kind: ViolationKind
    fact_id: str | None = None
    sentence: str = ""
    voice: Literal["patient", "narrator"] = "patient"


class GuardResult(BaseModel):
    """The checked turn and what the Guard did to it.

    Attributes:
        text: the turn as it may be shown.
        violations: every forbidden term found (before any repair).
        action: ``pass`` (clean), ``dropped_sentences`` / ``redacted`` (template repair),
            ``regenerated`` (the model's second reply was clean), ``template_fallback`` (the
            model failed twice; the template rendering was used).
        dropped_sentences: sentences removed.
        revealed_fact_ids: facts whose words survived, so count as told.
    """

    text: str
    violations: list[Violation] = Field(default_factory=list)
    action: GuardAction = "pass"
    dropped_sentences: list[str] = Field(default_factory=list)
    revealed_fact_ids: list[str] = Field(default_factory=list)
    rendering: Rendering | None = Field(default=None, exclude=True)

    @property
    def clean(self) -> bool:
        """No violation was found."""
        return not self.violations


@dataclass(frozen=True)
class BlockedTerm:
    """A term the patient may not say, and why."""

    term: str
    kind: ViolationKind
    fact_id: str | None = None
    exact_case: bool = False  # initialisms: "MS" but not "ms"

    def search(self, text: str) -> re.Match[str] | None:
        """The first occurrence in ``text``."""
        if self.exact_case:
            return re.search(rf"(?<![\w\-]){re.escape(self.term)}s?(?![\w\-])", text)
        return find_term(text, self.term)


@dataclass(frozen=True)
class _CaseIndex:
    """A case's blocked terms, each with the facts whose telling makes it sayable."""

    names: list[BlockedTerm]
    name_words: list[tuple[BlockedTerm, frozenset[str]]]
    keywords: list[tuple[BlockedTerm, frozenset[str]]]


#: Built once per case and health literacy, shared by every Guard (environments are many).
_INDEXES: dict[tuple, _CaseIndex] = {}


class Guard:
    """Finds and removes what the patient must not say.

    Args:
        block_name_words: also block the distinctive words of diagnosis/differential names.
        block_initialisms: also block the initials of multi-word names ("MS"), case-sensitive.
    """

    def __init__(self, *, block_name_words: bool = True, block_initialisms: bool = True) -> None:
        self.block_name_words = block_name_words
        self.block_initialisms = block_initialisms

    def blocked_terms(
        self, case: CaseRecord, allowed_ids: Iterable[str], persona: Persona | None = None
    ) -> list[BlockedTerm]:
        """The terms the patient may not say, given the facts it may talk about."""
        ids = set(allowed_ids)
        index = self._index(case, persona or Persona())
        terms = list(index.names)
        terms += [t for t, cover in index.name_words if not cover & ids]
        terms += [t for t, cover in index.keywords if t.fact_id not in ids and not cover & ids]
        return terms

    def _index(self, case: CaseRecord, persona: Persona) -> _CaseIndex:
        key = (
            case.id,
            case.chief_complaint,
            case.diagnosis,
            tuple(case.differential),
            tuple((f.id, f.text, tuple(f.keywords)) for f in case.all_facts()),
            persona.health_literacy,
            self.block_name_words,
            self.block_initialisms,
        )
        index = _INDEXES.get(key)
        if index is None:
            index = self._build_index(case, persona)
            if len(_INDEXES) > 512:
                _INDEXES.clear()
            _INDEXES[key] = index
        return index

    def _build_index(self, case: CaseRecord, persona: Persona) -> _CaseIndex:
        """Per case: each blocked term and the facts whose telling makes it sayable."""
        complaint = f"{case.chief_complaint}\n{lay_words(case.chief_complaint)}"
        chunks = {
            f.id: "\n".join([f.text, *f.keywords, speak(f, persona), lay_words(f.text)])
            for f in case.all_facts()
        }

        def cover(term: str) -> frozenset[str] | None:
            """Facts that make ``term`` sayable; ``None`` when the complaint already does."""
            if contains_term(complaint, term):
                return None
            return frozenset(i for i, chunk in chunks.items() if contains_term(chunk, term))

        names: list[BlockedTerm] = []
        name_words: list[tuple[BlockedTerm, frozenset[str]]] = []
        conditions = [(case.diagnosis, "diagnosis")] + [
            (d, "differential") for d in case.differential
        ]
        for name, kind in conditions:
            if not name.strip():
                continue
            names.append(BlockedTerm(name, kind))  # type: ignore[arg-type]
            short = initialism(name) if self.block_initialisms else None
            if short and len(short) >= 2:
                names.append(BlockedTerm(short, kind, exact_case=True))  # type: ignore[arg-type]
            if not self.block_name_words:
                continue
            for word in sorted(set(words(name))):
                if len(word) < 4 or word in GENERIC_NAME_WORDS:
                    continue
                facts = cover(word)
                if facts is not None:
                    name_words.append((BlockedTerm(word, "name_word"), facts))
        keywords: list[tuple[BlockedTerm, frozenset[str]]] = []
        for fact_id, specific in specific_keywords(case).items():
            for keyword in specific:
                if len(keyword.strip()) < 3:
                    continue
                facts = cover(keyword)
                if facts is not None:
                    keywords.append((BlockedTerm(keyword, "unrevealed_keyword", fact_id), facts))
        return _CaseIndex(names=names, name_words=name_words, keywords=keywords)

    def find(
        self,
        text: str,
        case: CaseRecord,
        allowed_ids: Iterable[str],
        persona: Persona | None = None,
        *,
        names_only: bool = False,
    ) -> list[Violation]:
        """Every forbidden term in ``text`` (one violation per term and sentence)."""
        terms = self.blocked_terms(case, allowed_ids, persona)
        if names_only:
            terms = [
                t for t in terms if t.kind in ("diagnosis", "differential") and not t.exact_case
            ]
        found: list[Violation] = []
        for sentence in split_sentences(text) or [text]:
            for term in terms:
                if term.search(sentence):
                    found.append(
                        Violation(
                            term=term.term, kind=term.kind, fact_id=term.fact_id, sentence=sentence
                        )
                    )
        return found

    def check(
        self,
        rendering: Rendering,
        case: CaseRecord,
        allowed_ids: Iterable[str],
        persona: Persona | None = None,
        *,
        repair: bool = True,
    ) -> GuardResult:
        """Check a rendering; with ``repair``, drop offending sentences and redact narrator names.

        Without ``repair`` the rendering is returned unchanged with its violations (the caller
        regenerates it instead).
        """
        ids = set(allowed_ids)
        terms = self.blocked_terms(case, ids, persona)
        name_terms = [
            t for t in terms if t.kind in ("diagnosis", "differential") and not t.exact_case
        ]
        violations: list[Violation] = []
        dropped: list[str] = []
        redacted = False
        parts: list[Utterance] = []
        for part in rendering.parts:
            if part.voice == "narrator":
                text = part.text
                for term in name_terms:
                    while (m := term.search(text)) is not None:
                        violations.append(
                            Violation(
                                term=term.term, kind=term.kind, sentence=part.text, voice="narrator"
                            )
                        )
                        if not repair:
                            break
                        text = text[: m.start()] + REDACTED + text[m.end() :]
                        redacted = True
                    if not repair and violations:
                        break
                parts.append(part.model_copy(update={"text": text}))
                continue
            kept: list[str] = []
            for sentence in split_sentences(part.text) or [part.text]:
                hits = [t for t in terms if t.search(sentence)]
                for term in hits:
                    violations.append(
                        Violation(
                            term=term.term, kind=term.kind, fact_id=term.fact_id, sentence=sentence
                        )
                    )
                if hits and repair:
                    dropped.append(sentence)
                else:
                    kept.append(sentence)
            if kept:
                parts.append(part.model_copy(update={"text": " ".join(kept)}))
        if not repair:
            parts = list(rendering.parts)
        repaired = Rendering(parts=parts, mode=rendering.mode)
        action: GuardAction = "pass"
        if repair and dropped:
            action = "dropped_sentences"
        elif repair and redacted:
            action = "redacted"
        return GuardResult(
            text=repaired.text,
            violations=violations,
            action=action,
            dropped_sentences=dropped,
            revealed_fact_ids=[i for i in repaired.fact_ids() if i in ids],
            rendering=repaired,
        )
