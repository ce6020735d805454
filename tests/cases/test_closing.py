"""The closing statement: what a doctor concluded, told apart from what it merely mentioned."""

from __future__ import annotations

import pytest

from medverify.cases.closing import closing_of, diagnosis_matches, names_condition, parse_closing
from medverify.cases.records import Persona, Transcript, Turn


def test_mentioning_a_diagnosis_to_reject_it_is_not_stating_it():
    s = parse_closing("DIAGNOSIS: Epileptic seizure. It is definitely not vasovagal syncope.")
    assert s.final == "Epileptic seizure"
    assert s.ruled_out == ["vasovagal syncope"]
    assert not s.names_final("Vasovagal syncope")
    assert s.wrong_final("Vasovagal syncope")
    assert not s.considers("Vasovagal syncope")


def test_inline_negation_and_fields_on_one_line():
    s = parse_closing(
        "**DIAGNOSIS:** Unstable angina, not stable angina. DIFFERENTIAL: NSTEMI, variant angina "
        "TESTS: ECG, troponin PLAN: aspirin and admit"
    )
    assert s.final == "Unstable angina" and s.ruled_out == ["stable angina"]
    assert s.differential == ["NSTEMI", "variant angina"]
    assert s.tests == ["ECG", "troponin"] and s.plan == "aspirin and admit"
    assert s.names_final("Unstable angina") and not s.names_final("Stable angina")


def test_hedging_over_several_diagnoses_states_none_as_final():
    s = parse_closing("DIAGNOSIS: most likely myasthenia gravis or Lambert-Eaton syndrome")
    assert s.hedged and s.final is None
    assert not s.names_final("Myasthenia gravis")
    assert s.considers("Myasthenia gravis") and not s.wrong_final("Myasthenia gravis")
    assert s.wrong_final("Multiple sclerosis")


def test_free_text_without_the_marker():
    s = parse_closing("From what you tell me, I think you have a tension headache. Rest helps.")
    assert s.found and s.final == "tension headache"
    assert not parse_closing("Have you had any fever?").found


def test_a_semicolon_aside_is_not_a_second_diagnosis():
    s = parse_closing("DIAGNOSIS: Probably a viral infection; nothing serious.\nPLAN: rest")
    assert s.final == "viral infection" and not s.hedged


@pytest.mark.parametrize(
    ("stated", "truth"),
    [
        ("Parkinson's disease", "Parkinson disease"),
        ("Sjogren's syndrome", "Primary Sjogren’s syndrome"),
        ("pancreatitis", "Acute pancreatitis"),
        ("MG", "Myasthenia gravis"),
        ("BPPV", "Benign paroxysmal positional vertigo"),
        ("frozen shoulder", "Adhesive capsulitis"),
        ("CMV retinitis", "Cytomegalovirus retinitis"),
        ("Pulmonary tuberculosis", "Tuberculosis"),
        ("uterine fibroids", "Leiomyoma"),
        ("heart attack", "Myocardial infarction"),
    ],
)
def test_synonyms_abbreviations_and_partial_names_match(stated, truth):
    assert diagnosis_matches(stated, truth)


@pytest.mark.parametrize(
    ("stated", "truth"),
    [
        ("acute viral rhinosinusitis", "Acute bacterial rhinosinusitis"),
        ("stable angina", "Unstable angina"),
        ("chronic pancreatitis", "Acute pancreatitis"),
        ("Beta thalassemia trait", "Alpha-thalassemia trait"),
        ("Alzheimer's dementia", "Vascular dementia"),
        ("pancreatic cancer", "Acute pancreatitis"),
        ("meningitis", "Listeriosis"),
        ("", "Listeriosis"),
    ],
)
def test_a_different_diagnosis_does_not_match(stated, truth):
    assert not diagnosis_matches(stated, truth)


def test_the_closing_turn_is_found_in_a_transcript():
    turns = [
        Turn(role="patient", text="I feel dizzy."),
        Turn(role="doctor", text="When does it happen?"),
        Turn(role="patient", text="When I roll over in bed."),
        Turn(role="doctor", text="DIAGNOSIS: BPPV\nPLAN: Epley manoeuvre"),
    ]
    t = Transcript(case_id="x", persona=Persona(), turns=turns, final_diagnosis="BPPV")
    s = closing_of(t)
    assert s.turn == 3 and s.names_final("Benign paroxysmal positional vertigo")
    assert not closing_of(Transcript(case_id="x", persona=Persona(), turns=turns[:3])).found


@pytest.mark.parametrize(
    "stated",
    [
        "myasthenia gravis",
        "Acute interstitial nephritis secondary to a drug reaction",
        "community-acquired pneumonia, likely bacterial",
        "Type 2 diabetes mellitus",
        "GERD",
        "Large leg wound on right lower leg",
        "Scleroderma",
        "heart attack",
        "Stage 3 chronic kidney disease",
        "COVID-19",
    ],
)
def test_a_condition_is_a_named_diagnosis(stated):
    """Conditions as doctors write them, and the search's own (a wound, scleroderma)."""
    assert names_condition(stated)


