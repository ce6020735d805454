"""The doctor's closing statement, parsed: the final diagnosis, the differential, tests and plan.

A consultation ends with a final assessment (DESIGN.md "Doctor turns"). Its documented format is

    DIAGNOSIS: <one diagnosis>
    DIFFERENTIAL: <other diagnoses considered, comma-separated>      (optional)
    TESTS: <tests to order>                                           (optional)
    PLAN: <treatment, referral, follow-up>                            (optional)

and the parser is tolerant of free text around it: markdown emphasis, fields on one line, a
diagnosis sentence followed by reasoning, and (when no ``DIAGNOSIS:`` marker exists at all) a
last turn that says "the most likely diagnosis is X". Whether a diagnosis is *stated* is decided
here, not by word overlap: "DIAGNOSIS: epileptic seizure. It is definitely not vasovagal syncope"
states epileptic seizure and rules vasovagal syncope out; "DIAGNOSIS: X or Y" hedges over two
diagnoses and states neither as final. Graders and the training reward read the same parse, so
mentioning a diagnosis can never be taken for concluding it.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from medverify.cases.diagnosis import names_diagnosis
from medverify.cases.records import Transcript
from medverify.text.matching import stem, words

_FIELD = re.compile(
    r"(?<![A-Za-z])(DIAGNOSIS|DIFFERENTIAL(?:\s+DIAGNOS[IE]S)?|DDX|TESTS?|INVESTIGATIONS|PLAN"
    r"|MANAGEMENT)\s*[*_]*\s*:",
    re.IGNORECASE,
)
_FIELD_NAMES = {
    "diagnosis": "diagnosis",
    "differential": "differential",
    "ddx": "differential",
    "test": "tests",
    "tests": "tests",
    "investigations": "tests",
    "plan": "plan",
    "management": "plan",
}
#: Words that introduce a ruled-out diagnosis inside the diagnosis statement.
_NEGATION = re.compile(
    r"(?:,|;|\bbut\b)?\s*\b(?:(?:and|it\s+is|it's|this\s+is|this\s+is\s+definitely|definitely)\s+)?"
    r"(?:not|rather\s+than|instead\s+of|ruling\s+out|ruled\s+out|excluding|excluded|unlikely\s+to\s+be"
    r"|no\s+evidence\s+of|less\s+likely)\b",
    re.IGNORECASE,
)
_AFTER_NEGATION = re.compile(
    r"\b(?:is|was|has\s+been|have\s+been|are|were)\s+(?:ruled\s+out|excluded|unlikely)\b",
    re.IGNORECASE,
)
_HEDGE = re.compile(r"\s+or\s+|\s*/\s*|\s+vs\.?\s+|\s+versus\s+|\beither\s+", re.I)
_LEAD_IN = re.compile(
    r"^(?:(?:my|the|a)\s+)?(?:patient'?s\s+)?(?:(?:final|working|most\s+likely|likely|probable|"
    r"presumptive|provisional|suspected)\s+)*(?:diagnosis\s+(?:is|would\s+be)\s*:?\s*)?"
    r"(?:(?:i\s+think|i\s+believe|i\s+suspect|in\s+my\s+opinion)\s*,?\s*)?"
    r"(?:(?:this\s+is|it\s+is|it's|you\s+have|you've\s+got|you\s+likely\s+have)\s+)?"
    r"(?:(?:most\s+likely|most\s+probably|probably|likely|possibly|presumably|consistent\s+with|"
    r"suspected)"
    r"\s*:?\s*)*(?:(?:an?|the)\s+)?",
    re.IGNORECASE,
)
_FREE_TEXT = re.compile(
    r"\b(?:diagnosis\s+is|(?<!if )you\s+(?:most\s+likely\s+|probably\s+|likely\s+)?have"
    r"(?!\s+(?:any|been|had|done|told|said|mentioned|described|shared|\w+ed)\b)|"
    r"consistent\s+with|most\s+likely\s+(?:have|has|is)|this\s+is\s+(?:most\s+likely\s+)?)"
    r"\s+(?:an?\s+|the\s+)?([^.;:\n]{3,80})",
    re.IGNORECASE,
)
#: Where a diagnosis gives its grounds ("X based on the results", "X, which explains ..."):
#: the name ends there.
_GROUNDS = re.compile(
    r"\s*,?\s*\b(?:based\s+on|given\s+(?:the|your|his|her|their)|as\s+(?:evidenced|suggested|"
    r"shown|indicated)\s+by|supported\s+by|which|that\s+(?:is|was|has|explains))\b.*$",
    re.IGNORECASE,
)
#: A second label inside the diagnosis line ("Suspected diagnosis: X"); parse_closing reads it
#: as a field of its own.
_SECOND_LABEL = re.compile(r"(?i)^(?:[a-z]+\s+){0,2}diagnos[ie]s\s*:\s*")
#: What a plan does: treat, refer, test or follow up (a PLAN: line without any of it is no plan).
_PLAN_ACTION = re.compile(
    r"\b(?:prescrib\w*|treat\w*|therap\w*|medication|medicines?|tablets?|"
    r"antibiotics?|refer\w*|specialist|admit|admission|surgery|operation|injection|inhaler|"
    r"tests?|testing|scan|x-?ray|blood (?:tests?|work)|biopsy|follow[- ]?up|come back|"
    r"appointment|review|monitor\w*|fluids)\b",
    re.IGNORECASE,
)
#: Tests a plan orders ("PLAN: blood tests, then review"), as a TESTS: line would list them.
_TEST_ORDER = re.compile(
    r"\b(?:tests?|testing|scans?|x-?rays?|blood (?:work|count)|biopsy|ecg|ekg|mri|ct|"
    r"ultrasound|culture|urinalysis|swab|imaging|labs?)\b",
    re.IGNORECASE,
)
#: Where one sentence ends and the next begins (the end mark stays with its sentence).
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+|\n+")
_SPLIT_LIST = re.compile(r"\s*(?:,|;|\n|\bor\b|\band\b|/|•|\s-\s)\s*", re.IGNORECASE)
_OTHER_POSSIBILITIES = re.compile(
    r"\b(?:other\s+possibilities|alternatives?|differential(?:\s+diagnos[ie]s)?)\b"
    r"(?:\s+(?:include|includes|are|is|would\s+be))?\s*:?\s*([^.\n]+)",
    re.IGNORECASE,
)


class ClosingStatement(BaseModel):
    """What a doctor's final assessment says.

    Attributes:
        found: whether a closing statement was found at all (a ``DIAGNOSIS:`` field, or free text).
        final: the single final diagnosis, when exactly one is stated.
        candidates: every diagnosis offered as final (two or more means the doctor hedged).
        ruled_out: diagnoses the statement explicitly rejects ("not X", "X is ruled out").
        differential: other diagnoses the doctor says were considered.
        tests: tests the doctor lists in the statement.
        plan: the plan, as written.
        turn: index of the doctor turn the statement was read from (in ``transcript.turns``).
    """

    found: bool = False
    final: str | None = None
    candidates: list[str] = Field(default_factory=list)
    ruled_out: list[str] = Field(default_factory=list)
    differential: list[str] = Field(default_factory=list)
    tests: list[str] = Field(default_factory=list)
    plan: str | None = None
    turn: int | None = None

    @property
    def hedged(self) -> bool:
        """Whether two or more diagnoses were offered as the final one."""
        return len(self.candidates) > 1

    def names_final(self, truth: str) -> bool:
        """Whether the single final diagnosis is ``truth`` (hedging and negation do not count)."""
        return self.final is not None and diagnosis_matches(self.final, truth)

    def considers(self, truth: str) -> bool:
        """Whether ``truth`` is the final diagnosis, a hedged candidate or in the differential."""
        if any(diagnosis_matches(d, truth) for d in self.ruled_out):
            return False
        offered = [*self.candidates, *self.differential]
        return any(diagnosis_matches(d, truth) for d in offered)

    def wrong_final(self, truth: str) -> bool:
        """Whether a condition was named as final and none of the offered candidates is ``truth``.

        ``DIAGNOSIS: I'd like to discuss your recovery plan`` follows the format and names no
        condition: it earns nothing, but it is no *wrong diagnosis* either, as a physician
        grading "gives a final diagnosis other than X" would read it. Counting it as wrong
        made a doctor that writes the field score below one that never concludes.
        """
        return self.names_a_condition() and not any(
            diagnosis_matches(d, truth) for d in self.candidates
        )

    def concludes(self) -> bool:
        """Whether the statement gives the patient an assessment: a named condition or a plan.

        A ``DIAGNOSIS:`` line that names nothing and plans nothing ends the consultation with no
        more for the patient than running out of turns does, and is graded as that. A plan is
        one that does something (treats, refers, tests, follows up): the trained doctor's search
        found that "PLAN: You're not alone" passed for one.
        """
        return self.names_a_condition() or (
            self.plan is not None and _PLAN_ACTION.search(self.plan) is not None
        )

    def orders_tests(self) -> bool:
        """Whether the statement orders tests (a ``TESTS:`` line, or a plan that orders some).

        A diagnosis given with tests to confirm it is provisional, not definitive.
        """
        return bool(self.tests) or (self.plan is not None and bool(_TEST_ORDER.search(self.plan)))

    def names_a_condition(self) -> bool:
        """Whether a condition is offered as the final diagnosis (right or wrong)."""
        return any(names_condition(d) for d in self.candidates)

    def alternatives(self) -> list[str]:
        """Conditions named besides the final one: hedged candidates, differential, ruled out."""
        final = self.final
        others = [
            d
            for d in [*self.candidates, *self.differential, *self.ruled_out]
            if d != final and names_condition(d)
        ]
        return list(dict.fromkeys(others))


# -- diagnosis names ----------------------------------------------------------------------------

#: Words a diagnosis name may drop or add without becoming another diagnosis.
_OPTIONAL_WORDS = (
    "disease disorder syndrome condition of the a an with due to in s infection "
    "acute primary idiopathic essential"
)
#: Modifiers that make a different diagnosis when they differ (acute vs chronic...).
_EXCLUSIVE_WORDS = (
    frozenset({"acute", "subacute", "chronic"}),
    frozenset({"primary", "secondary"}),
    frozenset({"benign", "malignant"}),
    frozenset({"bacterial", "viral", "fungal", "parasitic"}),
    frozenset({"stable", "unstable", "variant"}),
    frozenset({"alpha", "beta"}),
    frozenset({"type1", "type2"}),
    frozenset({"left", "right"}),
    frozenset({"upper", "lower"}),
)
#: Common other names of diagnoses (each group names one condition).
SYNONYMS: tuple[frozenset[str], ...] = tuple(
    frozenset(group)
    for group in (
        {"myocardial infarction", "heart attack", "mi"},
        {"cerebrovascular accident", "stroke", "cva"},
        {"tuberculosis", "tb"},
        {"cytomegalovirus retinitis", "cmv retinitis"},
        {
            "c difficile colitis",
            "clostridioides difficile colitis",
            "clostridium difficile colitis",
            "c diff colitis",
            "c difficile infection",
            "pseudomembranous colitis",
        },
        {"adhesive capsulitis", "frozen shoulder"},
        {"reactive arthritis", "reiter syndrome", "reiter's syndrome"},
        {"leiomyoma", "uterine fibroid", "uterine fibroids", "fibroids", "fibroid"},
        {"presbycusis", "age related hearing loss"},
        {"tinea capitis", "scalp ringworm", "ringworm of the scalp"},
        {"rubella", "german measles"},
        {"boerhaave syndrome", "esophageal rupture", "oesophageal rupture"},
        {"aortic valve regurgitation", "aortic regurgitation", "aortic insufficiency"},
        {"trigeminal neuralgia", "tic douloureux"},
        {"membranous nephropathy", "membranous glomerulonephritis"},
        {"pulmonary embolism", "pe"},
        {"deep vein thrombosis", "dvt"},
        {"gastroesophageal reflux disease", "gerd", "acid reflux"},
        {"chronic obstructive pulmonary disease", "copd"},
        {"urinary tract infection", "uti"},
        {"diabetic ketoacidosis", "dka"},
        {"systemic lupus erythematosus", "lupus", "sle"},
        {"rheumatoid arthritis", "ra"},
        {"multiple sclerosis", "ms"},
        {"myasthenia gravis", "mg"},
        {"giant cell arteritis", "temporal arteritis"},
        {"infectious mononucleosis", "mononucleosis", "glandular fever"},
        {"parkinson disease", "parkinson's disease", "parkinsonism"},
        {"alzheimer disease", "alzheimer dementia", "alzheimer's disease"},
        {"listeriosis", "listeria infection", "listeria meningitis"},
        {"molluscum contagiosum", "molluscum"},
        {"neuroleptic malignant syndrome", "nms"},
        {"benign paroxysmal positional vertigo", "bppv"},
        {"generalized anxiety disorder", "gad"},
        {"pelvic inflammatory disease", "pid"},
        {"chronic lymphocytic leukemia", "cll"},
        {"acute myeloid leukemia", "aml"},
        {"irritable bowel syndrome", "ibs"},
        {"essential thrombocythemia", "essential thrombocytosis", "primary thrombocythemia"},
        {"inflammatory bowel disease", "ibd"},
    )
)


def _tokens(name: str) -> list[str]:
    text = name.lower().replace("’", "'").replace("'s", "").replace("-", " ")
    text = re.sub(r"\btype\s*(1|i)\b", "type1", text)
    text = re.sub(r"\btype\s*(2|ii)\b", "type2", text)
    return [stem(w) for w in words(text)]


_OPTIONAL = frozenset(stem(w) for w in _OPTIONAL_WORDS.split())
_EXCLUSIVE = tuple(frozenset(stem(w) for w in group) for group in _EXCLUSIVE_WORDS)


def _core(tokens: list[str]) -> set[str]:
    return {t for t in tokens if t not in _OPTIONAL}


def _conflict(a: list[str], b: list[str]) -> bool:
    for group in _EXCLUSIVE:
        left, right = group.intersection(a), group.intersection(b)
        if left and right and left != right:
            return True
    return False


def _same_name(stated: str, truth: str) -> bool:
    a, b = _tokens(stated), _tokens(truth)
    if not a or not b or _conflict(a, b):
        return False
    core_a, core_b = _core(a), _core(b)
    # Every defining word of the truth is in the statement, and the statement adds at most
    # two defining words (a site, a cause), so "acute pancreatitis" is not "pancreatic cancer".
    return bool(core_b) and core_b <= core_a and len(core_a - core_b) <= 2


def diagnosis_matches(stated: str, truth: str) -> bool:
    """Whether a stated diagnosis names the truth: same name, a variant, initialism or synonym.

    Partial names count when they keep every defining word ("Sjogren's syndrome" for "Primary
    Sjogren's syndrome", "Parkinson's" for "Parkinson disease"); a different modifier does not
    ("acute viral rhinosinusitis" is not "acute bacterial rhinosinusitis", "stable angina" is not
    "unstable angina").
    """
    stated = stated.strip(" .*_`")
    if not stated:
        return False
    if _same_name(stated, truth):
        return True
    if names_diagnosis(stated, truth) and not _conflict(_tokens(stated), _tokens(truth)):
        # the truth's variant or initialism inside a short statement ("AML", "BPPV of the left ear")
        return len(_core(_tokens(stated))) <= len(_core(_tokens(truth))) + 2
    norm_stated = " ".join(_tokens(stated))
    norm_truth = " ".join(_tokens(truth))
    for group in SYNONYMS:
        names = {" ".join(_tokens(n)) for n in group}
        truth_in = norm_truth in names or any(_same_name(truth, n) for n in group)
        if truth_in and (norm_stated in names or any(_same_name(stated, n) for n in group)):
            return True
    return False


# -- parsing ------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    text = re.sub(r"[*_`#>]+", " ", text)
    return " ".join(text.split()).strip(" .,:;-")


def _sections(text: str) -> dict[str, str]:
    marks = list(_FIELD.finditer(text))
    out: dict[str, str] = {}
    for index, mark in enumerate(marks):
        name = _FIELD_NAMES.get(mark.group(1).split()[0].lower(), "diagnosis")
        end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        body = text[mark.end() : end]
        if name not in out or not _LEAD_IN.sub("", _clean(out[name]), count=1):
            # "DIAGNOSIS: Likely diagnosis: X": the first mark held only a lead-in
            out[name] = body
    return out


def _split_list(text: str) -> list[str]:
    items = [_clean(part) for part in _SPLIT_LIST.split(text)]
    return [i for i in items if i and len(i) > 2 and not re.fullmatch(r"(?i)none|n/?a", i)]


def _bare_name(text: str) -> str:
    """A diagnosis without its lead-in ("Suspected", "most likely") and its grounds."""
    return _GROUNDS.sub("", _LEAD_IN.sub("", _clean(text), count=1))


def _first_sentence(text: str) -> tuple[str, str]:
    text = text.strip()
    match = re.search(r"(?<!\b[A-Z])(?<!\bvs)(?<!\be\.g)(?<!\bi\.e)[.!?](?:\s+|$)|\n", text)
    if match is None:
        return text, ""
    return text[: match.start()], text[match.end() :]


def _read_diagnosis(body: str, statement: ClosingStatement) -> None:
    first, rest = _first_sentence(body)
    first, _, aside = first.partition(";")
    rest = f"{aside}. {rest}" if aside.strip() else rest
    first = _clean(first)
    negation = _NEGATION.search(first)
    if negation is not None:
        statement.ruled_out += _split_list(first[negation.end() :])
        first = first[: negation.start()]
    first = _bare_name(first)
    candidates = [_LEAD_IN.sub("", _clean(c), count=1) for c in _HEDGE.split(first)]
    statement.candidates = [c for c in candidates if len(c) > 2]
    if len(statement.candidates) == 1:
        statement.final = statement.candidates[0]
    for sentence in re.split(r"(?<=[.!?])\s+|\n", rest):
        sentence = _clean(sentence)
        if not sentence:
            continue
        negated = _NEGATION.search(sentence)
        after = _AFTER_NEGATION.search(sentence)
        if after is not None:
            statement.ruled_out += _split_list(_LEAD_IN.sub("", sentence[: after.start()]))
        elif negated is not None and re.match(
            r"(?i)(?:it|this|that|he|she|they)?\s*(?:is|'s|are)?\s*(?:definitely|certainly|clearly)?"
            r"\s*(?:not|unlikely|less likely|rather than)",
            sentence,
        ):
            statement.ruled_out += _split_list(sentence[negated.end() :])
        other = _OTHER_POSSIBILITIES.search(sentence)
        if other is not None:
            statement.differential += _split_list(other.group(1))


#: Openings of a sentence about the consultation, the patient or the doctor, not a condition.
_NOT_A_NAME = re.compile(
    r"(?i)^\W*(?:i|i'm|i'd|i'll|you|you're|your|we|my|it|it's|this|that|there|here|the patient|"
    r"patient|he|she|they|no|not|none|unknown|unclear|uncertain|undetermined|to be determined|"
    r"tbd|n/?a|pending|see|please|thank)\b"
)
_PERSONAL = re.compile(r"(?i)\b(?:i|me|my|you|your|we|us|our)\b")
#: Words of a report, a measurement or a history, never of a condition's name ("Normal resting
#: heart rate: 40.1 beats/min", "Family history of similar symptoms", "Chest X-ray result: not
#: available" were what a 135M doctor wrote after DIAGNOSIS: once naming anything paid).
_NOT_A_CONDITION = re.compile(
    r"(?i)\d[.,]\d|\d\s*(?:%|mm|mg|bpm|beats|kg|cm|°|degrees|/)|:|\b(?:history|results?|"
    r"normal(?! pressure hydrocephalus)|symptoms?|available|assessment|examination|exam|"
    r"findings?|rate|levels?|measurements?|readings?|vitals?|signs|complaints?|evaluation|"
    r"presenting|consultation|visit|information|unknown|unusual|similar|emergency|"
    r"is|are|was|were|has|have|had|seems?|appears?|recalls?|mentioned|reports?|worried|"
    r"she|he|her|his|him|they|them|their|mother|father)\b"
)
#: Endings of condition names (nephritis, tuberculosis, lymphoma, anaemia, neuropathy ...).
_CONDITION_ENDING = re.compile(
    r"(?i)(?:itis|itides|osis|oses|omas?|a?emia|pathy|plasia|trophy|iasis|ism|uria|penia|"
    r"ectasis|ectasia|cele|rrh?o?ea|plegia|paresis|algia|asthenia|spasm|lepsy|derma|ptosis|"
    r"phylaxis|eclampsia|cardia|toxicity|[a-z]{3}ia)$"
)
#: Head words of condition names that no ending gives away (and common initialisms).
_CONDITION_WORDS = frozenset(
    """
    disease disorder syndrome infection fracture cancer carcinoma tumor tumour neoplasm deficiency
    failure injury palsy stroke attack ulcer hernia reflux asthma diabetes hypertension
    hypotension migraine embolism thrombosis infarction abscess cyst polyp stone stones calculus
    calculi aneurysm dissection regurgitation insufficiency prolapse obstruction perforation
    rupture torsion volvulus intussusception pregnancy miscarriage fibroid fibroids poisoning
    toxicity overdose withdrawal dependence addiction allergy depression anxiety psychosis
    schizophrenia bipolar influenza flu cold measles mumps rubella varicella chickenpox herpes
    zoster shingles malaria sepsis shock lupus gout eczema acne ringworm scabies lice wart warts
    gangrene concussion sprain strain dislocation tear contusion laceration burn bite wound
    vertigo cataract croup emphysema fibrosis effusion pneumothorax fibrillation flutter block
    tachycardia bradycardia angina murmur seizure seizures epilepsy dystrophy syncope insomnia
    apnea apnoea autism anorexia bulimia obesity malnutrition rickets scurvy infertility
    dysfunction incontinence menopause syphilis gonorrhea gonorrhoea chlamydia thrush dengue
    ulceration malignancy gallstone
    typhoid cholera tetanus rabies plague leprosy mononucleosis lymphoma leukemia leukaemia
    myeloma melanoma sarcoma metastases metastasis trait colic glaucoma dehydration pyelonephritis
    cirrhosis hepatitis jaundice hemorrhage haemorrhage hematoma haematoma bleed bleeding clot
    thrombus occlusion stenosis spondylosis sciatica lumbago bronchiolitis pertussis diphtheria
    scarlet impetigo cellulitis boil carbuncle fistula fissure hemorrhoids haemorrhoids
    varicose adenoma lipoma nodule goiter goitre keloid mole nevus naevus psoriasis rosacea
    vitiligo alopecia urticaria hives dermatitis neuralgia neuropathy sclerosis gravis
    reaction defect malformation anomaly impaction intoxication herniation coarctation erythema
    headache sickness damage roseola pemphigus stemi nstemi hydrocephalus covid
    uti copd gerd ibs ibd dvt pe mi tb hiv aids adhd ptsd ocd bph pcos std sti uri ards ckd aki
    chf cad cva tia sle ra als dka hhs nms bppv gad pid cll aml cml mdd
    """.split()  # noqa: SIM905 - a word list reads best as words
)


#: Words with a condition's ending that name no condition ("diagnosis" ends in -osis).
_NOT_CONDITION_WORDS = frozenset({"diagnosis", "diagnoses", "prognosis", "prognoses"})


def _names_a_condition_word(name: str) -> bool:
    """Whether the name has a word only condition names have (an ending or a head word)."""
    for word in re.findall(r"[A-Za-z][A-Za-z'-]*", name):
        w = word.lower().removesuffix("'s").removesuffix("’s")
        parts = [w, *w.split("-")]
        parts += [p[:-1] for p in parts if p.endswith("s") and not p.endswith(("ss", "is", "us"))]
        parts = [p for p in parts if p not in _NOT_CONDITION_WORDS]
        if any(p in _CONDITION_WORDS or _CONDITION_ENDING.search(p) for p in parts):
            return True
    return any(diagnosis_matches(name, synonym) for group in SYNONYMS for synonym in group)


#: Longer than this, a "diagnosis" is a sentence, not a name ("acute interstitial nephritis
#: secondary to a drug reaction" is 8 words).
MAX_NAME_WORDS = 12


def names_condition(text: str | None) -> bool:
    """Whether a stated diagnosis names a condition, rather than saying something else.

    ``DIAGNOSIS: I would like to know what you mean`` and ``DIAGNOSIS: Patient with a history of
    high blood pressure`` follow the format and name nothing. Counting them as "a diagnosis
    named" would reward the format, so a name must be short (at most :data:`MAX_NAME_WORDS`
    words in its first sentence), not open like a sentence about the patient or the doctor, use
    no first or second person, and ask nothing. It must also read as a condition: no
    measurement, report or history words ("Normal resting heart rate: 40 beats/min", "Family
    history of similar symptoms") and a word that only condition names have (an ending such as
    -itis, -osis, -oma, -emia, or a head word such as syndrome, fracture, migraine). A 135M doctor
    rewarded for naming anything wrote exactly those; a list of words cannot tell a real
    condition from an invented one with a plausible ending (whether the name is *right* is
    :func:`diagnosis_matches`).
    """
    if not text:
        return False
    cleaned = _clean(text)
    first = _first_sentence(cleaned)[0]
    if "?" in cleaned[: len(first) + 1]:
        return False
    # read as parse_closing reads it: up to a ';', after a second label ("Suspected diagnosis:
    # X", which parse_closing reads as a field), without the lead-in and the grounds
    name = _bare_name(_SECOND_LABEL.sub("", _clean(first.partition(";")[0]), count=1))
    # "X, possible spread to ..." and "X [as you said before]" name X; "Fatigue, dilated pupil"
    # names nothing either way
    readings = [name, _clean(name.split(",")[0]), _clean(re.split(r"[\[(]", name)[0])]
    return any(_reads_as_condition(n) for n in dict.fromkeys(readings))


def _reads_as_condition(name: str) -> bool:
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", name)
    return (
        0 < len(words) <= MAX_NAME_WORDS
        and _NOT_A_NAME.match(name) is None
        and _PERSONAL.search(name) is None
        and _NOT_A_CONDITION.search(name) is None
        and _names_a_condition_word(name)
    )


def _free_text_diagnosis(text: str) -> str | None:
    """A diagnosis stated in free text ("you most likely have X"), never one inside a question.

    "Do you have any other symptoms?" has the words of "you have X" and asks, not concludes;
    read as a statement it was a wrong final diagnosis ("any other symptoms") for a doctor who
    was still taking the history.
    """
    for sentence in _SENTENCE_END.split(text):
        match = _FREE_TEXT.search(sentence)
        if match is not None and not sentence.rstrip().endswith("?"):
            return match.group(1)
    return None


def parse_closing(text: str) -> ClosingStatement:
    """Parse one doctor turn's final assessment (see the module docstring for the format)."""
    statement = ClosingStatement()
    sections = _sections(text)
    if "diagnosis" in sections:
        statement.found = True
        _read_diagnosis(sections["diagnosis"], statement)
    else:
        free = _free_text_diagnosis(text)
        if free is not None:
            statement.found = True
            _read_diagnosis(free, statement)
    if "differential" in sections:
        statement.differential += _split_list(_first_sentence(sections["differential"])[0])
    if "tests" in sections:
        statement.tests = _split_list(sections["tests"])
    if "plan" in sections:
        statement.plan = _clean(sections["plan"]) or None
    statement.ruled_out = list(dict.fromkeys(d for d in statement.ruled_out if d))
    statement.differential = list(
        dict.fromkeys(d for d in statement.differential if d not in statement.ruled_out)
    )
    return statement


def closing_of(transcript: Transcript) -> ClosingStatement:
    """The closing statement of a consultation: the turn with ``DIAGNOSIS:``, else the last one.

    The Termination Gate ends a consultation on the first ``DIAGNOSIS:``; a consultation that ran
    out of turns may still end with a free-text assessment in its last doctor turn.
    """
    doctor = [(i, t) for i, t in enumerate(transcript.turns) if t.role == "doctor"]
    for index, turn in doctor:
        if _FIELD.search(turn.text) and "diagnosis" in _sections(turn.text):
            return parse_closing(turn.text).model_copy(update={"turn": index})
    if doctor:
        index, turn = doctor[-1]
        statement = parse_closing(turn.text)
        if statement.found:
            return statement.model_copy(update={"turn": index})
    return ClosingStatement()
