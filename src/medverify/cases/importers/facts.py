"""Text rules that turn source case narratives into atomic, categorized facts with keywords.

Public case sets describe a patient in paragraphs ("The patient reports a 1-month history of
double vision ... She notes that ..."). The Fact Unit needs one checkable statement per fact, a
category (symptom, history, medication, ...) and keywords to match doctor questions and detect
leaks. These functions are deterministic and only *select and split* source text: they never
add medical content. Used by ``medverify cases import`` through the AgentClinic and MediQ
importers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from medverify.cases.records import FactCategory

# Abbreviations whose trailing period does not end a sentence.
_ABBREVIATIONS = (
    "dr",
    "mr",
    "mrs",
    "ms",
    "st",
    "vs",
    "e.g",
    "i.e",
    "approx",
    "etc",
    "no",
    "fig",
    "u.s",
)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]”’]?\s+(?=[\"'(\[“‘]?[A-Z0-9])")

# Statements about what the *scenario* lacks ("Information not provided."): not patient facts.
_UNINFORMATIVE = re.compile(
    r"^(?:n/?a\b.*|none|unknown|pending\b.*|non-?contributory|"
    r"(?:information |data )?not (?:provided|specified|applicable|mentioned|available)\b.*)$"
    r"|\bnot (?:provided|specified|applicable|mentioned|indicated in the scenario)\b"
    r"|\bdoes not specify\b"
    r"|^no (?:additional|other|further)\b.*\b(?:provided|mentioned|specified|given|available)\b"
    r"|^no\b.*\b(?:provided|mentioned|specified|given)$|\b(?:is|are) shown$"
    r"|\bwas mentioned due to\b"
    r"|^optional\b|\bif performed\b|\b(?:would|could|might) (?:show|reveal|demonstrate)\b"
    r"|\bconsider (?:checking|ordering|performing)\b|\bno examination details\b",
    re.IGNORECASE,
)

_RELATIVE = (
    r"\b(?:mother|father|sister|brother|siblings?|parents?|grand(?:mother|father|parents?)|"
    r"aunt|uncle|cousin|twin)(?:'s|’s)?"
)
_FAMILY = re.compile(
    r"\bfamily (?:medical )?history\b|\bfamilial\b|"
    + _RELATIVE
    + r"\s+(?:also\s+)?(?:died|was diagnosed|were diagnosed|suffers|suffered|passed away|"
    r"with a history|had a history|has a history)\b|"
    + _RELATIVE
    + r"\s+(?:also\s+)?(?:has|had|have)\b(?:\s+[\w'’-]+){0,5}?\s+[\w'’-]*(?:itis|osis|oma|emia|"
    r"pathy|disease|disorder|cancer|carcinoma|diabetes|hypertension|syndrome|attack|stroke|"
    r"failure|bad \w+)\b",
    re.IGNORECASE,
)
_ALLERGY = re.compile(
    r"\ballergic to\b|\ballerg(?:y|ies)\b|\ballergic reactions?\b|\banaphyla|\bhives after\b",
    re.IGNORECASE,
)
_MEDICATION = re.compile(
    r"\bmedications?\b|\bmedicines?\b|\bdrugs? (?:include|list)\b|"
    r"\btak(?:es|ing|en)\b(?! (?:a |an )?(?:shower|bath|trip|walk|class|course|break|part|place|"
    r"care|note|notice))|\bprescribed\b|\bstarted on\b|"
    r"\bwas started\b|\btreated with\b|\b(?:is|are|has been|have been|been) on\b|"
    r"\bsupplements?\b|\binhaler\b|"
    r"\bcontraceptives?\b|\binsulin\b|\bvitamins?\b|\bover-the-counter\b|\bdosage\b|\bdoses?\b|"
    r"\b\w+(?:olol|pril|sartan|statin|mab|cillin|mycin|azole|prazole|formin|gliptin|tidine|"
    r"zepam|zolam|oxetine|traline|triptyline|afil|parin|xaban|dronate|semide|thiazide)\b",
    re.IGNORECASE,
)
_SOCIAL = re.compile(
    r"\bsmok|\btobacco\b|\bcigarettes?\b|\bpack-years?\b|\bvap(?:e|es|ing)\b|\balcohol|"
    r"\bdrinks? socially\b|\bsocial drinker\b|\bbeers?\b|\bwine\b|\bglasses of\b|\bliquor\b|"
    r"\billicit\b|\brecreational\b|\bcocaine\b|"
    r"\bheroin\b|\bmarijuana\b|\bcannabis\b|\bintravenous drug\b|\bworks? (?:as|at|in|on)\b|"
    r"\bemployed\b|\bunemployed\b|\boccupation|\bjob\b|\bretired\b|\blives? (?:with|alone|in)\b|"
    r"\bmarried\b|\bdivorced\b|\bwidow|\bsexually active\b|\bsexual partners?\b|\bpartners\b|"
    r"\bcondoms?\b|\btravel|\btrip\b|\breturned from\b|\bvisit(?:ed)? (?:to )?\b|\bstudent\b|"
    r"\bexercis|\bdiet\b|\bhobb|\bhiking\b|\bcamping\b|\bpets?\b|\bfarm\b|"
    r"\bhomeless\b|\bincarcerat",
    re.IGNORECASE,
)
_PRESENT_ILLNESS = re.compile(
    r"\b(?:\d+|one|two|three|four|five|six|several|a few)[- ](?:hour|day|week|month|year)s?"
    r"[- ](?:long )?history of\b|\b(?:day|week|month|year)-long history\b",
    re.IGNORECASE,
)
_HISTORY = re.compile(
    r"\bhistory of\b|\bmedical history\b|\bpast (?:medical|surgical)\b|\bdiagnosed\b|"
    r"\bsurgery\b|\bunderwent\b|\boperation\b|\bprevious\b|\bprior\b|"
    r"\bhospitali[sz]ed\b|\bvaccinat|\bimmuniz|\bwas treated\b|\bchildhood\b|\bborn\b|"
    r"\bgestation|\bprenatal\b|\bantenatal\b|\bapgar\b|\bdelivered\b|\bdelivery\b|\bgravida\b|"
    r"\bpara \d|\bmenarche\b|\bnever had\b|\bmenstrual\b|\bpregnan|\bknown\b|\bchronic\b|"
    r"\bhas (?:had )?"
    r"(?:hypertension|diabetes|asthma)\b",
    re.IGNORECASE,
)

# Findings the patient cannot report themselves: routed to exam findings or test results.
_TEST = re.compile(
    r"\blaborator|\blab(?:s)?\b|\bserum\b|\bplasma\b|\bblood (?:tests?|count|cultures?|smear)\b|"
    r"\burinalysis\b|\burine (?:tests?|cultures?|studies|toxicology|drug screen)\b|\bcultures?\b|"
    r"\bbiopsy\b|\bhistolog|\bcytolog|\bpatholog|\bx-?rays?\b|\bradiograph|\bcomputed tomography\b|"
    r"\bct\b|\bmri\b|\bultrasound\b|\bultrasonograph|\bsonograph|\bechocardiogra|\becg\b|\bekg\b|"
    r"\belectrocardiogra|\beeg\b|\bemg\b|\belectromyograph|\bspirometr|\bendoscop|\bcolonoscop|"
    r"\bangiogra|\bscan\b|\bimaging\b|\bhemoglobin\b|\bhematocrit\b|\bleukocyte|\bplatelet|"
    r"\bwbc\b|\bsodium\b|\bpotassium\b|\bcreatinine\b|\bglucose\b|\bbilirubin\b|\bantibod|"
    r"\btiters?\b|\bassay\b|\bpcr\b|\bgram stain\b|\bstudies show\b|\bmg/dl\b|\bg/dl\b|"
    r"\bmeq/l\b|\bmmol/l\b|\bu/l\b|\b/mm3\b|\bmm3\b|"
    r"\blumbar puncture\b|\bcerebrospinal\b|\bcsf\b|\barterial blood gas\b|\babg\b|"
    r"\btest(?:s|ing)?\b|\b(?:is|are|was|were) (?:positive|negative)\b|"
    r"\banti[- ](?!inflammator|biotic|hypertensive|depressant|psychotic|coagula|emetic|"
    r"convulsant|histamine|viral|fungal|platelet|epileptic|diabetic|smok)[a-z0-9]|"
    r"\bfactor\b|\bcortisol\b|\(n\s*[<>=]|\(ref\b|\bnuclei\b|\bcells\b|\bμm3\b|"
    r"\b\d+(?:[.,]\d+)?\s*(?:μg|µg|mg|ng|pg|nmol|mmol|meq|mosm|iu|u)(?:/[a-z0-9]+)?\b",
    re.IGNORECASE,
)
_EXAM = re.compile(
    r"\bexaminations?\b|\bexams?\b|\bon exam|\btall\b|\bheight\b|\btuning fork|\bfork\b|"
    r"\brinne\b|\bvital signs?\b|\btemperature\b|\bpulse\b|"
    r"\bblood pressure\b|\brespirations?\b|\brespiratory rate\b|\bheart rate\b|\bmm hg\b|"
    r"\b\d+/min\b|\bbpm\b|°[cf]\b|\boxygen saturation\b|\bpulse oximetry\b|\bbmi\b|\bweighs\b|"
    r"\bauscultation\b|\bpalpation\b|\bpercussion\b|\bmurmur\b|\bcrackles\b|\brales\b|"
    r"\bwheez(?:es|ing) (?:are|is) heard\b|\btender(?:ness)? (?:to|on) palpation\b|\bis noted\b|"
    r"\bare noted\b|\bnoted on\b|\bpercentile\b|"
    r"\bfundoscop|\botoscop|\bophthalmoscop|\breflex(?:es)? (?:are|is)\b",
    re.IGNORECASE,
)
# A finding told as part of the past history ("a fever of 40°C five days ago") stays history.
_PAST = re.compile(
    r"\bago\b|\bhistory\b|\bprevious\b|\bprior\b|\bchildbirth\b|\bprenatal\b|\bantenatal\b|"
    r"\bborn\b|\blast\b",
    re.IGNORECASE,
)
_EXPLICIT_FINDING = re.compile(
    r"\bon (?:physical )?exam(?:ination)?\b|\bexamination (?:shows|reveals)\b|"
    r"\bstudies show\b|\bvital signs\b",
    re.IGNORECASE,
)
_PATIENT_VOICE = re.compile(
    r"\b(?:reports?|complains?|describes?|denies|states?|says|notes|mentions|recalls|feels)\b",
    re.IGNORECASE,
)

STOPWORDS = frozenset(
    re.findall(
        r"\S+",
        """a about above after again against ago all also am an and any are aren't as at be because
    been before being below between both but by can could did do does doing don't down during
    each either few for from further had has have having he her here hers herself him himself his
    how i if in into is it its itself just let me more most my myself neither no nor not now of off
    on once only or other our ours ourselves out over own per same she should so some such than
    that the their theirs them themselves then there these they this those through to too under
    until up upon very via was we were what when where whether which while who whom why will with
    within without would yet you your yours yourself yourselves""",
    )
)
# Verbs and fillers that carry no medical identity of a fact; they also break multiword terms.
GENERIC_WORDS = frozenset(
    re.findall(
        r"\S+",
        """patient patients patient's reports reported report reporting presents presented
    presenting present notes noted note mentions mentioned describes described states stated
    says said
    recalls recall complains complained complaining denies denied experiencing experienced
    experiences experience history currently current recently recent significant around
    approximately associated including includes include well since last past time times
    episode episodes shows show showed reveals revealed observed noticed notice feels feel felt
    appears appear seems seem still already usually often sometimes occasionally particularly
    especially brought comes came went goes tries trying tried one two three several
    many much like made make makes getting gets got become became becomes began begun started
    starting start due given take takes taking taken drinks drink uses use used works work lives
    live also new medical tend tends prior""",
    )
)
_TOKEN = re.compile(r"[a-z0-9°%+]+(?:[.\-/'][a-z0-9°%+]+)*")
_CLAUSE_BREAK = re.compile(r"[,;:()\[\]{}\"!?]|\.(?!\d)|\s-\s|—|–")


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences, keeping every character of each sentence as written.

    Args:
        text: A paragraph from a source record.

    Returns:
        The non-empty sentences, stripped of surrounding whitespace.
    """
    text = " ".join(text.split())
    if not text:
        return []
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        candidate = text[start : match.start()].rstrip()
        last_word = candidate.rsplit(" ", 1)[-1].rstrip(".").lower()
        if last_word in _ABBREVIATIONS or re.fullmatch(r"[a-z]", last_word):
            continue
        pieces.append(text[start : match.end()].strip())
        start = match.end()
    pieces.append(text[start:].strip())
    return [p for p in pieces if p]


