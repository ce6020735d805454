"""``openai:<model>`` — any OpenAI-compatible chat endpoint: OpenAI, vLLM, SGLang, llama.cpp server.

The request is a plain ``POST {base_url}/chat/completions``; the base URL comes from ``--base-url``
or ``OPENAI_BASE_URL``. Which credentials go to that URL:

* a key given for this endpoint (``--api-key``/``MEDVERIFY_API_KEY``, for a grader
  ``--grader-api-key``/``MEDVERIFY_GRADER_API_KEY``; ``api_key=`` in Python) is sent as
  ``Authorization: Bearer``, to wherever the user pointed it;
* ``OPENAI_API_KEY`` from the environment, when no key was given, is sent only over https or to
  this machine (a loopback address or ``localhost``), never in clear text across a network to a
  plain-http server;
* credentials in the URL (``http://user:password@host/v1``) are taken out of it and sent as HTTP
  basic auth, and the URL is logged, recorded and shown as ``http://user:***@host/v1``; the
  environment's key is then not sent, and a key given as well is refused (one Authorization
  header cannot carry both).

aiohttp rather than the
``openai`` SDK or httpx: at the concurrency a HealthBench grading run needs (hundreds of calls in
flight) httpx's connection pool collapsed in our measurement (36 calls/s at 256 in flight against
a 100 ms server, aiohttp 2,323/s), and the SDK's own retry loop cannot be bounded together with
malformed replies. Retries, timeouts, the cache and the concurrency limit come from
:class:`~medverify.backends.base.Backend`; this module only says which failures are transient.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import json
import logging
import os
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from medverify.backends.base import Backend, Completion, Message, SamplingParams, Usage
from medverify.errors import AuthenticationError, BackendError, ConfigError, TransientBackendError
from medverify.secrets import redact, redact_url, register_secret, split_url_credentials

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
_TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


def may_receive_env_key(url: str) -> bool:
    """Whether ``OPENAI_API_KEY`` may be sent to ``url``: over https, or to this machine only."""
    parts = urlsplit(url)
    if parts.scheme.lower() == "https":
        return True
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OpenAIBackend(Backend):
    """A chat model behind an OpenAI-compatible HTTP API.

    Args:
        model: the model name the endpoint serves (``gpt-4.1``, ``Qwen/Qwen3-8B``...).
        base_url: endpoint root ending in ``/v1``; default ``$OPENAI_BASE_URL`` or OpenAI's.
            ``user:password@`` in it is sent as HTTP basic auth and masked wherever the URL is
            shown (``self.base_url`` is that masked form).
        api_key: bearer key for this endpoint, sent wherever ``base_url`` points; ``""`` for
            none. Default ``$OPENAI_API_KEY``, but only over https or to this machine (see the
            module docstring). Local servers may need none.
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
        raw_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).strip().rstrip("/")
        #: The endpoint as shown, logged and recorded: credentials masked.
        self.base_url = redact_url(raw_url)
        if not raw_url.lower().startswith(("http://", "https://")):
            raise ConfigError(
                f"base URL must start with http:// or https://, got {self.base_url!r}"
            )
        # The endpoint requests go to: no userinfo in it (aiohttp refuses a URL with
        # credentials next to an Authorization header, and the URL ends up in messages).
        self._url, user, password = split_url_credentials(raw_url)
        register_secret(password)
        if user is not None and ":" in user:
            raise ConfigError(f"bad credentials in {self.base_url}: a ':' in the user name")
        #: The Authorization header for credentials given in the URL (HTTP basic auth).
        self._basic_auth = (
            "Basic " + base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            if user is not None
            else None
        )
        env_key = os.environ.get("OPENAI_API_KEY")
        if self._basic_auth is not None:
            if api_key:
                raise ConfigError(
                    f"{self.base_url} carries credentials and an API key was given as well; "
                    "give one of them (credentials in the URL are sent as HTTP basic auth)"
                )
            self._api_key: str | None = None
        elif api_key is not None:
            self._api_key = api_key
        elif env_key and not may_receive_env_key(self._url):
            log.info(
                "not sending OPENAI_API_KEY to %s (plain http to another machine); give the "
                "endpoint its own key with --api-key / --grader-api-key if it needs one",
                self.base_url,
            )
            self._api_key = None
        else:
            self._api_key = env_key
        self._env_key_withheld = (
            api_key is None and self._basic_auth is None and bool(env_key) and not self._api_key
        )
        register_secret(self._api_key)
        if self._url == OPENAI_URL and not self._api_key and self._basic_auth is None:
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
            if self._basic_auth is not None:
                headers["Authorization"] = self._basic_auth
            elif self._api_key:
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
        url = f"{self._url}/chat/completions"
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
            if self._basic_auth is not None:
                hint = "check the user name and password in the URL"
            elif self._env_key_withheld:
                hint = (
                    "OPENAI_API_KEY is not sent to a plain-http server on another machine; give "
                    "this endpoint its key with --api-key (or --grader-api-key)"
                )
            else:
                hint = "check OPENAI_API_KEY or --api-key"
            return AuthenticationError(
                f"{self.base_url} rejected the API key (HTTP {status}: {detail}); {hint}",
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
