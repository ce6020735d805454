"""The Affective Unit: only the selected facts, in the persona's voice; narrator for findings."""

import dataclasses
import inspect
from pathlib import Path

import pytest

from medverify.backends.mock import MockBackend
from medverify.cases.records import CaseRecord, Persona
from medverify.simulator.affective import (
    ASIDES,
    DIAGNOSIS_DEFLECT,
    NOTHING_YES_NO,
    LLMAffectiveUnit,
    PatientCue,
    TemplateAffectiveUnit,
    clean_reply,
    complaint_line,
    patient_prompt,
    template_vocabulary,
)
from medverify.simulator.voice import first_person
from medverify.text.lexicon import LAY_TERMS
from medverify.text.matching import contains_term, stem, words

CASES = Path(__file__).parents[1] / "fixtures" / "sim_cases"
MG = CaseRecord.model_validate_json((CASES / "myasthenia_gravis.json").read_text())
PNEUMONIA = CaseRecord.model_validate_json((CASES / "pneumonia.json").read_text())
unit = TemplateAffectiveUnit()


def render(facts, persona=None, turn="Tell me more.", **kw):
    kw.setdefault("chief_complaint", MG.chief_complaint)
    return unit.compose_sync(facts, persona or Persona(), turn, **kw).text


def test_no_method_can_receive_the_case_record():
    for cls in (TemplateAffectiveUnit, LLMAffectiveUnit):
        for name in ("reply", "render", "compose", "opening"):
            params = inspect.signature(getattr(cls, name)).parameters.values()
            annotations = " ".join(str(p.annotation) for p in params)
            assert "CaseRecord" not in annotations, (cls, name)
            assert not {"case", "record"} & {p.name for p in params}
    fields = dataclasses.fields(PatientCue)
    assert "CaseRecord" not in " ".join(str(f.type) for f in fields)
    assert not {"case", "record"} & {f.name for f in fields}


async def test_compose_is_reply_to_the_cue_of_its_arguments():
    facts = [MG.fact("hpi_stairs"), MG.fact("cn_ptosis")]
    persona = Persona(verbosity="talkative", emotional_state="anxious")
    kw = {"chief_complaint": MG.chief_complaint, "missing_test_items": ["CT"], "seed": 4}
    cue = PatientCue(facts, persona, "Any trouble with stairs?", **kw)
    composed = await unit.compose(facts, persona, "Any trouble with stairs?", **kw)
    assert (
        composed
        == await unit.reply(cue)
        == unit.compose_sync(facts, persona, cue.doctor_turn, **kw)
    )
    assert await unit.render(facts, persona, cue.doctor_turn, **kw) == composed.text
    with pytest.raises(TypeError):
        PatientCue(facts, persona, "Stairs?")  # the chief complaint is required


@pytest.mark.parametrize(
    ("text", "category", "said"),
    [
        (
            "The patient reports a 1-month history of double vision (diplopia).",
            "symptom",
            "For about a month, I've had double vision (diplopia).",
        ),
        (
            "She feels weakness in her arms when trying to brush her hair.",
            "symptom",
            "I feel weakness in my arms when trying to brush my hair.",
        ),
        (
            "She denies chest pain, palpitations or recent infections.",
            "symptom",
            "I haven't had chest pain, palpitations or recent infections.",
        ),
        (
            "Non-smoker, drinks wine occasionally.",
            "social",
            "I don't smoke, I drink wine occasionally.",
        ),
        ("Her mother has hypothyroidism.", "family", "My mother has hypothyroidism."),
        ("Lisinopril 10 mg once daily.", "medication", "I take lisinopril 10 mg once daily."),
        ("Allergic to sulfa drugs (hives).", "allergy", "I'm allergic to sulfa drugs (hives)."),
        ("No known drug allergies.", "allergy", "I don't have any known drug allergies."),
        ("History of hypertension.", "history", "I have a history of hypertension."),
        (
            "Retired bus driver, lives with his wife.",
            "social",
            "I'm a retired bus driver, I live with my wife.",
        ),
        ("Current medication: Efavirenz.", "medication", "I take efavirenz."),
        ("I drink a few beers on weekends.", "social", "I drink a few beers on weekends."),
        (
            "A 45-year-old man presents with a 2-day history of fever.",
            "symptom",
            "For two days, I've had fever.",
        ),
    ],
)
def test_first_person(text, category, said):
    assert first_person(text, category) == said


def test_speaks_only_the_selected_facts():
    text = render([MG.fact("hpi_stairs")])
    assert "stairs" in text
    for other in MG.facts:
        if other.id != "hpi_stairs":
            assert first_person(other.text, other.category) not in text


