"""Features of one (criterion, response) pair for the offline local grader.

The local grader (:mod:`medverify.grading.local_grader`) decides "does this response do what the
criterion describes?" without a language model: a 135M chat model cannot judge, and a judge behind
an API is not always at hand. What a small classifier *can* use is how well the criterion's content
is covered by the response, measured several ways:

* by meaning: cosine similarity (all-MiniLM-L6-v2, :mod:`medverify.text.embeddings`) between
  the criterion and each sentence of the response, and the whole response (the mean of its
  sentences: a contrast, since every response is on the prompt's topic); the criterion is also
  compared with its leading verb stripped ("Recommends a weekly interval..." -> "a weekly
  interval...") and, for criteria listing examples ("such as ..."), each example on its own;
* by words: the share of the criterion's content words (Snowball stems) present in the response and
  in its best sentence;
* by kind: criteria about *asking* ("Asks whether...", "Seeks more context...") are compared with
  the response's questions only; diagnosis criteria with the ``DIAGNOSIS:`` line of a transcript.

Negation is handled by structure, not learned from few examples: "Fails to X", "Does not X" are
parsed into a negated criterion with core "X"; the classifier predicts whether the response
*covers* the core, and the verdict is flipped for negated criteria. "A without B" is met when A
is covered and B is not.

Consultation transcripts (lines "Doctor: ..." / "Patient: ...") are judged on the doctor's lines
only: the patient's words are not what the doctor did.

Pure functions over text and embedding arrays; the embedding calls are batched by the caller.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

#: Axis tags of HealthBench, in feature order.
AXES = (
    "axis:accuracy",
    "axis:completeness",
    "axis:communication_quality",
    "axis:context_awareness",
    "axis:instruction_following",
)

#: Names of the feature vector's columns, in order (stored with the trained weights).
FEATURE_NAMES = (
    "sim_max",
    "sim_top3",
    "sim_stripped_max",
    "sim_doc",
    "sim_examples",
    "lex_cov",
    "lex_cov_best",
    "lex_examples",
    "sim_question_max",
    "ask_x_sim_question",
    "log_questions",
    "is_ask",
    "is_diagnosis",
    "sim_prompt_max",
    "points_positive",
    "points_abs",
    "negated",
    "generic",
    "log_criterion_words",
    "log_response_units",
    *AXES,
)

_STOP = frozenset(
    """a an the and or but if then so of to in on at by for with without from into onto over under
    about after before during since until as than that this these those there here it its is am
    are was were be been being do does did doing done have has had having i me my you your we our
    us they them their he him his she her what when where which who whom why how not no nor can
    could would should will shall may might must just also very too some any all each every both
    either neither more most much many few other another such e.g eg etc i.e ie response user
    assistant patient model answer reply s""".split()  # noqa: SIM905 - reads better as text
)

#: Leading words that make a criterion negated: "Fails to X" means "does not X".
_NEGATION = re.compile(
    r"^\s*(?:the\s+(?:response|assistant|model)\s+)?(?:"
    r"fails?\s+to|does\s+not|doesn['’]t|did\s+not|didn['’]t|do\s+not|is\s+not|"
    r"neglects?\s+to|omits?(?:\s+to)?|never|not)\s+",
    re.IGNORECASE,
)
_WITHOUT = re.compile(r"\s*,?\s+without\s+(?=(?:first\s+)?(?:\w+ing)\b)", re.IGNORECASE)
_EXAMPLES = re.compile(r"\b(?:such as|e\.g\.,?|for example,?|including|like)\s+", re.IGNORECASE)
_ASK = re.compile(
    r"^\s*(?:\w+ly\s+)?(?:asks?|inquires?|enquires?|seeks?|queries|questions|clarifies|"
    r"requests?\s+(?:more|additional|further|clarif)|elicits?|explores?)\b",
    re.IGNORECASE,
)
_ASK_ANYWHERE = re.compile(
    r"\bseeks? (?:more |additional |further )?(?:context|information)\b|\bfollow-up questions?\b",
    re.IGNORECASE,
)
_DIAGNOSIS = re.compile(r"\bdiagnos[ie]s\b|\bdiagnosis\b", re.IGNORECASE)
_LEAD_ADVERB = re.compile(r"^\s*(?:\w+ly\s+)+", re.IGNORECASE)
_LEAD_VERB = re.compile(
    r"^\s*[A-Za-z]+s\s+(?:(?:the|that|a|an)\s+)?(?:(?:user|patient|reader)\s+(?:to\s+|that\s+)?)?",
    re.IGNORECASE,
)
_TRANSCRIPT_LINE = re.compile(r"^\s*(doctor|patient|physician|assistant|user)\s*:\s*", re.I)
_DIAGNOSIS_LINE = re.compile(r"\bDIAGNOSIS\s*:\s*(.+)", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9*])")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)]|#{1,6})\s+")
_MARKUP = re.compile(r"[*_`>|]+")
_WORD = re.compile(r"[a-z0-9]+")
_MAX_UNIT_CHARS = 400


def _stemmer():  # pragma: no cover - trivial
    import snowballstemmer

    return snowballstemmer.stemmer("english")


_STEMMER = None


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    global _STEMMER
    if _STEMMER is None:
        _STEMMER = _stemmer()
    return _STEMMER.stemWord(word)


def content_stems(text: str) -> list[str]:
    """Snowball stems of the content words of ``text`` (stop words and 1-letter words dropped)."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in _STOP]


