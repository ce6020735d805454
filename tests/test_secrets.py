import logging

from medverify.secrets import MASK, RedactingFilter, redact, register_secret


def test_registered_and_env_secrets_are_masked(monkeypatch):
    register_secret("custom-token-value-42")
    monkeypatch.setenv("OPENAI_API_KEY", "plainkeywithoutprefix99")
    text = "token custom-token-value-42 and plainkeywithoutprefix99 here"
    assert redact(text) == f"token {MASK} and {MASK} here"


def test_key_shaped_strings_are_masked():
    assert "sk-proj-abcdefghijk" not in redact("key=sk-proj-abcdefghijk")
    assert redact("Authorization: Bearer abc.def-ghi_jkl") == f"Authorization: Bearer {MASK}"
    assert redact('{"api_key": "zzzzzzzzzzzz"}').count("zzzz") == 0
    assert redact("a normal sentence about risk-benefit") == "a normal sentence about risk-benefit"


def test_log_records_are_redacted(caplog):
    logger = logging.getLogger("medverify.test")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="medverify.test"):
        logger.info("calling with %s", "sk-live-0123456789abcdef")
    assert "sk-live-0123456789abcdef" not in caplog.text
    assert MASK in caplog.text
