import asyncio

import pytest

from medverify.backends.base import RetryPolicy
from medverify.backends.openai_compat import OpenAIBackend
from medverify.backends.registry import BackendOptions, make_backend
from medverify.errors import AuthenticationError, BackendError, ConfigError

FAST = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.01)
HI = [{"role": "user", "content": "hello there"}]


def backend_for(server, **kwargs):
    kwargs.setdefault("retry", FAST)
    return OpenAIBackend("fake-model", base_url=server.base_url, api_key="", **kwargs)


async def test_a_call_returns_text_usage_and_sends_the_sampling(fake_server):
    async with backend_for(fake_server) as backend:
        completion = await backend.complete(
            [{"role": "system", "content": "be brief"}, *HI],
            temperature=0.5,
            max_tokens=33,
            seed=7,
            stop=["\n\n"],
        )
    assert completion.text == "echo: hello there"
    assert completion.usage.prompt_tokens == 4
    assert completion.usage.completion_tokens == 3
    assert completion.finish_reason == "stop"
    assert completion.model == "fake-model"
    body = fake_server.bodies[-1]
    assert body["model"] == "fake-model"
    assert body["messages"][0] == {"role": "system", "content": "be brief"}
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.5, 33, 7)
    assert body["stop"] == ["\n\n"]


@pytest.mark.parametrize(
    "faults",
    [
        ["429"],
        ["500", "503"],
        ["malformed"],
        ["empty"],
        ["disconnect"],
        ["429", "malformed", "500"],
    ],
)
async def test_transient_faults_are_retried(fake_server, faults):
    fake_server.enqueue_faults(*faults)
    async with backend_for(fake_server) as backend:
        completion = await backend.complete(HI)
    assert completion.text == "echo: hello there"
    assert completion.attempts == len(faults) + 1
    assert fake_server.requests == len(faults) + 1


async def test_a_server_that_hangs_cannot_hang_the_caller(fake_server):
    fake_server.enqueue_faults("hang")
    async with backend_for(fake_server, timeout_s=0.3) as backend:
        completion = await backend.complete(HI)
    assert completion.attempts == 2


async def test_retries_stop_after_the_bound(fake_server):
    fake_server.enqueue_faults(*["500"] * 10)
    async with backend_for(fake_server) as backend:
        with pytest.raises(BackendError, match="gave up after 4 attempts: HTTP 500"):
            await backend.complete(HI)
    assert fake_server.requests == 4


async def test_a_rejected_key_fails_at_once_and_is_not_shown(fake_server):
    fake_server.api_key = "sk-right-key-0000000000"
    wrong = "sk-wrong-key-1234567890abcdef"
    backend = OpenAIBackend("m", base_url=fake_server.base_url, api_key=wrong, retry=FAST)
    with pytest.raises(AuthenticationError) as info:
        await backend.complete(HI)
    await backend.aclose()
    assert fake_server.requests == 1
    assert "rejected the API key" in str(info.value)
    assert wrong not in str(info.value)
    assert fake_server.auth_headers[-1] == f"Bearer {wrong}"


async def test_an_unreachable_endpoint_is_a_clear_error():
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key="", retry=FAST)
    with pytest.raises(BackendError, match=r"cannot reach http://127.0.0.1:9/v1"):
        await backend.complete(HI)
    await backend.aclose()


async def test_a_404_names_the_url_and_model(fake_server):
    backend = OpenAIBackend("m", base_url=fake_server.base_url + "/nope", api_key="", retry=FAST)
    with pytest.raises(BackendError, match=r"HTTP 404 .* model 'm'"):
        await backend.complete(HI)
    await backend.aclose()


async def test_concurrency_limit_holds_at_the_server(fake_server):
    fake_server.latency_s = 0.05
    async with backend_for(fake_server, concurrency=8) as backend:
        results = await asyncio.gather(
            *[backend.complete([{"role": "user", "content": f"q{i}"}]) for i in range(48)]
        )
    assert [r.text for r in results] == [f"echo: q{i}" for i in range(48)]
    assert fake_server.max_in_flight == 8


