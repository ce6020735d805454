"""The deterministic core on every shipped case and on a hand-written case with an allergy."""

from __future__ import annotations

import itertools

import pytest

from medverify.cases.records import CaseRecord
from medverify.errors import InputError
from medverify.rubrics import DIMENSIONS, Rubric, core_rubric, dimension_of
from medverify.rubrics.core import build_core
from medverify.rubrics.records import axis_of
from medverify.rubrics.validate import TOKEN_THRESHOLD, item_problems, token_similarity
from medverify.text.matching import normalize


def test_every_shipped_case_gives_a_valid_rubric(bundled: list[CaseRecord]) -> None:
    assert len(bundled) == 36
    for case in bundled:
        rubric = core_rubric(case)
        # schema round trip: what the consultation benchmark stores and reloads
        assert Rubric.model_validate_json(rubric.model_dump_json()) == rubric
        assert rubric.case_id == case.id and rubric.generator == "core"
        for item in rubric.items:
            assert item_problems(item) == [], (case.id, item)
            assert item.points != 0 and -10 <= item.points <= 10
            assert len(item.tags) == 2 and dimension_of(item) and axis_of(item)
        positive_dims = {dimension_of(i) for i in rubric.items if i.points > 0}
        assert positive_dims == set(DIMENSIONS), case.id
        negative_dims = {dimension_of(i) for i in rubric.items if i.points < 0}
        assert len(negative_dims) >= 4, case.id
        coverage = [w for w in rubric.warnings if "no positive item" in w or "outweigh" in w]
        assert coverage == [], (case.id, rubric.warnings)


def test_no_duplicates_on_any_shipped_case(bundled: list[CaseRecord]) -> None:
    for case in bundled:
        items = core_rubric(case).items
        texts = [normalize(i.criterion) for i in items]
        assert len(set(texts)) == len(texts), case.id
        for a, b in itertools.combinations(items, 2):
            if (a.points > 0) == (b.points > 0):
                assert token_similarity(a.criterion, b.criterion) < TOKEN_THRESHOLD, (a, b)


def test_deterministic(bundled: list[CaseRecord]) -> None:
    for case in bundled[::5]:
        assert core_rubric(case).model_dump_json() == core_rubric(case).model_dump_json()


def test_weights_put_the_diagnosis_first_and_balance_points(bundled: list[CaseRecord]) -> None:
    for case in bundled:
        rubric = core_rubric(case)
        top = max(rubric.items, key=lambda i: i.points)
        assert case.diagnosis in top.criterion and top.points == 10
        # the right diagnosis alone is a small share: a guess cannot score well
        assert top.points / rubric.positive_points < 0.2
        # history taking is the largest share of the positive points
        by_dim = {
            d: sum(i.points for i in items if i.points > 0)
            for d, items in rubric.by_dimension().items()
        }
        assert max(by_dim, key=by_dim.__getitem__) == "consultation_logic"
        assert -rubric.negative_points < rubric.positive_points


def test_history_items_use_the_record_words(mg_case: CaseRecord) -> None:
    criteria = [i.criterion for i in core_rubric(mg_case).items]
    assert any("climbing stairs" in c and c.startswith("Asks about") for c in criteria)
    assert any("better or worse" in c for c in criteria)
    assert any("chest pain" in c and "pertinent negatives" in c for c in criteria)
    assert "Orders acetylcholine receptor antibodies" in criteria
    assert any(c.startswith("Examines") and "ptosis" in c for c in criteria)
    # the chief complaint is volunteered: no item asks the patient to repeat it
    assert not any(c == "Asks about double vision" for c in criteria)


def test_allergy_red_flags_management_and_persona(allergy_case: CaseRecord) -> None:
    rubric = core_rubric(allergy_case)
    by_text = {i.criterion: i for i in rubric.items}
    allergy = [i for i in rubric.items if "documented allergy to penicillin" in i.criterion]
    assert len(allergy) == 1 and allergy[0].points <= -8
    assert "beta-lactam" in allergy[0].criterion
    assert dimension_of(allergy[0]) == "treatment_rationality"
    assert any(c.startswith("Recommends an oral non-beta-lactam") for c in by_text)
    flag = [i for i in rubric.items if "rapidly spreading redness" in i.criterion]
    assert sorted(i.points > 0 for i in flag) == [False, True]
    assert "Asks whether the patient has any drug allergies" in by_text
    # persona and age: low literacy, terse, a child
    assert any("plain, everyday words" in c for c in by_text)
    assert any("'Cellulitis' without explaining" in c for c in by_text)
    assert any("parent or caregiver" in c for c in by_text)
    assert any("answers are brief" in c for c in by_text)
    # the generic "propose a plan" item is replaced by the record's plan
    assert not any(c.startswith("Proposes a management plan") for c in by_text)


def test_diagnosis_kind_items(bundled: list[CaseRecord]) -> None:
    cases = {c.id: c for c in bundled}
    emergency = core_rubric(cases["agentclinic-medqa-044"])  # mesenteric ischemia
    assert any("as an emergency" in i.criterion for i in emergency.items)
    assert any(i.points == -8 and "Sends the patient home" in i.criterion for i in emergency.items)
    myasthenia = core_rubric(cases["agentclinic-medqa-001"])
    assert not any("emergency" in i.criterion for i in myasthenia.items)
    tb = core_rubric(cases["agentclinic-medqa-093"])
    assert any("isolation" in i.criterion for i in tb.items)
    nms = core_rubric(cases["agentclinic-medqa-084"])  # neuroleptic malignant syndrome
    assert any("haloperidol" in i.criterion and "stopping" in i.criterion for i in nms.items)
    listeria = core_rubric(cases["agentclinic-medqa-080"])  # pregnant, "No known allergies"
    assert any("pregnancy into account" in i.criterion for i in listeria.items)
    assert not any("documented allergy" in i.criterion for i in listeria.items)


def test_bad_case_errors_name_the_field(mg_case: CaseRecord) -> None:
    blank = mg_case.model_copy(update={"diagnosis": "   "})
    with pytest.raises(InputError) as err:
        core_rubric(blank)
    assert err.value.field == "diagnosis"
    only_findings = mg_case.model_copy(
        update={"facts": [f.model_copy(update={"category": "exam"}) for f in mg_case.facts]}
    )
    with pytest.raises(InputError) as err:
        build_core(only_findings)
    assert err.value.field == "facts" and "nothing for the doctor to ask" in str(err.value)


def test_drug_history_and_vital_signs(bundled: list[CaseRecord]) -> None:
    cases = {c.id: c for c in bundled}
    # no medication or allergy fact in the record: the generic drug-history item stands in
    mg = [i.criterion for i in core_rubric(cases["agentclinic-medqa-001"]).items]
    assert "Asks about current medications and drug allergies" in mg
    assert (
        "Checks the vital signs (blood pressure, heart rate, respiratory rate and temperature)"
        in mg
    )
    # a record with medication facts gets the specific item instead
    aki = [i.criterion for i in core_rubric(cases["agentclinic-medqa-005"]).items]
    assert "Asks about current medications and drug allergies" not in aki
    assert any(c.startswith("Asks what medications the patient is taking") for c in aki)