@dataclass(frozen=True)
class CriterionView:
    """A criterion taken apart: polarity, core, examples, an excluded part, and its kind.

    Attributes:
        text: the criterion as written.
        negated: "Fails to X" / "Does not X": met when X is *not* covered.
        core: what must be covered (the criterion without its negation or "without" part).
        stripped: the core without its leading adverbs and verb ("Recommends X" -> "X").
        examples: the items listed after "such as" / "e.g." / "including".
        without: for "A without B", the B part (met only if B is absent).
        is_ask: the core is about asking questions or seeking context.
        is_diagnosis: the core is about stating a diagnosis.
        generic: a long, generic instruction (HealthBench's cluster-level criteria).
    """

    text: str
    negated: bool
    core: str
    stripped: str
    examples: tuple[str, ...]
    without: str | None
    is_ask: bool
    is_diagnosis: bool
    generic: bool


def parse_criterion(text: str) -> CriterionView:
    """Take a criterion apart (pure, never raises)."""
    clean = " ".join(text.split()) or "(empty criterion)"
    core = clean
    negated = False
    match = _NEGATION.match(core)
    if match and len(core) > match.end():
        negated = True
        core = core[match.end() :]
        core = core[0].upper() + core[1:]
    without = None
    parts = _WITHOUT.split(core, maxsplit=1)
    if len(parts) == 2 and len(parts[0].split()) >= 2 and len(parts[1].split()) >= 1:
        core, without = parts[0].strip(), parts[1].strip().rstrip(".")
    examples: tuple[str, ...] = ()
    ex_parts = _EXAMPLES.split(core, maxsplit=1)
    if len(ex_parts) == 2:
        tail = re.split(r"[.;)]", ex_parts[1], maxsplit=1)[0]
        items = re.split(r",\s*|\s+or\s+|\s+and\s+", tail)
        examples = tuple(i.strip(" .") for i in items if len(i.strip(" .")) > 2)[:8]
    stripped = _LEAD_VERB.sub("", _LEAD_ADVERB.sub("", core), count=1).strip() or core
    return CriterionView(
        text=clean,
        negated=negated,
        core=core,
        stripped=stripped,
        examples=examples,
        without=without,
        is_ask=bool(_ASK.match(core) or _ASK_ANYWHERE.search(core)),
        is_diagnosis=bool(_DIAGNOSIS.search(core)),
        generic=len(clean.split()) > 60,
    )


@dataclass
class ResponseView:
    """The parts of a response the features compare with.

    Attributes:
        units: sentences (list items and lines count as sentences), markup removed.
        questions: units that ask something.
        diagnosis: the ``DIAGNOSIS:`` statements of a transcript's doctor (else empty).
        transcript: whether the response was a "Doctor: / Patient:" transcript.
        stems: the content stems of the whole (judged part of the) response.
    """

    units: list[str]
    questions: list[str]
    diagnosis: list[str]
    transcript: bool
    stems: frozenset[str] = field(default_factory=frozenset)
    unit_stems: list[frozenset[str]] = field(default_factory=list)


def _doctor_text(response: str) -> tuple[str, bool]:
    """The doctor's lines of a transcript (continuation lines stay with their speaker)."""
    lines = response.splitlines()
    speakers = [_TRANSCRIPT_LINE.match(line) for line in lines]
    if not any(m and m.group(1).lower() in ("doctor", "physician") for m in speakers):
        return response, False
    kept: list[str] = []
    current = None
    for line, match in zip(lines, speakers, strict=True):
        if match:
            current = match.group(1).lower()
            line = line[match.end() :]
        if current in ("doctor", "physician", "assistant"):
            kept.append(line)
    return "\n".join(kept), True


def split_units(text: str) -> list[str]:
    """Sentences of a (markdown) text: lines, list items and sentences, markup removed."""
    units: list[str] = []
    for raw in text.splitlines():
        line = _MARKUP.sub("", _BULLET.sub("", raw)).strip()
        if not line:
            continue
        for sentence in _SENTENCE_END.split(line):
            sentence = sentence.strip()
            if len(_WORD.findall(sentence.lower())) < 2:
                continue
            while len(sentence) > _MAX_UNIT_CHARS:  # keep each unit within the encoder's window
                cut = sentence.rfind(" ", 0, _MAX_UNIT_CHARS)
                cut = cut if cut > 0 else _MAX_UNIT_CHARS
                units.append(sentence[:cut])
                sentence = sentence[cut:].strip()
            if sentence:
                units.append(sentence)
    return units