def is_uninformative(text: str) -> bool:
    """Whether a statement only says the source lacks information ("Not provided.")."""
    stripped = text.strip().rstrip(".").strip()
    return not stripped or bool(_UNINFORMATIVE.search(stripped))


def is_finding(text: str, *, explicit_only: bool = False) -> FactCategory | None:
    """``"test"`` or ``"exam"`` when a statement is a clinician's finding, else ``None``.

    Statements in the patient's own voice ("She reports ...") and statements about the past
    ("a fever of 40.5°C five days ago") stay patient facts even when they mention a test, so the
    patient can still tell the doctor about earlier results; "on examination" and "studies
    show" always mark a finding.

    Args:
        text: One statement.
        explicit_only: Skip the patient-voice and past-tense exemptions (the statement is known
            to sit in the examination part of a vignette).
    """
    exempt = _PATIENT_VOICE.search(text) or _PAST.search(text)
    if exempt and not explicit_only and not _EXPLICIT_FINDING.search(text):
        return None
    if _TEST.search(text):
        return "test"
    if _EXAM.search(text):
        return "exam"
    return None


def categorize(text: str, default: FactCategory = "symptom") -> FactCategory:
    """The patient-fact category of one statement, by simple ordered rules.

    Args:
        text: One atomic statement.
        default: Category when no rule applies (the field the statement came from decides it:
            ``symptom`` for the presenting story, ``history`` for past medical history).

    Returns:
        One of ``allergy``, ``family``, ``medication``, ``social``, ``history`` or ``default``.
    """
    if _ALLERGY.search(text):
        return "allergy"
    if _FAMILY.search(text):
        return "family"
    if _MEDICATION.search(text):
        return "medication"
    if _SOCIAL.search(text):
        return "social"
    if _PRESENT_ILLNESS.search(text):
        return "symptom"
    if _HISTORY.search(text):
        return "history"
    return default