def test_low_health_literacy_uses_lay_words():
    low = Persona(health_literacy="low")
    facts = [MG.fact("hpi_diplopia"), MG.fact("family"), PNEUMONIA.fact("pmh")]
    text = render(facts, low)
    assert not [t for t in LAY_TERMS if contains_term(text, t)], text
    assert "underactive thyroid" in text and "high blood pressure" in text
    medium = render([MG.fact("hpi_diplopia")], Persona(health_literacy="medium"))
    assert "diplopia" not in medium and "double vision" in medium
    high = render([MG.fact("hpi_diplopia")], Persona(health_literacy="high"))
    assert "(diplopia)" in high


def test_terse_and_talkative():
    facts = [MG.fact("hpi_stairs")]
    terse = Persona(verbosity="terse", emotional_state="anxious")
    chatty = Persona(verbosity="talkative", emotional_state="anxious")
    asides = [a for group in ASIDES.values() for a in group if a]
    terse_texts = [render(facts, terse, turn=f"Question {i}?", seed=i) for i in range(20)]
    chatty_texts = [render(facts, chatty, turn=f"Question {i}?", seed=i) for i in range(20)]
    assert all(t == "I have difficulty climbing stairs." for t in terse_texts)
    assert sum(any(a in t for a in asides) for t in chatty_texts) >= 15
    assert sum(len(t) for t in chatty_texts) > sum(len(t) for t in terse_texts)


def test_deterministic_for_a_seed():
    facts = [MG.fact("hpi_stairs"), MG.fact("alcohol")]
    persona = Persona(verbosity="talkative", emotional_state="frustrated")
    assert render(facts, persona, seed=3) == render(facts, persona, seed=3)
    assert len({render(facts, persona, turn="Q?", seed=s) for s in range(10)}) > 1


def test_nothing_selected_is_an_honest_dont_know_not_a_negative():
    assert render([], turn="Do you have a fever?", yes_no=True) in NOTHING_YES_NO
    open_question = render([], turn="How would you describe your sleep?")
    assert open_question.startswith("I") and "no" not in words(open_question)
    assert render([], turn="What's my diagnosis?", intent="diagnosis_query") in DIAGNOSIS_DEFLECT
    assert render([], turn="Thank you.") in ("Okay.", "Alright.", "I see.", "Okay, thank you.")


def test_findings_are_narrated_and_missing_items_never_invented():
    text = render(
        [MG.fact("cn_ptosis"), MG.fact("achr_antibodies")],
        turn="Let me examine your eyes and order antibodies.",
        missing_exam_items=["oxygen saturation"],
        missing_test_items=["MRI (head)"],
    )
    lines = text.splitlines()
    assert "[Exam] Cranial nerves: ptosis of the right upper eyelid" in text
    assert "[Test] Acetylcholine receptor antibodies: present (elevated)." in lines
    assert "[Exam] Oxygen saturation: normal readings." in lines
    assert "[Test] MRI (head): result not available." in lines


def test_opening_is_the_chief_complaint():
    text = unit.opening_sync(Persona(verbosity="terse"), chief_complaint=MG.chief_complaint)
    assert "double vision and weakness" in text
    assert (
        complaint_line("I've had bad pain in my belly.", Persona())
        == "I've had bad pain in my belly."
    )


def test_template_words_are_a_fixed_vocabulary():
    vocab = {stem(w) for w in template_vocabulary()}
    assert {"doctor", "haven't", "normal"} <= vocab
    assert "myasthenia" not in vocab


# -- LLM mode ---------------------------------------------------------------------------------


async def test_llm_prompt_holds_only_the_selected_facts():
    seen = []

    def respond(messages, params):
        seen.append(messages[0].content)
        return "Patient: *sighs* Well, stairs have been really hard lately."

    llm = LLMAffectiveUnit(MockBackend(respond))
    rendering = await llm.compose(
        [MG.fact("hpi_stairs")],
        Persona(personality="stoic", verbosity="terse"),
        "Any trouble with stairs?",
        chief_complaint=MG.chief_complaint,
    )
    prompt = seen[0]
    assert MG.fact("hpi_stairs").text in prompt and "stoic" in prompt
    for other in MG.all_facts():
        if other.id != "hpi_stairs":
            assert other.text not in prompt
    assert MG.diagnosis not in prompt and not any(d in prompt for d in MG.differential)
    assert rendering.text == "Well, stairs have been really hard lately."
    assert rendering.fact_ids() == ["hpi_stairs"] and rendering.mode == "llm"


async def test_llm_failure_falls_back_to_templates():
    llm = LLMAffectiveUnit(MockBackend(lambda m, p: "   "))
    rendering = await llm.compose(
        [MG.fact("hpi_stairs")], Persona(verbosity="terse"), "Stairs?", chief_complaint="x"
    )
    assert rendering.text == "I have difficulty climbing stairs."
    assert llm.failures == 1


def test_clean_reply():
    assert clean_reply('Patient: "I feel fine (nervous laugh)."') == "I feel fine ."
    assert "(none)" in patient_prompt([], Persona())