def response_view(response: str) -> ResponseView:
    """Split a response (or the doctor's side of a transcript) into what features compare."""
    text, transcript = _doctor_text(response or "")
    units = split_units(text) or ["(empty response)"]
    questions = [u for u in units if u.rstrip(" )\"'").endswith("?")]
    diagnosis = [m.group(1).strip() for m in _DIAGNOSIS_LINE.finditer(text)] if transcript else []
    unit_stems = [frozenset(content_stems(u)) for u in units]
    stems = frozenset().union(*unit_stems) if unit_stems else frozenset()
    return ResponseView(
        units=units,
        questions=questions,
        diagnosis=diagnosis,
        transcript=transcript,
        stems=stems,
        unit_stems=unit_stems,
    )


def criterion_texts(view: CriterionView) -> list[str]:
    """Every text of a criterion that needs an embedding."""
    texts = [view.core, view.stripped, *view.examples]
    if view.without:
        texts.append(view.without)
    return texts


def response_texts(view: ResponseView) -> list[str]:
    """Every text of a response that needs an embedding."""
    return [*view.units, *view.diagnosis]


def prompt_units(conversation: Sequence[dict[str, str]]) -> list[str]:
    """Sentences of the conversation's user turns (what a criterion may merely restate)."""
    text = "\n".join(
        str(t.get("content", "")) for t in conversation if t.get("role") in ("user", None)
    )
    return split_units(text)[:40] or ["(empty conversation)"]


def _coverage(stems: Sequence[str], present: frozenset[str]) -> float:
    if not stems:
        return 0.0
    return sum(1 for s in stems if s in present) / len(stems)


@dataclass
class Evidence:
    """What drove a feature vector: the best-matching unit and its similarity."""

    best_unit: str
    best_sim: float
    coverage: float


def core_features(
    text: str,
    view: CriterionView,
    resp: ResponseView,
    emb: dict[str, np.ndarray],
    prompt: Sequence[str],
    *,
    points: int,
    tags: Sequence[str],
) -> tuple[np.ndarray, Evidence]:
    """The feature vector (``FEATURE_NAMES`` order) of how far ``text`` is covered by ``resp``.

    Args:
        text: the part of the criterion to look for (its core, or its "without" part).
        view: the parsed criterion (kind, examples, polarity).
        resp: the response's parts.
        emb: unit-length embeddings of every text involved.
        prompt: the conversation's user sentences.
        points: the criterion's points.
        tags: the criterion's tags.
    """
    c = emb[text]
    units = resp.units
    if view.is_diagnosis and resp.diagnosis:
        units = resp.diagnosis + units[-3:]
    u = np.stack([emb[x] for x in units])
    sims = u @ c
    order = np.argsort(-sims)
    sim_max = float(sims[order[0]])
    sim_top3 = float(sims[order[:3]].mean())
    stripped = emb.get(view.stripped if text == view.core else text, c)
    sim_stripped = float((u @ stripped).max())
    doc = u.mean(axis=0)
    doc = doc / (np.linalg.norm(doc) or 1.0)
    sim_doc = float(doc @ c)
    stems = list(dict.fromkeys(content_stems(text if text != view.core else view.stripped)))
    lex_cov = _coverage(stems, resp.stems)
    lex_best = max((_coverage(stems, s) for s in resp.unit_stems), default=0.0)
    if view.examples and text == view.core:
        ex_sims = [float((u @ emb[e]).max()) for e in view.examples]
        sim_examples = max(ex_sims)
        lex_examples = sum(
            1 for e in view.examples if _coverage(content_stems(e), resp.stems) >= 0.5
        ) / len(view.examples)
    else:
        sim_examples, lex_examples = sim_max, lex_cov
    questions = resp.questions
    if questions:
        q = np.stack([emb[x] for x in questions])
        sim_question = float((q @ c).max())
    else:
        sim_question = 0.0
    p = np.stack([emb[x] for x in prompt])
    sim_prompt = float((p @ c).max())
    words = len(view.text.split())
    axes = [1.0 if a in tags else 0.0 for a in AXES]
    vec = np.array(
        [
            sim_max,
            sim_top3,
            sim_stripped,
            sim_doc,
            sim_examples,
            lex_cov,
            lex_best,
            lex_examples,
            sim_question,
            sim_question if view.is_ask else 0.0,
            math.log1p(len(questions)),
            1.0 if view.is_ask else 0.0,
            1.0 if view.is_diagnosis else 0.0,
            sim_prompt,
            1.0 if points > 0 else 0.0,
            abs(points) / 10,
            1.0 if view.negated else 0.0,
            1.0 if view.generic else 0.0,
            math.log1p(words),
            math.log1p(len(resp.units)),
            *axes,
        ],
        dtype=np.float64,
    )
    best = units[int(order[0])]
    if view.is_ask and questions:
        best = questions[int(np.argmax(q @ c))]
    return vec, Evidence(best_unit=best, best_sim=sim_max, coverage=lex_cov)