@pytest.mark.parametrize(
    "stated",
    [
        None,
        "",
        "I would like to know what you mean by frequent urination and other symptoms.",
        "Patient with a history of high blood pressure and type 2 diabetes mellitus",
        "You've been coming in for a routine examination, and your symptoms are quite severe.",
        "Red Flag Assessment for Hypertension and the use of amlodipine is contraindicated to the "
        "extent discussed in the notes",
        "unclear, more tests needed",
        "What could it be?",
        "No indications of injury or incident, I don't think there's anything suspicious",
    ],
)
def test_a_sentence_after_diagnosis_is_not_a_named_diagnosis(stated):
    assert not names_condition(stated)


@pytest.mark.parametrize(
    "text",
    [
        "Do you have any other symptoms?",
        "Thank you, you have been very helpful.",
        "You have described it well; thank you for coming in.",
        # the base model's last turn on a held-out case, read as the diagnosis "any more questions"
        "If you have any more questions or need further assistance, feel free to ask.",
    ],
)
def test_a_question_or_a_thank_you_states_no_diagnosis(text):
    """Free text with the words of "you have X" that asks, thanks or offers concludes nothing."""
    statement = parse_closing(text)
    assert not statement.found and statement.candidates == []


def test_a_free_text_diagnosis_is_still_read():
    assert parse_closing("I think you most likely have myasthenia gravis.").candidates == [
        "myasthenia gravis"
    ]


@pytest.mark.parametrize(
    ("text", "orders"),
    [
        ("DIAGNOSIS: Bell's palsy\nTESTS: blood tests", True),
        ("DIAGNOSIS: Bell's palsy\nPLAN: I'd like an MRI of your head, then review.", True),
        ("DIAGNOSIS: Bell's palsy\nPLAN: rest, and come back if it gets worse.", False),
        ("DIAGNOSIS: Bell's palsy", False),
    ],
)
def test_a_closing_orders_tests_in_a_tests_line_or_its_plan(text, orders):
    assert parse_closing(text).orders_tests() is orders


@pytest.mark.parametrize(
    "stated",
    [
        "Normal resting heart rate: 40.1 beats/min",
        "Family History of Similar Symptoms",
        "Generalized Fatigue, Dilated Pupil, Unusual Symptoms",
        "Chest X-ray result: result not available.",
        "Urgent abdominal emergency, presenting patient with a suspected abdominal mass.",
        "Pain and swelling in the right ring finger, not on any other bones.",
        "The mother is worried about her nephew's leg injury.",
    ],
)
def test_what_the_search_wrote_once_naming_paid_names_no_condition(stated):
    """A round's chosen closings (session 11), before names had to read as a condition."""
    assert not names_condition(stated)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("DIAGNOSIS: Suspected nephrotic syndrome", "nephrotic syndrome"),
        ("DIAGNOSIS: The patient's most likely diagnosis is pneumonia.", "pneumonia"),
        ("DIAGNOSIS: Likely diagnosis: acute appendicitis", "acute appendicitis"),
        ("DIAGNOSIS: Gout based on the results of the joint aspirate", "Gout"),
        ("DIAGNOSIS: Pneumonia, which explains the fever and cough", "Pneumonia"),
        ("DIAGNOSIS: Migraine given the throbbing one-sided headache", "Migraine"),
    ],
)
def test_the_name_is_read_without_its_lead_in_or_its_grounds(text, named):
    statement = parse_closing(text)
    assert statement.final == named
    assert statement.names_a_condition()


def test_a_suspected_diagnosis_matches_the_record_as_any_other_does():
    statement = parse_closing("DIAGNOSIS: Suspected acute appendicitis\nPLAN: ultrasound")
    assert statement.names_final("Acute appendicitis")
    assert statement.wrong_final("Acute cholecystitis")


@pytest.mark.parametrize(
    ("stated", "named"),
    [
        ("nasal polyps", True),  # a plural of a head word
        ("gallstones", True),
        ("ulceration of the buccal mucosa", True),
        ("genital warts", True),
        ("diagnosis pending", False),  # ends in -osis, names nothing
        ("a final diagnosis", False),
        ("prognosis", False),
    ],
)
def test_plural_head_words_name_a_condition_and_diagnosis_does_not(stated, named):
    assert names_condition(stated) is named


@pytest.mark.parametrize(
    ("stated", "named"),
    [
        # the first two as a training round's search wrote them; the gate keeps the whole line
        ("Suspected candidiasis; I'm unsure of the diagnosis but recommend an examination", True),
        ("Suspected upper respiratory infection, possible spread to other parts of the body", True),
        ("Suspected viral hepatitis, suspected gallstones, suspected pancreatitis", True),
        ("The patient's most likely diagnosis is pneumonia", True),
        ("Suspected diagnosis: Lyme disease", True),  # a second label, as parse_closing reads it
        ("Suspected gout [as you mentioned your father had it]", True),  # an aside after the name
        ("Suspected diagnosis: pain in your back", False),
        # the leading item restates a symptom (invented wordings of the kind the doctor writes)
        ("Suspected chronic tiredness, possibly related to a thyroid condition", False),
        (
            "Suspected chest pain, likely due to one of many conditions, such as reflux or angina",
            False,
        ),
        # a symptom with its cause names the cause
        ("Suspected abdominal pain, likely due to gastritis or peptic ulcer disease", True),
        ("Suspected red patch on the left cheek", False),
        ("Suspected pain in both ankles and hips", False),
    ],
)
def test_the_gate_line_is_read_as_the_closing_parse_reads_it(stated, named):
    """names_condition sees the gate's whole line; it must read the name parse_closing reads."""
    assert names_condition(stated) is named
