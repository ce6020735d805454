"""The simulator's word lists: question topics, exam and test items, lay terms.

Sentence embeddings alone confuse "Do you take any medications?" with "Do you have any
allergies?" often enough to matter, and cannot tell an exam request from a question about the same
body part. These small hand-written tables carry that clinical common sense, in one place, as
data: the Fact Unit uses the topics and the exam/test items, the Affective Unit and the quality
suite use the lay-term map. Used by ``medverify simulate`` and ``medverify simulate eval``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_I = re.IGNORECASE

#: A time expression giving how long something has lasted (for "when did it start?").
DURATION = re.compile(
    r"\b(?:for|over) (?:about |around |almost |nearly |roughly |the (?:past|last) )?"
    r"(?:\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|several|few|a few|"
    r"couple of|a couple of)[- ](?:hours?|days?|weeks?|months?|years?)\b"
    r"|\b\d+[- ](?:hour|day|week|month|year)s?[- ](?:long )?history\b|\bhistory of\b|\bsince\b"
    r"|\bago\b|\bstarted\b|\bbegan\b|\bonset\b|\byesterday\b|\blast (?:night|week|month|year)\b"
    r"|\bthis (?:morning|afternoon|evening|week)\b",
    _I,
)
#: How often something happens.
FREQUENCY = re.compile(
    r"\b(?:once|twice|\d+ times?|several times|many times|few times)\b|\bevery\b|\bdaily\b"
    r"|\bweekly\b|\bmonthly\b|\ba (?:day|week|month|year)\b|\bper (?:day|week|month)\b|\blasts?\b"
    r"|\bepisodes?\b|\battacks?\b|\bcomes? and goes?\b|\bconstant\b|\bintermittent\b",
    _I,
)
#: What makes a symptom better or worse.
MODIFIERS = re.compile(
    r"\bworse\w*|\bbetter\b|\bimprov\w*|\brelie\w*|\btrigger\w*|\baggravat\w*|\bbrought on\b"
    r"|\bafter\b|\bwhen i\b|\bwith rest\b|\bhelps?\b",
    _I,
)


@dataclass(frozen=True)
class Topic:
    """A kind of history question and the facts that answer it.

    Attributes:
        name: short label, recorded in the selection for debugging.
        trigger: finds the topic in a doctor's sentence.
        categories: fact categories that may answer it.
        fact_filter: the fact's text or keywords must match this (``None``: any fact of the
            categories).
        pick: ``"all"`` answers with every matching fact (a patient lists all their pills),
            ``"best"`` with the single most relevant one (one onset, not every time expression).
    """

    name: str
    trigger: re.Pattern[str]
    categories: frozenset[str]
    fact_filter: re.Pattern[str] | None = None
    pick: Literal["all", "best"] = "all"


def _t(
    name: str,
    trigger: str,
    categories: str,
    fact_filter: str | re.Pattern[str] | None = None,
    pick: Literal["all", "best"] = "all",
) -> Topic:
    ff = re.compile(fact_filter, _I) if isinstance(fact_filter, str) else fact_filter
    return Topic(name, re.compile(trigger, _I), frozenset(categories.split()), ff, pick)


TOPICS: tuple[Topic, ...] = (
    _t(
        "medication",
        r"\bmedications?\b|\bmedicines?\b|\bmeds\b|\bpills?\b|\btablets?\b|\bprescri\w*"
        r"|\bsupplements?\b|\bvitamins?\b|\bover[- ]the[- ]counter\b|\btak(?:e|ing) anything\b"
        r"|\bdrugs? (?:do|are) you\b|\bon any\b|\binhalers?\b|\binsulin\b|\bcontracepti\w*"
        r"|\bbirth control\b|\bpainkillers?\b|\bregularly take\b",
        "medication",
    ),
    _t("allergy", r"\ballerg\w*|\breactions? to\b", "allergy"),
    _t(
        "family",
        r"\bfamily\b|\b(?:mother|father|mum|mom|dad|parents?|siblings?|brothers?|sisters?"
        r"|relatives?|grandparents?|grandmother|grandfather|children|kids)\b|\bruns? in\b",
        "family",
    ),
    _t(
        "smoking",
        r"\bsmok\w*|\bcigar\w*|\btobacco\b|\bvap(?:e|es|ing)\b|\bnicotine\b",
        "social history",
        r"smok|cigar|tobacco|\bvap|nicotine|\bpacks?\b",
    ),
    _t(
        "alcohol",
        r"\balcohol\w*|\bdrink(?:s|ing|er)?\b|\bbeers?\b|\bwine\b|\bliquor\b|\bbooze\b",
        "social history",
        r"alcohol|drink|beer|wine|liquor|spirits|\bunits?\b",
    ),
    _t(
        "drugs",
        r"\b(?:recreational|illicit|street|illegal) drugs?\b|\brecreational\b|\bcannabis\b"
        r"|\bmarijuana\b|\bweed\b|\bcocaine\b|\bheroin\b|\binject\w* drugs?\b|\buse drugs\b",
        "social history",
        r"drug|cannabis|marijuana|cocaine|heroin|inject|substance|recreational",
    ),
    _t(
        "work",
        r"\bwhat do you do\b|\bdo you work\b|\byour work\b|\bwork (?:as|at|in|for)\b"
        r"|\bfor work\b|\bworking\b|\bjobs?\b|\boccupation\w*|\bfor a living\b|\bemploy\w*"
        r"|\bretired\b|\bstudent\b|\bstudy\b|\bschool\b|\bcollege\b",
        "social",
        r"\bwork|\bjob|occupation|employ|retired|student|school|college|university|driver"
        r"|teacher|nurse|designer|engineer|farmer|worker|manager|clerk|\bas an? ",
    ),
    _t(
        "living",
        r"\blive\b|\bliving\b|\bmarried\b|\bwife\b|\bhusband\b|\bhousehold\b",
        "social",
        r"\blives?\b|\bliving\b|married|wife|husband|partner|alone|children|divorced|widow",
    ),
    _t(
        "sexual",
        r"\bsexual\w*|\bsex\b|\bsexually\b|\bpartners?\b|\bcondoms?\b",
        "social history",
        r"\bsex|partner|condom",
    ),
    _t(
        "travel",
        r"\btravel\w*|\btrips?\b|\babroad\b|\bbeen away\b|\boverseas\b",
        "social history",
        r"travel|\btrip|abroad|returned|overseas|visit",
    ),
    _t(
        "diet_exercise",
        r"\bdiet\b|\beat(?:ing)? habits\b|\bdo you (?:exercise|work out|play sports?)\b"
        r"|\bexercise (?:regularly|habits|routine)\b|\bhow (?:much|often) do you exercise\b"
        r"|\bphysical activity\b",
        "social history",
        r"\bdiet|exercis|\bsport|\bgym\b|\bruns?\b|\bwalks?\b",
    ),
    _t(
        "pmh",
        r"\b(?:past|previous|prior|other|ongoing|chronic|existing|underlying) (?:medical |health )?"
        r"(?:history|illness\w*|conditions?|problems?|diseases?|issues?)\b"
        r"|\bmedical (?:history|conditions?|problems?|issues?)\b|\bhealth (?:problems?|conditions?"
        r"|issues?)\b|\bbeen diagnosed\b|\bever (?:been )?diagnosed\b|\bhistory of\b"
        r"|\bany conditions\b|\bbeen (?:in|to) (?:the )?hospital\b|\bhospitali[sz]\w*"
        r"|\bhealthy\b|\bpreviously\b",
        "history",
        r"history|previous|past|diagnos|medical|condition|problems|surger|operat|hospital"
        r"|chronic|^no\b|hypertension|diabetes|asthma|healthy",
    ),
    _t(
        "surgery",
        r"\bsurger\w*|\boperations?\b|\boperated\b|\bprocedures?\b",
        "history",
        r"surger|operat|ectomy|procedure|hospital",
    ),
    _t(
        "vaccination",
        r"\bvaccin\w*|\bimmuni[sz]\w*|\bshots?\b|\bjabs?\b",
        "history social",
        r"vaccin|immuni|\bshots?\b|\bjabs?\b",
    ),
    _t(
        "onset",
        r"\bwhen did\b|\bhow long\b(?!.{0,30}\blast)|\bsince when\b|\bonset\b"
        r"|\b(?:did|has|have) (?:it|this|that|they|these|the \w+) (?:start|begin|began|started)\b"
        r"|\bstart(?:ed)?\?|\bfirst (?:notice|start)\w*|\bhow many (?:days|weeks|months|years)\b"
        r"|\bgoing on for\b|\bduration\b|\bhow recent\w*|\bwhen was the first\b",
        "symptom history",
        DURATION,
        pick="best",
    ),
    _t(
        "frequency",
        r"\bhow often\b|\bhow frequent\w*|\bhow many times\b|\bfrequency\b|\bcome and go\b"
        r"|\bhow long do(?:es)? (?:they|it|each)\b",
        "symptom history",
        FREQUENCY,
        pick="best",
    ),
    _t(
        "modifiers",
        r"\bmakes? (?:it|them|things?|the \w+) (?:better|worse)\b|\bbetter or worse\b"
        r"|\bworse\b|\bbetter\b|\brelie\w*|\btrigger\w*|\bbrings? (?:it|them) on\b"
        r"|\bhelps?\b(?! you)|\baggravat\w*|\beases?\b",
        "symptom history",
        MODIFIERS,
    ),
    _t(
        "pain_location",
        r"\bwhere\b.*\b(?:pain|hurts?|ache|sore|headaches?)\b|\b(?:pain|hurts?|ache|headaches?)\b"
        r".*\bwhere\b|\bpoint to\b|\blocat\w*|\bwhich side\b|\bwhat part\b",
        "symptom",
        r"\b(?:left|right|upper|lower|side|sided|belly|abdomen|chest|head|back|neck|behind|around"
        r"|button|temple|forehead|quadrant|one side|both sides)\b",
        pick="best",
    ),
    _t(
        "pain_radiation",
        r"\bradiat\w*|\bspread\w*|(?<!bowel )\bmove[sd]?\b(?! your)|\btravel\w* (?:anywhere|to)\b"
        r"|\bgo anywhere\b|\bshoot\w*",
        "symptom",
        r"radiat|spread|\bmoved?\b|travel|shoot",
        pick="best",
    ),
    _t(
        "pain_severity",
        r"\bhow (?:bad|severe|strong|intense)\b|\bscale\b|\bout of (?:10|ten)\b|\bseverity\b"
        r"|\brate (?:the|your|it)\b|\bworst\b",
        "symptom",
        r"\d+ ?(?:/|out of) ?10|scale|severe|mild|moderate|worst|excruciating|unbearable",
        pick="best",
    ),
    _t(
        "pain_character",
        r"\bdescribe (?:the|your|it)\b|\bwhat (?:does|is) (?:it|the pain) (?:feel|like)\b"
        r"|\bwhat (?:kind|type|sort) of (?:pain|headache|ache)\b|\bsharp\b|\bdull\b|\bburning\b"
        r"|\bthrobbing\b|\bcramp\w*|\bfeel like\b",
        "symptom",
        r"sharp|dull|burn|throb|cramp|stab|aching|pressure|squeez|tight|pound|colick|gnaw",
        pick="best",
    ),
)

#: The doctor asks the patient what brought them: answered with the chief complaint.
CHIEF_COMPLAINT = re.compile(
    r"\bwhat brings you\b|\bhow can i help\b|\bwhat can i do for you\b|\bwhat seems to be\b"
    r"|\bwhat(?:'s| is) (?:the (?:problem|matter|issue|trouble)|going on|bothering you"
    r"|troubling you|brought you)\b|\bwhy (?:are you here|did you come|have you come)\b"
    r"|\bwhat (?:made|makes) you come\b|\bhow are you (?:feeling|doing)\b"
    r"|\bwhat (?:are|were) your (?:main )?(?:symptoms|concerns?|complaints?)\b"
    r"|\btell me (?:about )?(?:what(?:'s| is)|why)\b|\bwhat happened\b",
    _I,
)
#: "Anything else?": answered with at most one unrevealed symptom.
ANYTHING_ELSE = re.compile(
    r"\banything else\b|\bany other (?:symptoms?|problems?|concerns?|complaints?|issues?"
    r"|changes?)\b|\bwhat else\b|\bis there (?:anything )?more\b|\banything more\b"
    r"|\btell me more\b|\bother symptoms\b|\bnoticed anything\b",
    _I,
)
#: Attempts to make the patient break character or print its record.
MANIPULATION = re.compile(
    r"\bignore\b.{0,40}\b(?:instructions?|rules|prompt|previous|above|everything|role)\b"
    r"|\b(?:system|your|the) prompt\b|\binstructions\b"
    r"|\b(?:print|show|dump|output|reveal|list|recite|repeat|display|read out|paste|spell|copy"
    r"|summari[sz]e)\b.{0,40}\b(?:record|file|case|chart|notes|prompt|json|everything|all (?:the )?"
    r"(?:facts|information)|script|data|backwards)\b"
    r"|\beverything (?:you know|in your|about (?:your|the) case)\b|\ball (?:you know|the facts)\b"
    r"|\byou are (?:now |actually )?(?:the|a|an) (?:doctor|physician|assistant|ai|language model"
    r"|chatbot|narrator|textbook|simulator|medical student|expert)\b"
    r"|\b(?:pretend|act as|role-?play|roleplay|let's play|imagine (?:you are|you're)"
    r"|from now on,? you|stop being|break character|out of character)\b"
    r"|\b(?:developer|debug|admin|god|jailbreak) mode\b|\bsimulat(?:ed|ion|or)\b"
    r"|\bas an ai\b|\blanguage model\b|\bcase (?:file|record)\b",
    _I,
)
#: Asking the patient for the diagnosis.
DIAGNOSIS_QUERY = re.compile(
    r"\b(?:what(?:'s| is)|tell me|give me|guess|know|name|your|my|the|own)\b.{0,30}\bdiagnos[ie]s\b"
    r"|\bwhat do (?:you think )?(?:i|you) have\b|\bwhat(?:'s| is) wrong with (?:me|you)\b"
    r"|\bwhat (?:condition|disease|illness|problem) (?:do|might|could) (?:i|you) have\b"
    r"|\bdo you know what (?:you|it) (?:have|is)\b|\bwhat(?:'s| is) (?:causing|the cause)\b"
    r"|\bwhat do you think (?:it|this) is\b|\bname of (?:your|the|my) (?:condition|disease)\b",
    _I,
)
#: A guess at a condition ("is it X?", "could this be X?"), used with words of the record's
#: diagnosis and differential names.
NAMED_CONDITION_QUESTION = re.compile(
    r"\b(?:is (?:it|this|that)|could (?:it|this|that) be|might (?:it|this) be|you think"
    r"|sounds? like|what about|or is it|confirm|deny|rule out|would it be|maybe|is that what)\b",
    _I,
)
#: A history question about a condition ("have you ever been diagnosed with X?").
HISTORY_QUESTION = re.compile(
    r"\bbeen diagnosed\b|\bhistory of\b|\bfamily\b|\bever had\b|\bbefore\b|\bin the past\b", _I
)
#: The sentence asks something (rather than greeting, thanking or thinking aloud).
QUESTION_START = re.compile(
    r"^(?:and |so |ok(?:ay)?,? |alright,? |now,? |also,? |please,? |great,? |thanks?,? )*"
    r"(?:do|does|did|have|has|had|are|is|was|were|can|could|would|will|any|anything|how|what"
    r"|when|where|why|which|who|tell|describe|explain|walk me|let's talk|let me ask|please"
    r"|i'd like to (?:know|ask|hear)|i want to (?:know|ask)|may i ask|say|ever)\b",
    _I,
)
#: A yes/no question (answered "not that I know of" when the record is silent).
YES_NO_START = re.compile(
    r"^(?:and |so |ok(?:ay)?,? |alright,? |now,? |also,? )*(?:do|does|did|have|has|had|are|is"
    r"|was|were|can|could|would|will|any|ever)\b",
    _I,
)


@dataclass(frozen=True)
class Item:
    """An examination or a test the doctor can ask for.

    Attributes:
        name: how it is named in a "not in the record" line.
        kind: ``"exam"`` or ``"test"``.
        ask: words the doctor uses for it.
        match: words that identify a record finding as its result.
        imaging: an imaging study (a body part in the request narrows the match).
    """

    name: str
    kind: Literal["exam", "test"]
    ask: tuple[str, ...]
    match: tuple[str, ...]
    imaging: bool = False


def _e(name: str, ask: str, match: str) -> Item:
    return Item(name, "exam", tuple(ask.split("|")), tuple(match.split("|")))


def _x(name: str, ask: str, match: str, imaging: bool = False) -> Item:
    return Item(name, "test", tuple(ask.split("|")), tuple(match.split("|")), imaging)


EXAM_ITEMS: tuple[Item, ...] = (
    _e(
        "vital signs",
        "vital signs|vitals|observations|obs",
        "vital|temperature|blood pressure|heart rate|pulse|respiratory rate|oxygen saturation"
        "|mmhg|bpm|spo2",
    ),
    _e("blood pressure", "blood pressure|bp", "blood pressure|bp|mmhg"),
    _e("heart rate", "heart rate|pulse", "heart rate|pulse|bpm"),
    _e("temperature", "temperature|temp", "temperature|°c|°f|febrile|afebrile"),
    _e(
        "respiratory rate",
        "respiratory rate|breathing rate|respirations",
        "respiratory rate|respirations|breaths",
    ),
    _e(
        "oxygen saturation",
        "oxygen saturation|oxygen level|oxygen levels|saturation|pulse oximetry|spo2|pulse ox",
        "oxygen saturation|saturation|spo2|pulse oximetry",
    ),
    _e("weight", "weight|weigh you|bmi", "weight|bmi|kg"),
    _e(
        "eyes",
        "eyes|eye|eyelids|eyelid|pupils|eye movements|gaze",
        "eye|eyelid|pupil|gaze|ptosis|fundoscopy|optic|visual|extraocular|conjunctiva|sclera"
        "|nystagmus|papilledema",
    ),
    _e(
        "fundoscopy",
        "fundoscopy|fundi|back of your eye|back of your eyes|optic disc|optic discs|ophthalmoscope",
        "fundoscopy|fundi|optic|papilledema|retina",
    ),
    _e("ears", "ears|ear|otoscope", "ear|tympanic|otoscopy"),
    _e("throat", "throat|mouth|tonsils|pharynx", "throat|pharynx|tonsil|mouth|oral"),
    _e(
        "neck",
        "neck|thyroid gland|lymph nodes|glands",
        "neck|thyroid|lymph|cervical|nodes|jvp|lymphadenopathy",
    ),
    _e(
        "heart",
        "heart|heart sounds|cardiac|cardiovascular",
        "heart sounds|cardiac|murmur|cardiovascular|s1|s2",
    ),
    _e(
        "lungs",
        "lungs|lung|chest|breathing|breath sounds|respiratory exam|respiratory system",
        "lung|lungs|chest|breath sounds|crackles|wheeze|wheezes|wheezing|auscultation|percussion"
        "|respiratory exam|respiratory examination|respiratory system",
    ),
    _e(
        "abdomen",
        "abdomen|belly|stomach|tummy|abdominal",
        "abdomen|abdominal|belly|bowel sounds|tenderness|mcburney|rovsing|murphy|liver|spleen",
    ),
    _e("skin", "skin|rash|rashes", "skin|rash|rashes|erythema|jaundice|pallor"),
    _e(
        "neurological",
        "neurological|neurologic|neuro|nervous system",
        "neurological|neurologic|cranial|reflexes|strength|sensation|motor|gait|coordination",
    ),
    _e("cranial nerves", "cranial nerves|cranial nerve", "cranial|ptosis|facial"),
    _e("reflexes", "reflexes|reflex", "reflexes|reflex"),
    _e(
        "strength",
        "strength|muscle power|power|muscle strength|motor|squeeze my hand|push against",
        "strength|motor|power|tone|atrophy",
    ),
    _e("sensation", "sensation|sensory|feel this|numbness", "sensation|sensory|numb"),
    _e("gait", "gait|walk for me|balance|coordination", "gait|coordination|romberg|balance"),
    _e(
        "joints",
        "joints|joint|knee|knees|hip|hips|shoulder|shoulders|spine",
        "joint|joints|knee|hip|shoulder|spine|range of motion|effusion",
    ),
    _e(
        "legs",
        "legs|leg|ankles|ankle|feet|calves|calf",
        "leg|legs|ankle|calf|calves|edema|oedema|feet|pedal",
    ),
    _e("pelvic", "pelvic|genital|vaginal", "pelvic|genital|vaginal|cervix|adnexa"),
    _e("rectal", "rectal|digital rectal", "rectal"),
)

TEST_ITEMS: tuple[Item, ...] = (
    _x(
        "blood tests",
        "blood tests|blood test|blood work|bloodwork|labs|lab tests|laboratory tests"
        "|blood panel|routine bloods",
        "blood|serum|plasma|count|cbc|hemoglobin|haemoglobin|white cell|wbc|platelets|sodium"
        "|potassium|creatinine|urea|glucose|crp|c-reactive|esr|antibodies|troponin|tsh|thyroid"
        "|liver|electrolytes|lactate|d-dimer|hba1c|lipids|ferritin|inr|level|levels|titer",
    ),
    _x(
        "complete blood count",
        "complete blood count|full blood count|cbc|fbc|blood count|white cell count|white count"
        "|hemoglobin|haemoglobin|wbc",
        "blood count|cbc|fbc|white cell|wbc|hemoglobin|haemoglobin|platelets|neutrophilia"
        "|neutrophils|leukocytosis",
    ),
    _x(
        "inflammatory markers",
        "crp|c-reactive protein|esr|inflammatory markers|sed rate",
        "crp|c-reactive|esr|inflammatory|sedimentation",
    ),
    _x(
        "kidney function and electrolytes",
        "electrolytes|kidney function|renal function|creatinine|sodium|potassium|bmp"
        "|metabolic panel|u&e",
        "electrolytes|creatinine|sodium|potassium|urea|renal|kidney function|bun",
    ),
    _x(
        "liver function tests",
        "liver function|lfts|liver enzymes|bilirubin|liver tests",
        "liver|lft|lfts|alt|ast|bilirubin|alkaline phosphatase",
    ),
    _x(
        "thyroid function tests",
        "thyroid function|tsh|thyroid tests|thyroid test|thyroid levels|t4",
        "thyroid|tsh|t4|t3",
    ),
    _x("blood glucose", "glucose|blood sugar|hba1c|sugar level", "glucose|sugar|hba1c"),
    _x("troponin", "troponin|cardiac enzymes", "troponin"),
    _x("d-dimer", "d-dimer|d dimer", "d-dimer"),
    _x("blood cultures", "blood cultures|blood culture", "culture|cultures"),
    _x(
        "urinalysis",
        "urinalysis|urine test|urine sample|urine dip|dipstick|urine analysis",
        "urinalysis|urine|dipstick",
    ),
    _x("pregnancy test", "pregnancy test|hcg|beta-hcg", "pregnancy|hcg"),
    _x("ECG", "ecg|ekg|electrocardiogram|heart tracing", "ecg|ekg|electrocardiogram"),
    _x(
        "chest X-ray",
        "chest x-ray|chest xray|cxr|chest radiograph|chest film",
        "chest x-ray|chest xray|cxr|chest radiograph",
    ),
    _x("X-ray", "x-ray|xray|x-rays|radiograph", "x-ray|xray|radiograph", imaging=True),
    _x("CT", "ct|cat scan|ct scan|computed tomography", "ct|computed tomography", imaging=True),
    _x("MRI", "mri|mr scan|magnetic resonance", "mri|magnetic resonance", imaging=True),
    _x(
        "ultrasound",
        "ultrasound|sonogram|echocardiogram|echo|doppler",
        "ultrasound|sonography|echocardiogram|doppler",
        imaging=True,
    ),
    _x(
        "EMG",
        "emg|electromyography|nerve conduction|nerve stimulation",
        "emg|electromyography|nerve conduction|stimulation",
    ),
    _x("EEG", "eeg|electroencephalogram", "eeg|electroencephalogram"),
    _x(
        "lumbar puncture",
        "lumbar puncture|spinal tap|csf",
        "lumbar puncture|csf|cerebrospinal",
    ),
    _x("antibody tests", "antibodies|antibody|serology|titers|titres", "antibodies|serology|titer"),
    _x("stool tests", "stool test|stool sample|stool culture", "stool|fecal|faecal"),
    _x("biopsy", "biopsy", "biopsy|histology"),
    _x(
        "endoscopy",
        "endoscopy|colonoscopy|gastroscopy|upper endoscopy",
        "endoscopy|colonoscopy|gastroscopy",
    ),
    _x("spirometry", "spirometry|lung function|peak flow", "spirometry|fev1|peak flow"),
    _x(
        "swab test",
        "swab|pcr|rapid test|strep test|flu test|covid test",
        "swab|pcr|rapid|strep|influenza|covid",
    ),
)

#: Blood tests more specific than "blood tests" (naming one means "blood tests" is that one).
BLOOD_ITEMS = frozenset(
    {
        "complete blood count",
        "inflammatory markers",
        "kidney function and electrolytes",
        "liver function tests",
        "thyroid function tests",
        "blood glucose",
        "troponin",
        "d-dimer",
        "blood cultures",
        "antibody tests",
    }
)

#: Body parts that narrow an imaging request ("head CT" is not "CT abdomen").
BODY_PARTS: dict[str, tuple[str, ...]] = {
    "head": ("head", "brain", "cranial", "skull"),
    "chest": ("chest", "thorax", "thoracic", "lung", "lungs", "heart"),
    "abdomen": ("abdomen", "abdominal", "belly", "stomach", "appendix", "liver", "gallbladder"),
    "pelvis": ("pelvis", "pelvic", "uterus", "ovaries", "bladder"),
    "spine": ("spine", "spinal", "back", "lumbar", "cervical"),
    "neck": ("neck", "thyroid", "carotid"),
    "limb": ("leg", "legs", "arm", "arms", "knee", "hip", "ankle", "wrist", "hand", "foot"),
}

#: Words that make a sentence a request to examine.
EXAM_VERBS = re.compile(
    r"\b(?:examine|examining|examination|exam|check|checking|look at|look in|looking at|listen"
    r"|listening|feel your|feel for|palpate|press on|press your|auscultate|measure|take your"
    r"|inspect|assess|shine a light|observe|test your|see your|have a look)\b",
    _I,
)
#: Words that make a sentence an order for a test.
TEST_VERBS = re.compile(
    r"\b(?:order|ordering|run|running|get|getting|send|sending|do|arrange|request|draw|take"
    r"|check|perform|book|schedule|results?|obtain|need|want)\b",
    _I,
)
#: Words that make a sentence about tests (not just "check" or "get"): required before a test
#: result is revealed because the sentence names one of its keywords.
TEST_CONTEXT = re.compile(
    r"\b(?:order|ordering|run|running|send|sending|arrange|request|draw|perform|book|schedule"
    r"|results?|tests?|testing|labs?|lab work|blood ?work|scans?|imaging|studies|levels?|panel"
    r"|screen|screening|workup|work-up|investigations?|done|checked|measured|drawn|sent)\b",
    _I,
)
#: A general physical examination with no body part named.
GENERAL_EXAM = re.compile(
    r"\bphysical (?:exam|examination)\b|\bexamine you\b|\bfull (?:exam|examination)\b"
    r"|\bgeneral (?:exam|examination)\b|\bhave a look at you\b|\bcheck you over\b"
    r"|\bexamination\b(?! of)|\bexam\b(?! of)",
    _I,
)
#: Tests asked for without saying which.
UNSPECIFIED_TESTS = re.compile(
    r"\b(?:some|a few|more|any|the|further|routine|basic) (?:tests|investigations|workup"
    r"|work-up|studies|imaging|scans?)\b|\brun tests\b|\bimaging\b",
    _I,
)
#: The doctor asks about past tests ("have you had a CT before?"): a history question.
PAST_TEST_QUESTION = re.compile(
    r"\bhave you (?:ever )?had\b|\bdid you (?:ever )?have\b|\bhave you been\b|\bdo you have\b"
    r"|\bbefore\b|\bin the past\b|\bprevious\b|\blast time\b|\bever had\b",
    _I,
)

# -- exam and test items: extra words, weak words, parts ------------------------------------
#
# Used by :mod:`medverify.simulator.exam_findings` to place a finding under its item and by
# :mod:`medverify.simulator.exam_requests` to narrow a request to the part it names.

#: Words of an item's match list that other systems use as well ("tenderness", "percussion"):
#: on their own they place a finding only where no other item is named.
ITEM_WEAK_TERMS: dict[str, frozenset[str]] = {
    "lungs": frozenset({"auscultation", "percussion", "chest"}),
    "abdomen": frozenset({"tenderness"}),
    "skin": frozenset({"erythema"}),
    "neck": frozenset({"cervical", "nodes"}),
    "joints": frozenset({"range of motion", "effusion"}),
    "legs": frozenset({"edema", "oedema"}),
    "strength": frozenset({"tone", "power"}),
    "blood tests": frozenset({"blood", "level", "levels", "count", "serum", "plasma"}),
}
#: Words for an item that the lexicon lacks, used to place findings ("Dermatological
#: examination" is the skin, "Red blood cell count" is part of the blood count).
ITEM_EXTRA_TERMS: dict[str, tuple[str, ...]] = {
    "skin": ("dermatological", "dermatologic", "alopecia"),
    "ears": ("otoscopic", "otoscopy"),
    "throat": ("oral cavity", "mucous membranes"),
    "pelvic": (
        "adnexal",
        "cervical motion",
        "cervical discharge",
        "uterus",
        "uterine",
        "speculum",
        "genitalia",
    ),
    "fundoscopy": ("ophthalmoscopy", "ophthalmoscopic", "retinal"),
    "eyes": ("ophthalmoscopy", "ophthalmoscopic", "retinal"),
    "abdomen": ("hepatomegaly", "splenomegaly", "hepatosplenomegaly"),
    "lungs": ("pulmonary",),
    "complete blood count": (
        "red blood cell",
        "red cell",
        "rbc",
        "mcv",
        "mean corpuscular",
        "white blood cell",
        "leukocyte count",
        "leukocytes",
        "platelet",
        "platelet count",
        "lymphocytes",
        "monocytes",
        "differential count",
    ),
}
#: The parts of an item a request can name ("your knee" of the joints), by the words that name
#: them; findings that name another part of the item ("Right knee" for "your shoulder") do not
#: answer, findings that name none do.
ITEM_PARTS: dict[str, dict[str, tuple[str, ...]]] = {
    "joints": {
        "knee": ("knee",),
        "hip": ("hip",),
        "shoulder": ("shoulder", "rotator cuff"),
        "spine": ("spine", "spinal", "vertebral"),
        "elbow": ("elbow",),
        "wrist": ("wrist",),
    },
    "neck": {
        "thyroid": ("thyroid",),
        "lymph nodes": ("lymph", "lymphadenopathy", "nodes", "glands"),
    },
    "legs": {
        "ankle": ("ankle", "achilles"),
        "feet": ("feet", "foot", "soles"),
        "calf": ("calf", "calves"),
    },
    "eyes": {"pupils": ("pupil",), "eyelids": ("eyelid", "ptosis")},
    "throat": {
        "mouth": ("mouth", "oral", "tongue", "teeth", "dental", "mucous", "buccal"),
        "tonsils": ("tonsil",),
    },
}
#: Asks that name one of those parts.
ASKED_PARTS: dict[str, str] = {
    **{a: "knee" for a in ("knee", "knees")},
    **{a: "hip" for a in ("hip", "hips")},
    **{a: "shoulder" for a in ("shoulder", "shoulders")},
    "spine": "spine",
    "thyroid gland": "thyroid",
    "lymph nodes": "lymph nodes",
    "glands": "lymph nodes",
    **{a: "ankle" for a in ("ankle", "ankles")},
    "feet": "feet",
    **{a: "calf" for a in ("calf", "calves")},
    "pupils": "pupils",
    **{a: "eyelids" for a in ("eyelid", "eyelids")},
    "mouth": "mouth",
    "tonsils": "tonsils",
}

#: Technical words and their everyday equivalents, used for low health-literacy personas and
#: checked by the quality suite (a low-literacy patient never says the left-hand side).
LAY_TERMS: dict[str, str] = {
    "diplopia": "seeing double",
    "ptosis": "droopy eyelid",
    "dyspnea": "trouble breathing",
    "dyspnoea": "trouble breathing",
    "hypertension": "high blood pressure",
    "hypotension": "low blood pressure",
    "hyperlipidemia": "high cholesterol",
    "hypercholesterolemia": "high cholesterol",
    "hypothyroidism": "an underactive thyroid",
    "hyperthyroidism": "an overactive thyroid",
    "myocardial infarction": "heart attack",
    "emesis": "throwing up",
    "vomiting": "throwing up",
    "vomited": "threw up",
    "nauseous": "sick to my stomach",
    "nausea": "queasiness",
    "abdominal": "belly",
    "abdomen": "belly",
    "periumbilical": "around the belly button",
    "right lower quadrant": "lower right side of my belly",
    "photophobia": "light bothering my eyes",
    "phonophobia": "noise bothering me",
    "syncope": "fainting",
    "palpitations": "heart racing",
    "diaphoresis": "sweating",
    "pruritus": "itching",
    "erythema": "redness",
    "edema": "swelling",
    "oedema": "swelling",
    "fatigue": "tiredness",
    "upper extremities": "arms",
    "lower extremities": "legs",
    "upper limbs": "arms",
    "lower limbs": "legs",
    "anorexia": "not feeling hungry",
    "unilateral": "one-sided",
    "bilateral": "on both sides",
    "dysuria": "burning when I pee",
    "hematuria": "blood in my pee",
    "urination": "peeing",
    "febrile": "feverish",
    "pyrexia": "fever",
    "insomnia": "trouble sleeping",
    "paresthesia": "pins and needles",
    "paresthesias": "pins and needles",
    "vertigo": "the room spinning",
    "tinnitus": "ringing in my ears",
    "rhinorrhea": "runny nose",
    "myalgia": "muscle aches",
    "myalgias": "muscle aches",
    "arthralgia": "joint pain",
    "arthralgias": "joint pain",
    "cephalalgia": "headache",
    "sputum": "phlegm",
    "productive cough": "wet cough",
    "pleuritic": "sharp when I breathe",
    "melena": "black stools",
    "hematochezia": "blood in my stool",
    "hemoptysis": "coughing up blood",
    "orthopnea": "trouble breathing lying flat",
    "polyuria": "peeing a lot",
    "polydipsia": "being very thirsty",
    "pneumococcal vaccine": "pneumonia shot",
    "oral contraceptive pill": "birth control pill",
    "contraceptive pill": "birth control pill",
    "nsaids": "pain pills",
    "analgesics": "painkillers",
    "past medical history": "health problems before",
    "medical history": "health problems",
    "exertion": "effort",
    "significantly": "a lot",
    "occasionally": "now and then",
    "gastrointestinal": "stomach",
    "cardiac": "heart",
    "pulmonary": "lung",
    "renal": "kidney",
    "hepatic": "liver",
    "bowel movement": "poo",
    "bowel movements": "poos",
    "stool": "poo",
    "defecation": "going to the toilet",
    "micturition": "peeing",
    "intermittent": "on and off",
    "acute": "sudden",
    "chronic": "long-lasting",
}

#: Words of clinical narrative too common to identify a fact on their own (case importers keep
#: every content word as a keyword: "complaints", "days", "elevated" ...).
GENERIC_WORDS = frozenset(
    re.findall(
        r"\S+",
        """examination exam findings finding normal rate count complete symptoms symptom tests
        test months days weeks years week month year day hours hour minutes negative positive
        left right mm limits abnormalities abnormality decreased increased elevated reduced
        multiple mild moderate severe upper lower inspection unremarkable throughout appearance
        acute chronic changes change changed resolved clear physical total onset persistent
        similar signs sign status range function findings treated treatment previous intact
        active studies study night period area presence free detected tasks every age side
        testing result results first poor body evidence heard external sudden worse worsening
        improvement improved loss complaints complaint difficulty generalized diffuse known type
        habits placed visible air room level levels history medical patient reports reported
        noted presents presented time times episode episodes recent recently initial additional
        continued despite developed stable regimen accompanied emergency department abnormal
        significant slightly slight new old since ago currently current daily regular regularly
        within bilateral unilateral general medication medications healthy denies denied
        experiences experienced experiencing feeling feels felt began started notes noticed
        states describes described associated related due following prior past present absent
        noticeable marked markedly approximately about several few many some per use used uses
        taking takes take took well good better bad home work life family social other long
        short half going ongoing couple lot little much part parts way ways thing things""",
    )
)

#: Everyday phrases a doctor uses and the technical terms a record writes for them, so that
#: "Have you felt your heart racing?" finds "denies palpitations" (the reverse of LAY_TERMS).
LAY_SYNONYMS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(pattern, _I), tuple(terms.split("|")))
    for pattern, terms in (
        (r"\bseeing double\b|\bdouble vision\b|\btwo of everything\b", "diplopia|double vision"),
        (r"\b(?:trouble|difficulty|hard to) breath\w*|\bshort of breath\b|\bbreathless\w*",
         "dyspnea|dyspnoea|shortness of breath|short of breath"),
        (r"\bbreathe lying flat\b|\blying flat\b", "orthopnea|orthopnoea"),
        (r"\bhigh blood pressure\b", "hypertension"),
        (r"\bhigh cholesterol\b", "hyperlipidemia|hypercholesterolemia|cholesterol"),
        (r"\bthrow(?:ing|n)? up\b|\bthrew up\b|\bbeen sick\b", "vomiting|vomited|emesis|vomit"),
        (r"\bsick to (?:your|my) stomach\b|\bqueas\w*|\bupset stomach\b",
         "nausea|nauseous|nauseated"),
        (r"\blight bother\w*|\bbright light\w*", "photophobia"),
        (r"\bfaint(?:ed|ing)?\b|\bpass(?:ed)? out\b|\blos[te] consciousness\b",
         "syncope|fainting|loss of consciousness"),
        (r"\bheart (?:racing|pounding|fluttering)\b|\bracing heart\b|\bpalpitat\w*",
         "palpitations|heart racing"),
        (r"\bsweat\w*", "diaphoresis|sweating|sweats"),
        (r"\bitch\w*", "pruritus|itching|itchy"),
        (r"\bswell\w*|\bswollen\b", "edema|oedema|swelling|swollen"),
        (r"\btired\b|\btiredness\b|\bexhausted\b|\blow energy\b|\bworn out\b",
         "fatigue|tiredness|tired|lethargy|malaise"),
        (r"\bappetite\b|\bhungry\b", "anorexia|appetite|eating"),
        (r"\bburn\w* when you (?:pee|urinate)\b|\bpain\w* when you (?:pee|urinate)\b|"
         r"\bhurts? to (?:pee|urinate)\b", "dysuria|burning|painful urination"),
        (r"\bblood in (?:your|the) (?:pee|urine)\b", "hematuria|blood in urine"),
        (r"\bfever\w*|\btemperature\b|\bhot and cold\b", "fever|febrile|pyrexia|feverish|chills"),
        (r"\btrouble sleeping\b|\bsleep\w*", "insomnia|sleep"),
        (r"\bpins and needles\b|\btingl\w*|\bnumb\w*",
         "paresthesia|paresthesias|numbness|tingling"),
        (r"\broom (?:ever )?spin\w*|\bdizz\w*", "vertigo|dizziness|dizzy"),
        (r"\bringing in (?:your|the) ears?\b", "tinnitus"),
        (r"\brunny nose\b", "rhinorrhea|runny nose"),
        (r"\bmuscle aches?\b|\bmuscles? hurt\b", "myalgia|myalgias|muscle aches|muscle pain"),
        (r"\bjoint pain\b|\bjoints? hurt\b", "arthralgia|arthralgias|joint pain"),
        (r"\bcough\w* up blood\b", "hemoptysis|coughing up blood"),
        (r"\bpee\w* a lot\b|\burinat\w* (?:a lot|often|frequently)\b",
         "polyuria|frequent urination"),
        (r"\bvery thirsty\b|\bthirst\w*", "polydipsia|thirst"),
        (r"\bblack stools?\b|\btarry\b", "melena"),
        (r"\bweight loss\b|\blost weight\b|\blosing weight\b", "weight loss"),
    )
)  # fmt: skip
