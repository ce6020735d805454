"""``openai:<model>`` — any OpenAI-compatible chat endpoint: OpenAI, vLLM, SGLang, llama.cpp server.

The request is a plain ``POST {base_url}/chat/completions``; the base URL and key come from
``--base-url``/``--api-key`` or ``OPENAI_BASE_URL``/``OPENAI_API_KEY``. aiohttp rather than the
``openai`` SDK or httpx: at the concurrency a HealthBench grading run needs (hundreds of calls in
flight) httpx's connection pool collapsed in our measurement (36 calls/s at 256 in flight against
a 100 ms server, aiohttp 2,323/s), and the SDK's own retry loop cannot be bounded together with
malformed replies. Retries, timeouts, the cache and the concurrency limit come from
:class:`~medverify.backends.base.Backend`; this module only says which failures are transient.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from typing import Any

import aiohttp

from medverify.backends.base import Backend, Completion, Message, SamplingParams, Usage
from medverify.errors import AuthenticationError, BackendError, ConfigError, TransientBackendError
from medverify.secrets import redact, register_secret

OPENAI_URL = "https://api.openai.com/v1"
_TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


class OpenAIBackend(Backend):
    """A chat model behind an OpenAI-compatible HTTP API.

    Args:
        model: the model name the endpoint serves (``gpt-4.1``, ``Qwen/Qwen3-8B``...).
        base_url: endpoint root ending in ``/v1``; default ``$OPENAI_BASE_URL`` or OpenAI's.
        api_key: bearer key; default ``$OPENAI_API_KEY``. Local servers may need none.
        extra_body: extra JSON fields sent with every request (e.g. vLLM's ``top_k``).
        **kwargs: concurrency, timeout, retry and cache settings of :class:`Backend`.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        extra_body: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not model:
            raise ConfigError("openai backend needs a model name: openai:<model>")
        kwargs.setdefault("concurrency", 32)
        super().__init__(f"openai:{model}", **kwargs)
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"base URL must start with http:// or https://, got {self.base_url!r}"
            )
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        register_secret(self._api_key)
        if self.base_url == OPENAI_URL and not self._api_key:
            raise ConfigError(
                "OPENAI_API_KEY is not set (needed for api.openai.com); export it, or point "
                "--base-url / OPENAI_BASE_URL at your own server"
            )
        self.extra_body = dict(extra_body or {})
        self._session: aiohttp.ClientSession | None = None

    def identity(self) -> str:
        """Model and endpoint: the same model name on two servers is two models."""
        return f"openai:{self.model}@{self.base_url}"

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Content-Type": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            # No cookie jar: an API client needs none, and it cost ~20% of the client's CPU per
            # call at hundreds of calls per second (benchmarks/backend_overhead.py).
            self._session = aiohttp.ClientSession(
                headers=headers,
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    def _body(self, messages: list[Message], params: SamplingParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.model_dump() for m in messages],
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        body.update(self.extra_body)
        return body

    async def _generate(self, messages: list[Message], params: SamplingParams) -> Completion:
        url = f"{self.base_url}/chat/completions"
        start = time.perf_counter()
        try:
            # Pre-encoded bytes: aiohttp's JSON payload wrapper costs more than the encoding.
            data = json.dumps(self._body(messages, params), ensure_ascii=False).encode()
            async with self._get_session().post(url, data=data) as resp:
                status = resp.status
                raw = await resp.read()
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
            raise TransientBackendError(
                f"cannot reach {self.base_url}: {type(exc).__name__}: {redact(str(exc))}",
                spec=self.spec,
            ) from None
        except asyncio.TimeoutError:
            raise TransientBackendError(
                f"timed out talking to {self.base_url}", spec=self.spec
            ) from None
        latency = time.perf_counter() - start
        if status != 200:
            raise self._http_error(status, raw, retry_after)
        return self._parse(raw, latency)

    def _http_error(self, status: int, raw: bytes, retry_after: str | None) -> BackendError:
        detail = raw[:300].decode("utf-8", "replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            detail = json.loads(raw)["error"]["message"]
        detail = redact(str(detail))
        if status in (401, 403):
            return AuthenticationError(
                f"{self.base_url} rejected the API key (HTTP {status}: {detail}); check "
                "OPENAI_API_KEY or --api-key",
                spec=self.spec,
            )
        if status in _TRANSIENT_STATUS:
            wait = None
            if retry_after:
                try:
                    wait = float(retry_after)
                except ValueError:
                    wait = None
            return TransientBackendError(
                f"HTTP {status} from {self.base_url}: {detail}", spec=self.spec, retry_after_s=wait
            )
        if status == 404:
            return BackendError(
                f"HTTP 404 from {self.base_url}/chat/completions: {detail} (wrong base URL, or "
                f"the server does not serve model '{self.model}')",
                spec=self.spec,
            )
        return BackendError(f"HTTP {status} from {self.base_url}: {detail}", spec=self.spec)

    def _parse(self, raw: bytes, latency: float) -> Completion:
        try:
            payload = json.loads(raw)
            choice = payload["choices"][0]
            text = choice["message"]["content"]
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise TypeError("message content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise TransientBackendError(
                f"malformed reply from {self.base_url} ({type(exc).__name__}: {exc}): "
                f"{redact(raw[:120].decode('utf-8', 'replace'))!r}",
                spec=self.spec,
            ) from None
        usage = payload.get("usage") or {}
        return Completion(
            text=text,
            usage=Usage(
                prompt_tokens=int(usage.get("prompt_tokens") or 0),
                completion_tokens=int(usage.get("completion_tokens") or 0),
            ),
            latency_s=latency,
            model=str(payload.get("model") or self.model),
            finish_reason=choice.get("finish_reason"),
        )

    async def aclose(self) -> None:
        """Close the HTTP session and the cache."""
        if self._session is not None and not self._session.closed:
            await self._session.close()
        await super().aclose()
