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


def test_url_credentials_are_masked_in_text_and_logs(caplog):
    from medverify.secrets import redact_url, split_url_credentials

    url = "http://admin:pw1234secret@host:8000/v1"
    assert redact(f"cannot reach {url}: boom") == "cannot reach http://admin:***@host:8000/v1: boom"
    assert redact_url("https://token@host/v1") == "https://***@host/v1"
    # An "@" in a path, or in the next JSON string, is not userinfo.
    assert redact_url("http://host/a@b") == "http://host/a@b"
    assert redact_url('["http://host","a@b"]') == '["http://host","a@b"]'
    assert split_url_credentials(url) == ("http://host:8000/v1", "admin", "pw1234secret")
    assert split_url_credentials("http://a%40b:p%3Aw@[::1]:80/v1") == (
        "http://[::1]:80/v1",
        "a@b",
        "p:w",
    )
    assert split_url_credentials("http://host/v1") == ("http://host/v1", None, None)
    logger = logging.getLogger("medverify.test")
    caplog.handler.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="medverify.test"):
        logger.info("endpoint %s", url)
    assert "pw1234secret" not in caplog.text and "admin:***@host" in caplog.text
