"""The small clinical tables behind the generic items of the rubric core.

The shipped case records have no red flags or management plans (their sources lack them), so
the core can say little about treatment from the record alone. What it can say honestly follows
from the diagnosis's *kind*, for a few kinds where the expected conduct is textbook and does not
depend on details the record lacks:

* an emergency diagnosis needs urgent hospital care, and sending the patient home is harmful;
* a contagious infection calls for advice on not spreading it (with the usual measure named);
* a drug-induced condition calls for identifying and stopping or adjusting the culprit drug;
* a documented drug allergy forbids the allergen's drug class.

Every table is matched against the record's own words (diagnosis, facts); a case whose
diagnosis matches nothing gets no such item rather than a guessed one. The entries were
written by a project session from standard clinical teaching, not by physicians; extend them as
data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_I = re.IGNORECASE


@dataclass(frozen=True)
class DrugClass:
    """A drug class an allergy or reaction to one of its members rules out."""

    name: str  # how a criterion names the class
    members: re.Pattern[str]  # words that name the class or a member


def _dc(name: str, members: str) -> DrugClass:
    return DrugClass(name, re.compile(rf"\b(?:{members})\b", _I))


DRUG_CLASSES: tuple[DrugClass, ...] = (
    _dc(
        "penicillins or other beta-lactam antibiotics (e.g. amoxicillin)",
        r"penicillins?|amoxicillin|ampicillin|piperacillin|flucloxacillin|dicloxacillin"
        r"|nafcillin|oxacillin|augmentin|beta[- ]lactams?",
    ),
    _dc(
        "cephalosporins (e.g. cephalexin, ceftriaxone)",
        r"cephalosporins?|cephalexin|cefazolin|ceftriaxone|cefuroxime|cefdinir",
    ),
    _dc(
        "sulfonamide antibiotics (e.g. trimethoprim-sulfamethoxazole)",
        r"sulfa|sulfonamides?|sulfamethoxazole|trimethoprim[- ]sulfamethoxazole|bactrim"
        r"|co[- ]trimoxazole",
    ),
    _dc(
        "aspirin or other NSAIDs (e.g. ibuprofen)",
        r"aspirin|nsaids?|ibuprofen|naproxen|diclofenac|meloxicam|indomethacin|ketorolac",
    ),
    _dc(
        "opioids (e.g. codeine, morphine)", r"opioids?|opiates?|codeine|morphine|oxycodone|tramadol"
    ),
    _dc(
        "macrolide antibiotics (e.g. azithromycin)",
        r"macrolides?|azithromycin|erythromycin|clarithromycin",
    ),
    _dc("tetracyclines (e.g. doxycycline)", r"tetracyclines?|doxycycline|minocycline"),
    _dc(
        "fluoroquinolones (e.g. ciprofloxacin)",
        r"fluoroquinolones?|quinolones?|ciprofloxacin|levofloxacin|moxifloxacin",
    ),
    _dc(
        "ACE inhibitors (e.g. lisinopril)",
        r"ace inhibitors?|lisinopril|enalapril|captopril|ramipril|perindopril",
    ),
    _dc("iodinated contrast", r"iodinated contrast|contrast (?:dye|media|medium)|iodine"),
)

#: A record line saying there is no allergy (no negative item then).
NO_ALLERGY = re.compile(
    r"\bno (?:known )?(?:drug |medication )?allerg\w*|\bnkda\b|\bdenies (?:any )?allerg\w*"
    r"|\bnot allergic\b",
    _I,
)
#: Words that make a medication fact a reaction to that drug ("developed a rash on amoxicillin").
REACTION = re.compile(
    r"\b(?:rash|hives|urticaria|anaphyla\w*|angioedema|swelling of the (?:face|lips|tongue)"
    r"|allerg\w*|reaction|intoleran\w*)\b",
    _I,
)


def drug_classes_in(text: str) -> list[DrugClass]:
    """Drug classes named (by class or member) in ``text``, in table order."""
    return [dc for dc in DRUG_CLASSES if dc.members.search(text)]


#: Diagnoses that need emergency care: delay or discharge home risks death or lasting harm.
EMERGENCY = re.compile(
    r"mesenteric ischemia|boerhaave|esophageal (?:rupture|perforation)|neuroleptic malignant"
    r"|unstable angina|myocardial infarction|\bnstemi\b|\bstemi\b|acute coronary|pulmonary embol"
    r"|aortic dissection|ruptured|perforat\w*|\bsepsis\b|septic shock|meningitis|encephalitis"
    r"|\bstroke\b|subarachnoid|ectopic pregnancy|testicular torsion|ovarian torsion"
    r"|diabetic ketoacidosis|acute pancreatitis|tension pneumothorax|cauda equina"
    r"|anaphyla\w*|status epilepticus|epiglottitis",
    _I,
)

#: Contagious infections and the usual measure against spreading them.
CONTAGIOUS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"tuberculosis|\btb\b", _I),
        "respiratory isolation and screening of close contacts",
    ),
    (
        re.compile(r"rubella|measles", _I),
        "staying away from others, especially pregnant women, while infectious",
    ),
    (
        re.compile(r"varicella|chickenpox", _I),
        "staying away from others, especially pregnant women, until the lesions crust",
    ),
    (re.compile(r"difficile", _I), "hand washing with soap and water and contact precautions"),
    (
        re.compile(r"tinea", _I),
        "not sharing combs, hats or bedding, and checking household contacts",
    ),
    (re.compile(r"molluscum", _I), "not sharing towels and not scratching or picking the lesions"),
    (
        re.compile(r"influenza|covid|pertussis", _I),
        "staying home and covering coughs while infectious",
    ),
    (
        re.compile(r"scabies|impetigo|head lice", _I),
        "treating household contacts and washing bedding",
    ),
    (
        re.compile(r"chlamydia|gonorrh|syphilis|pelvic inflammatory|trichomon|\bhiv\b|herpes", _I),
        "testing and treatment of sexual partners and abstaining until treatment is complete",
    ),
)

#: Conditions caused by a drug, and how a criterion names the culprit.
DRUG_INDUCED: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"interstitial nephritis", _I),
        "the drug most likely responsible (e.g. a recent antibiotic, NSAID or proton-pump "
        "inhibitor)",
    ),
    (re.compile(r"neuroleptic malignant", _I), "the antipsychotic"),
    (
        re.compile(r"akathisia|tardive|dystonia|drug[- ]induced parkinson", _I),
        "the antipsychotic (dose reduction or a switch)",
    ),
    (re.compile(r"ototoxic", _I), "the ototoxic drug"),
    (
        re.compile(r"drug (?:reaction|eruption)|serotonin syndrome|stevens[- ]johnson", _I),
        "the culprit drug",
    ),
)

#: Facts that make a patient pregnant (drug and imaging choices change).
PREGNANT = re.compile(r"\bpregnan\w*|\bgestation\w*|\bweeks? of gestation\b", _I)