def _is_content(token: str) -> bool:
    if token in STOPWORDS or token in GENERIC_WORDS:
        return False
    if re.fullmatch(r"[\d.,/%°+-]+", token):
        return False
    return len(token) > 1 and not token.endswith("ly")


def extract_keywords(text: str, *, max_phrase: int = 4) -> list[str]:
    """Lowercase content words and multiword terms of a statement, in order of appearance.

    Single words are every token that is not a stopword, a generic verb or a bare number.
    Multiword terms are runs of two to ``max_phrase`` adjacent content words inside one clause
    ("double vision", "acetylcholine receptor antibodies"); numbers may sit inside a run
    ("type 2 diabetes mellitus").

    Args:
        text: One fact's text.
        max_phrase: Longest run kept as a multiword term.

    Returns:
        Unique keywords, made only of words of ``text`` (case-insensitive; a possessive
        apostrophe is dropped: "Graves' disease" → "graves disease").
    """
    lowered = text.lower().replace("’", "'")
    keywords: list[str] = []
    seen: set[str] = set()

    def add(term: str) -> None:
        if term not in seen:
            seen.add(term)
            keywords.append(term)

    for clause in _CLAUSE_BREAK.split(lowered):
        run: list[str] = []
        for token in [*_TOKEN.findall(clause), ""]:
            token = token.strip(".'")
            is_number = bool(re.fullmatch(r"\d+(?:\.\d+)?", token))
            if token and (_is_content(token) or (is_number and run)):
                run.append(token)
                continue
            _flush_run(run, max_phrase, add)
            run = []
    return keywords


