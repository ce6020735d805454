"""``local:doctor``: the shipped adapter, merged once into the embedded model, with its record."""

from __future__ import annotations

import asyncio
import json

import pytest

from medverify.backends.local_doctor import (
    ADAPTER_FILES,
    DOCTOR_DIR,
    DoctorBackend,
    adapter_hash,
    provenance,
)
from medverify.backends.registry import make_backend
from medverify.errors import ConfigError


def test_the_package_ships_an_adapter_small_enough_with_its_record():
    for name in ADAPTER_FILES:
        assert (DOCTOR_DIR / name).is_file(), name
    size_mb = sum((DOCTOR_DIR / n).stat().st_size for n in ADAPTER_FILES) / 1e6
    assert size_mb <= 20
    made = provenance()
    assert made["rounds"], "doctor.json records the rounds of training"
    assert made["training_cases"]["n"] == len(made["training_cases"]["ids"]) > 0
    assert made["config"]["stages"][0]["kind"] == "expert_iteration"
    assert made["commit"]


def test_training_never_saw_the_demo_or_held_out_cases():
    from pathlib import Path

    from medverify.cases.loading import load_cases
    from medverify.demo import DEFAULT_CASES

    trained_on = set(provenance()["training_cases"]["ids"])
    assert not trained_on & set(DEFAULT_CASES)
    heldout = Path(__file__).parents[2] / "benchmarks/data/heldout_agentclinic_extended20.jsonl"
    held = load_cases(heldout)
    assert not trained_on & {c.id for c in held}
    train_file = Path(__file__).parents[2] / "configs/train/data/doctor_train_cases.jsonl"
    train_dx = {c.diagnosis.strip().lower() for c in load_cases(train_file)}
    assert not train_dx & {c.diagnosis.strip().lower() for c in held}


def test_the_spec_names_the_trained_doctor_and_its_adapter():
    backend = make_backend("local:doctor")
    assert isinstance(backend, DoctorBackend)
    assert backend.spec == "local:doctor"
    assert backend.path.name.endswith(f"-doctor-{adapter_hash()}")


def test_a_missing_adapter_is_one_clear_error(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"adapter_model\.safetensors"):
        DoctorBackend(adapter=tmp_path)


def test_another_adapter_merges_into_another_directory(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for name in ADAPTER_FILES:
        (other / name).write_bytes((DOCTOR_DIR / name).read_bytes() + b" ")
    assert adapter_hash(other) != adapter_hash()
    a = DoctorBackend(cache_dir=tmp_path / "cache")
    b = DoctorBackend(adapter=other, cache_dir=tmp_path / "cache")
    assert a.path != b.path and a.path.parent == b.path.parent


@pytest.mark.slow
def test_the_trained_doctor_answers_like_a_model(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MEDVERIFY_THREADS", "1")
    backend = DoctorBackend(cache_dir=tmp_path_factory.getbasetemp() / "medverify-cache")

    async def ask() -> str:
        try:
            done = await backend.complete(
                [{"role": "user", "content": "I've had a cough for two weeks."}], max_tokens=24
            )
            return done.text
        finally:
            await backend.aclose()

    assert asyncio.run(ask()).strip()
    assert backend.identity().startswith("local:doctor:")
    marker = json.loads((backend.path / "medverify-conversion.json").read_text())
    assert marker["adapter_hash"] == adapter_hash()


def test_the_shipped_adapter_was_made_by_the_recipe_in_the_repository():
    """doctor.json's recipe is configs/train/doctor_cpu.yaml as it stands: rerunning it is
    rerunning what shipped (a changed recipe needs a retrained, re-exported adapter)."""
    from pathlib import Path

    from medverify.train.config import load_config

    recipe = Path(__file__).parents[2] / "configs/train/doctor_cpu.yaml"
    stage = load_config(recipe).stages[0]
    shipped = provenance()["config"]["stages"][0]
    assert shipped["ei"] == stage.ei.model_dump(mode="json")
    assert shipped["train"]["lora"] == stage.train.lora.model_dump(mode="json")
    assert shipped["data"]["source"] == stage.data.source
    assert len(provenance()["rounds"]) == stage.ei.rounds


def test_a_rounds_adapter_is_named_by_its_directory(tmp_path):
    """``local:doctor:<dir>``: a training round's adapter, played as local:doctor would be."""
    other = tmp_path / "round-2"
    other.mkdir()
    for name in ADAPTER_FILES:
        (other / name).write_bytes((DOCTOR_DIR / name).read_bytes() + b" ")
    backend = make_backend(f"local:doctor:{other}")
    assert isinstance(backend, DoctorBackend)
    assert backend.adapter == other and backend.spec == f"local:doctor:{other}"
    assert backend.identity() != make_backend("local:doctor").identity()
    with pytest.raises(ConfigError, match=r"adapter_config\.json"):
        make_backend(f"local:doctor:{tmp_path / 'missing'}")
