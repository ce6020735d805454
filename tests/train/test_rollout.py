import pytest

from medverify.train.rollout import layout, prompt_key


@pytest.fixture(scope="module")
def tokenizer():
    transformers = pytest.importorskip("transformers")
    from medverify.backends.local import default_model_dir

    return transformers.AutoTokenizer.from_pretrained(default_model_dir())


def test_doctor_tokens_are_trained_patient_tokens_masked(tokenizer):
    prompt = [
        {"role": "system", "content": "You are a physician."},
        {"role": "user", "content": "I have a headache."},
    ]
    dialogue = [
        {"role": "assistant", "content": "How long has it lasted?"},
        {"role": "user", "content": "Three days, worse in the morning."},
        {"role": "assistant", "content": "DIAGNOSIS: tension headache"},
    ]
    prompt_ids, completion, mask = layout(tokenizer, prompt, dialogue)
    assert len(completion) == len(mask)
    trained = tokenizer.decode([t for t, m in zip(completion, mask, strict=True) if m])
    masked = tokenizer.decode([t for t, m in zip(completion, mask, strict=True) if not m])
    assert "How long has it lasted?" in trained and "DIAGNOSIS: tension headache" in trained
    assert "Three days" in masked and "Three days" not in trained
    assert "I have a headache" in tokenizer.decode(prompt_ids)
    # the whole sequence is exactly the chat template of the conversation
    full = tokenizer.apply_chat_template([*prompt, *dialogue], tokenize=False)
    assert tokenizer.decode(prompt_ids + completion) == full


def test_prompt_key_is_order_sensitive():
    a = [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]
    assert prompt_key(a) != prompt_key(list(reversed(a)))
    assert prompt_key(a) == prompt_key([dict(m) for m in a])


def test_consultation_rollout_plays_the_simulator(tokenizer, monkeypatch):
    """The env loop with a scripted policy: patient turns masked, transcript for the reward."""
    from types import SimpleNamespace

    from medverify.cases.records import Transcript
    from medverify.train import rollout as rollout_mod
    from medverify.train.data import consultation_rows, load_case_set

    case = load_case_set()[0]
    row = consultation_rows([case])[0]
    script = iter(["How long have you had this?", f"DIAGNOSIS: {case.diagnosis}"])
    asked = []

    def fake_generate(trainer, batch, max_new_tokens, temperature):
        asked.append(batch)
        return [next(script) for _ in batch]

    monkeypatch.setattr(rollout_mod, "_generate", fake_generate)
    func = rollout_mod.consultation_rollout(
        {prompt_key(row["prompt"]): case}, max_turns=3, max_completion_length=512
    )
    out = func([row["prompt"]], SimpleNamespace(processing_class=tokenizer))
    assert set(out) >= {"prompt_ids", "completion_ids", "logprobs", "env_mask", "transcript"}
    transcript = Transcript.model_validate_json(out["transcript"][0])
    assert transcript.termination_reason == "diagnosis"
    assert transcript.final_diagnosis == case.diagnosis
    ids, mask = out["completion_ids"][0], out["env_mask"][0]
    trained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    patient = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    assert "How long have you had this?" in trained and "DIAGNOSIS" in trained
    assert transcript.turns[2].text[:20] in patient  # the patient's answer is context only
    assert len(asked) == 2  # the gate ended the consultation at the diagnosis