def _flush_run(run: list[str], max_phrase: int, add: Callable[[str], None]) -> None:
    while run and re.fullmatch(r"[\d.]+", run[-1]):
        run = run[:-1]
    for token in run:
        if _is_content(token):
            add(token)
    if 2 <= len(run) <= max_phrase:
        add(" ".join(run))


def content_tokens(text: str, *, numbers: bool = False) -> set[str]:
    """The set of (lightly stemmed) content words of a text, optionally with its numbers."""
    out: set[str] = set()
    for raw in _TOKEN.findall(text.lower().replace("’", "'")):
        token = raw.strip(".'")
        is_number = bool(re.fullmatch(r"[\d.,/%°+-]+", token))
        if _is_content(token) or (numbers and is_number and token):
            out.add(_stem(token))
    return out


def _stem(token: str) -> str:
    if token.endswith("'s"):
        token = token[:-2]
    if len(token) > 4 and token.endswith("es") and not token.endswith("ses"):
        return token[:-2]
    if len(token) > 3 and token.endswith("s") and not token.endswith("ss"):
        return token[:-1]
    return token


def is_covered(text: str, existing: Iterable[str]) -> bool:
    """Whether every content word of ``text`` already appears in one of ``existing``."""
    tokens = content_tokens(text, numbers=True)
    if not tokens:
        return True
    return any(tokens <= content_tokens(other, numbers=True) for other in existing)


def humanize_key(key: str) -> str:
    """``"Acetylcholine_Receptor_Antibodies"`` → ``"Acetylcholine receptor antibodies"``.

    Acronyms and mixed-case tokens (``CT``, ``HbA1c``, ``pH``) keep their case.
    """
    words = [w for w in re.split(r"[_\s]+", key.strip()) if w]
    out = [w if _keeps_case(w) else w.lower() for w in words]
    if out and not _keeps_case(words[0]):
        out[0] = out[0][:1].upper() + out[0][1:]
    return " ".join(out)


def _keeps_case(word: str) -> bool:
    return any(c.isupper() for c in word[1:]) or (word[:1].islower() and word.lower() != word)