async def test_cache_avoids_the_second_call_and_holds_no_key(fake_server, tmp_path):
    key = "sk-secret-should-not-persist-123456"
    cache_path = tmp_path / "responses.sqlite"
    options = BackendOptions(base_url=fake_server.base_url, api_key=key, cache_path=cache_path)
    async with make_backend("openai:fake-model", options) as backend:
        first = await backend.complete(HI)
        second = await backend.complete(HI)
    assert fake_server.requests == 1
    assert second.cached and second.text == first.text
    async with make_backend("openai:fake-model", options) as backend:
        assert (await backend.complete(HI)).cached
    assert fake_server.requests == 1
    for path in tmp_path.iterdir():
        assert key.encode() not in path.read_bytes()
    no_cache = options.model_copy(update={"use_cache": False})
    async with make_backend("openai:fake-model", no_cache) as backend:
        await backend.complete(HI)
    assert fake_server.requests == 2


async def test_cache_separates_endpoints(fake_server, tmp_path):
    cache = tmp_path / "c.sqlite"
    with type(fake_server)() as other:
        for server in (fake_server, other):
            opts = BackendOptions(base_url=server.base_url, api_key="", cache_path=cache)
            async with make_backend("openai:same-name", opts) as backend:
                await backend.complete(HI)
        assert fake_server.requests == 1 and other.requests == 1


async def test_base_url_and_key_come_from_the_environment(fake_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fake_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-abcdefgh")
    async with OpenAIBackend("m", retry=FAST) as backend:
        await backend.complete(HI)
    assert fake_server.auth_headers[-1] == "Bearer sk-from-env-abcdefgh"


def test_openai_without_a_key_is_refused_up_front(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set"):
        OpenAIBackend("gpt-4.1")
    with pytest.raises(ConfigError, match="must start with http"):
        OpenAIBackend("m", base_url="localhost:8000/v1")


async def test_url_credentials_go_as_basic_auth_never_in_messages(fake_server, monkeypatch):
    # With OPENAI_API_KEY set as well this used to be aiohttp's "Cannot combine AUTHORIZATION
    # header with ... credentials encoded in URL"; the password was in every message.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-0000000000000")
    url = fake_server.base_url.replace("http://", "http://admin:pw1234secret@")
    async with OpenAIBackend("m", base_url=url, retry=FAST) as backend:
        assert "pw1234secret" not in backend.base_url + backend.identity()
        assert backend.base_url == fake_server.base_url.replace("http://", "http://admin:***@")
        completion = await backend.complete(HI)
    assert completion.text == "echo: hello there"
    assert fake_server.auth_headers[-1] == "Basic YWRtaW46cHcxMjM0c2VjcmV0"  # admin:pw1234secret
    dead = OpenAIBackend("m", base_url="http://admin:pw1234secret@127.0.0.1:9/v1", retry=FAST)
    with pytest.raises(BackendError) as info:
        await dead.complete(HI)
    await dead.aclose()
    assert "pw1234secret" not in str(info.value) and "admin:***@127.0.0.1:9" in str(info.value)


def test_url_credentials_and_a_given_key_are_refused():
    with pytest.raises(ConfigError, match=r"http://u:\*\*\*@h/v1 carries credentials"):
        OpenAIBackend("m", base_url="http://u:secretpw@h/v1", api_key="sk-given-0000000000")


@pytest.mark.parametrize(
    ("url", "gets_env_key"),
    [
        ("https://api.example.com/v1", True),
        ("http://127.0.0.1:8000/v1", True),
        ("http://localhost:8000/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://10.0.0.5:8000/v1", False),
        ("http://gpu-box.lan:8000/v1", False),
    ],
)
async def test_the_environment_key_goes_only_over_https_or_to_this_machine(
    monkeypatch, url, gets_env_key
):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-0000000000000")
    async with OpenAIBackend("m", base_url=url) as backend:
        sent = backend._get_session().headers.get("Authorization")
        assert sent == ("Bearer sk-env-key-0000000000000" if gets_env_key else None)
    # A key given for the endpoint goes where the user pointed it, plain http included.
    async with OpenAIBackend("m", base_url=url, api_key="sk-given-000000000") as backend:
        assert backend._get_session().headers["Authorization"] == "Bearer sk-given-000000000"


async def test_a_401_says_when_the_environment_key_was_withheld(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-key-0000000000000")
    backend = OpenAIBackend("m", base_url="http://10.0.0.5:8000/v1")
    error = backend._http_error(401, b'{"error": {"message": "no key"}}', None)
    await backend.aclose()
    assert "not sent to a plain-http server" in str(error) and "--api-key" in str(error)
