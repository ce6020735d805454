"""An OpenAI-compatible server for a model, quantized or not, with its draft: ``medverify serve``.

Two engines behind one command:

* **GPU with vLLM installed** (``--engine vllm``, or ``auto`` when both are present): medverify
  starts ``vllm serve`` with the quantized directory (vLLM reads compressed-tensors, bitsandbytes
  and torchao configs from ``config.json``) and the draft as ``--speculative-config``. vLLM brings
  continuous batching and paged attention; nothing here re-implements them.
  :func:`vllm_command` builds the exact command line (also printed with ``--dry-run``).
* **CPU** (``--engine local``): the :class:`~medverify.deploy.engine.Engine` (transformers, with
  the draft through ``assistant_model=``) behind a small aiohttp server: ``POST
  /v1/chat/completions`` (with ``"stream": true`` as server-sent events, the OpenAI chunk format),
  ``GET /v1/models`` and ``GET /health``. The engine runs one generation at a time (a torch model
  is not thread-safe); concurrent greedy requests are batched by the same micro-batcher as the
  ``hf:`` and ``local`` backends (:class:`ChatServer`): 8 clients got 2.87x the throughput with
  identical replies (``benchmarks/deploy_serve.py``). It refuses what it cannot serve before
  queueing any work (a prompt plus ``max_tokens`` beyond the context: 400
  ``context_length_exceeded``, as vLLM and OpenAI answer; ``max_tokens`` above
  ``--max-tokens-limit``: 400), stops a
  request whose client disconnected at its next token, answers every error as OpenAI's JSON and,
  with ``--api-key`` (or ``MEDVERIFY_SERVE_API_KEY``), wants ``Authorization: Bearer <key>``.

medverify's own ``openai:<model>`` backend, ``healthbench run``, the simulator and ``medverify
demo --doctor openai:<name> --base-url http://127.0.0.1:<port>/v1`` use it unchanged (tested in
``tests/deploy/test_deploy_serve.py``). aiohttp is already a core dependency, so the CPU server
costs no new install (FastAPI + uvicorn would add two for the same three routes).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import hmac
import json
import logging
import shlex
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from medverify.backends.base import Message, SamplingParams
from medverify.backends.batching import Batcher
from medverify.backends.local_doctor import DOCTOR_SPEC
from medverify.backends.runtime import PromptTooLongError
from medverify.deploy.common import read_manifest, resolve_model
from medverify.deploy.eagle import is_eagle_dir
from medverify.deploy.engine import (
    DEFAULT_DRAFT_TOKENS,
    NGRAM_DRAFT_TOKENS,
    Engine,
    Generation,
    is_ngram,
)
from medverify.deploy.quantize import _importable, cuda_available
from medverify.errors import ConfigError

log = logging.getLogger(__name__)


#: the range vLLM accepts for ``seed`` (a torch generator seed is a 64-bit integer)
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1
#: largest request body (a prompt that fills a 8k context is well under 1 MB of JSON)
MAX_BODY_BYTES = 8 * 1024 * 1024


class ContentPart(BaseModel):
    """One part of a message's ``content`` list; only ``{"type": "text", "text": ...}`` is read."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message as OpenAI clients send it.

    ``content`` may be a string, a list of content parts (text ones are joined with newlines,
    as vLLM does) or null (an assistant turn that only called tools); ``name`` is accepted and
    dropped (the chat template has nowhere to put it); ``developer`` is OpenAI's newer name for
    ``system`` and is treated as it.
    """

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def text(self) -> str:
        """The message's text.

        Raises:
            ValueError: a content part that is not text (images, audio, files).
        """
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        texts = []
        for part in self.content:
            if part.type != "text" or part.text is None:
                raise ValueError(
                    f"content parts of type {part.type!r} are not supported (text only)"
                )
            texts.append(part.text)
        return "\n".join(texts)

    def to_message(self) -> Message:
        """The medverify message (``developer`` as ``system``)."""
        role = "system" if self.role == "developer" else self.role
        return Message(role=role, content=self.text())


class ChatRequest(BaseModel):
    """The part of OpenAI's chat-completions request the CPU server honours."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    stop: str | list[str] | None = None
    stream: bool = False
    n: int = Field(1, ge=1, le=1)

    @property
    def requested_max_tokens(self) -> int | None:
        """``max_completion_tokens`` or ``max_tokens``, whichever is set (None: neither)."""
        return self.max_completion_tokens or self.max_tokens

    def sampling(self, max_tokens: int) -> SamplingParams:
        """The request as medverify sampling parameters, generating at most ``max_tokens``."""
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=max_tokens,
            seed=self.seed,
            stop=tuple(stop),
        )


class RequestError(Exception):
    """A request the server answers with an OpenAI-style error (never a traceback)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = (
            status,
            message,
            kind,
            param,
            code,
        )

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        """The JSON error response."""
        return _error(
            self.status,
            self.message,
            kind=self.kind,
            param=self.param,
            code=self.code,
            headers=headers,
        )


def _error_body(
    message: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _error(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An OpenAI-style error: ``{"error": {"message", "type", "param", "code"}}``."""
    return web.json_response(
        _error_body(message, kind, param, code), status=status, headers=headers
    )


def _param(loc: tuple[Any, ...]) -> str | None:
    """A pydantic error location as an OpenAI ``param`` (``messages[0].content``)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "list[ContentPart]"):
            continue  # union branches pydantic names, not fields
        else:
            out += f".{part}" if out else str(part)
    return out or None


def _validation_error(exc: ValidationError) -> RequestError:
    err = exc.errors()[0]
    param = _param(tuple(err["loc"]))
    msg = str(err["msg"]).removeprefix("Value error, ")
    return RequestError(400, f"{param}: {msg}" if param else msg, param=param)


def _http_error(request: web.Request, exc: web.HTTPException) -> RequestError:
    """Errors aiohttp raises itself (no route, wrong method, body too large) as OpenAI's."""
    if isinstance(exc, web.HTTPNotFound):
        return RequestError(404, f"no route {request.method} {request.path}", code="not_found")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return RequestError(
            405,
            f"method {request.method} is not allowed on {request.path} (allowed: {allowed})",
            code="method_not_allowed",
        )
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return RequestError(
            413, f"the request body is larger than {MAX_BODY_BYTES} bytes", code="too_large"
        )
    kind = "invalid_request_error" if exc.status < 500 else "server_error"
    return RequestError(exc.status, exc.reason, kind=kind)


class ChatServer:
    """The aiohttp application around an :class:`Engine`.

    Requests go through the runtime's micro-batcher
    (:class:`~medverify.backends.batching.Batcher`), one worker thread driving the engine:
    greedy, non-streaming requests that arrive while it is busy (or within ``batch_window_s`` of
    each other) and share ``max_tokens`` and ``stop`` are answered together in one left-padded
    batch (:meth:`Engine.generate_many_ids`): on CPU in float32 that gives each its
    single-request text (tested) at several times the throughput for concurrent clients such as
    ``medverify demo``. A request alone still goes through :meth:`Engine.generate_ids`, with the
    draft when there is one; sampled and streamed requests are never batched.

    Limits, checked before any work is queued: a prompt is tokenized on its own thread (never
    on the generation worker) and one that, with ``max_tokens``, does not fit the model's
    context is answered 400 ``context_length_exceeded`` (a request without ``max_tokens`` gets
    ``default_max_tokens`` or what the context has left); ``max_tokens`` above
    ``max_tokens_limit`` is answered 400. A request whose client disconnects is cancelled:
    dropped while queued, stopped at its next token while generating. Every error is OpenAI's
    JSON (``{"error": {"message", "type", "param", "code"}}``); with ``api_key`` every route
    but ``/health`` needs ``Authorization: Bearer <key>`` (401 otherwise).

    Args:
        engine: the loaded (or lazily loaded) engine.
        default_max_tokens: used when a request sets no ``max_tokens``.
        max_batch_size: most requests in one batch; 1 turns batching off.
        batch_window_s: how long the first request of an idle spell waits for company.
        max_tokens_limit: most tokens a request may ask for (default: the model's context).
        api_key: the bearer token clients must send (None: no authentication).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        default_max_tokens: int = 512,
        max_batch_size: int = 8,
        batch_window_s: float = 0.01,
        max_tokens_limit: int | None = None,
        api_key: str | None = None,
    ) -> None:
        self.batcher = Batcher(engine, max_batch_size=max_batch_size, batch_window_s=batch_window_s)
        self.engine = engine
        self.default_max_tokens = default_max_tokens
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_s
        self.max_tokens_limit = max_tokens_limit
        self._api_key = api_key or None
        self.requests = 0
        self.last_stats: Any = None
        self._encoder = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="encode")
        self._chars_per_token: int | None = None

    @property
    def batch_sizes(self) -> list[int]:
        """Sizes of the batches greedy requests were answered in (empty with batching off)."""
        return self.batcher.sizes

    async def generate(self, messages: list[Message], params: SamplingParams) -> Generation:
        """One reply, batched with concurrent greedy requests where possible."""
        return await asyncio.wrap_future(self.batcher.submit(messages, params))

    def close(self) -> None:
        """Finish the queued requests and stop the generation thread (blocking)."""
        self._encoder.shutdown(wait=True, cancel_futures=True)
        self.batcher.close()

    def app(self) -> web.Application:
        """The routes."""
        app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[self._middleware])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Authentication, and every error as OpenAI JSON (a bug logs; its body says nothing)."""
        try:
            if self._api_key is not None and request.path != "/health":
                self._authenticate(request)
            return await handler(request)
        except RequestError as exc:
            return exc.response()
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return _http_error(request, exc).response(headers)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            return _error(500, "internal server error", kind="server_error")

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        assert self._api_key is not None
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._api_key.encode()
        ):
            raise RequestError(
                401,
                "missing or invalid API key; send 'Authorization: Bearer <key>'",
                code="invalid_api_key",
            )

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "model": self.engine.name})

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": self.engine.name, "object": "model", "owned_by": "medverify"}]
        return web.json_response({"object": "list", "data": data})

    def _too_long(self, prompt: int, completion: int, context: int) -> RequestError:
        return RequestError(
            400,
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the "
            "completion). Please reduce the length of the messages or completion.",
            param="messages",
            code="context_length_exceeded",
        )

    def _encode(self, messages: list[Message]) -> list[int]:
        """The prompt's token ids (on the encoder thread), refusing hopeless prompts unread."""
        context = self.engine.max_context
        if context is not None:
            if self._chars_per_token is None:
                # no token is longer than the longest vocabulary entry, so more characters than
                # context x that cannot fit: refuse them without tokenizing megabytes
                vocab = self.engine.tokenizer.get_vocab()
                self._chars_per_token = max((len(t) for t in vocab), default=1)
            chars = sum(len(m.content) for m in messages)
            if chars > context * self._chars_per_token:
                raise RequestError(
                    400,
                    f"This model's maximum context length is {context} tokens; the messages "
                    f"are {chars} characters, more than that many tokens can hold. Please "
                    "reduce the length of the messages.",
                    param="messages",
                    code="context_length_exceeded",
                )
        return self.engine.encode(messages)

    async def _prepare(
        self, request: web.Request
    ) -> tuple[ChatRequest, list[Message], list[int], SamplingParams]:
        """Parse, validate and tokenize a request, or raise the :class:`RequestError` for it."""
        try:
            body = await request.json()
        except ValueError:
            raise RequestError(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise RequestError(400, "the body must be a JSON object")
        try:
            req = ChatRequest.model_validate(body)
        except ValidationError as exc:
            raise _validation_error(exc) from None
        messages = []
        for i, m in enumerate(req.messages):
            try:
                messages.append(m.to_message())
            except ValueError as exc:
                raise RequestError(400, str(exc), param=f"messages[{i}].content") from None
        wanted = req.requested_max_tokens
        param = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        if wanted is not None and self.max_tokens_limit and wanted > self.max_tokens_limit:
            raise RequestError(
                400,
                f"{param} is too large: {wanted}. This server allows at most "
                f"{self.max_tokens_limit} completion tokens.",
                param=param,
            )
        await asyncio.to_thread(self.engine.load)
        loop = asyncio.get_running_loop()
        try:
            prompt = await loop.run_in_executor(self._encoder, self._encode, messages)
        except PromptTooLongError as exc:
            raise self._too_long(exc.prompt_tokens, wanted or 0, exc.max_context) from None
        except ConfigError as exc:
            raise RequestError(400, str(exc), param="messages") from None
        context = self.engine.max_context
        if wanted is None:
            wanted = self.default_max_tokens
            if self.max_tokens_limit:
                wanted = min(wanted, self.max_tokens_limit)
            if context is not None:
                wanted = max(1, min(wanted, context - len(prompt)))
        elif context is not None and len(prompt) + wanted > context:
            raise self._too_long(len(prompt), wanted, context)
        try:
            params = req.sampling(wanted)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = str(err["loc"][0]) if err["loc"] else None
            if field == "max_tokens":
                field = param
            raise RequestError(400, f"{field}: {err['msg']}", param=field) from None
        return req, messages, prompt, params

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        req, messages, prompt, params = await self._prepare(request)
        self.requests += 1
        rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if req.stream:
            return await self._stream(request, messages, prompt, params, rid)
        job = self.batcher.submit(messages, params, prompt=prompt)
        try:
            gen = await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            job.cancel()
            log.info("%s: the client disconnected; its request was cancelled", rid)
            raise
        except ConfigError as exc:
            raise RequestError(400, str(exc)) from None
        self.last_stats = gen.stats
        return web.json_response(self._completion(gen, rid))

    def _completion(self, gen: Generation, rid: str) -> dict[str, Any]:
        s = gen.stats
        return {
            "id": rid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.engine.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": gen.text},
                    "finish_reason": s.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": s.prompt_tokens,
                "completion_tokens": s.completion_tokens,
                "total_tokens": s.prompt_tokens + s.completion_tokens,
            },
        }

    async def _stream(
        self,
        request: web.Request,
        messages: list[Message],
        prompt: list[int],
        params: SamplingParams,
        rid: str,
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            payload = {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.engine.name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                **extra,
            }
            return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()

        job = self.batcher.submit(
            messages,
            params,
            prompt=prompt,
            on_text=lambda t: loop.call_soon_threadsafe(queue.put_nowait, t),
        )
        job.add_done_callback(lambda _f: loop.call_soon_threadsafe(queue.put_nowait, None))
        try:
            await resp.prepare(request)
            await resp.write(chunk({"role": "assistant", "content": ""}))
            while (piece := await queue.get()) is not None:
                await resp.write(chunk({"content": piece}))
            try:
                gen = await asyncio.wrap_future(job)
            except ConfigError as exc:
                error = json.dumps(_error_body(str(exc)))
                await resp.write(f"data: {error}\n\n".encode())
                await resp.write(b"data: [DONE]\n\n")
                return resp
            self.last_stats = gen.stats
            usage = self._completion(gen, rid)["usage"]
            await resp.write(chunk({}, gen.stats.finish_reason, usage=usage))
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError) as exc:
            # the client went away mid-stream: stop its generation at the next token, say so in
            # one line (no traceback: a dropped stream is an ordinary event)
            job.cancel()
            log.info("%s: the client closed the stream; its generation was stopped", rid)
            if isinstance(exc, asyncio.CancelledError):
                raise
        return resp


def check_port_free(host: str, port: int) -> None:
    """Fail early, naming the port, when something already listens there.

    Raises:
        ConfigError: the port is in use (or the host cannot be bound).
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {host} is in use; choose another with --port"
                ) from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


@contextlib.asynccontextmanager
async def running_server(
    engine: Engine,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    default_max_tokens: int = 512,
    max_batch_size: int = 8,
    max_tokens_limit: int | None = None,
    api_key: str | None = None,
) -> AsyncIterator[tuple[ChatServer, str]]:
    """Serve ``engine`` in this event loop; yields the server and its ``/v1`` base URL.

    A handler whose client disconnects is cancelled (``handler_cancellation``), which cancels
    its request in the batcher.

    Raises:
        ConfigError: the port is in use.
    """
    check_port_free(host, port)
    server = ChatServer(
        engine,
        default_max_tokens=default_max_tokens,
        max_batch_size=max_batch_size,
        max_tokens_limit=max_tokens_limit,
        api_key=api_key,
    )
    runner = web.AppRunner(server.app(), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = runner.addresses[0][1] if runner.addresses else port
    try:
        yield server, f"http://{host}:{bound}/v1"
    finally:
        await runner.cleanup()
        await asyncio.to_thread(server.close)


class ServeConfig(BaseModel):
    """What ``medverify serve`` was asked for."""

    model: str
    quantized: Path | None = None
    draft: Path | None = None
    name: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    engine: str = "auto"
    draft_tokens: int | None = Field(None, ge=1, le=64)
    default_max_tokens: int = Field(512, ge=1)
    max_batch_size: int = Field(8, ge=1, le=256)
    #: most tokens a request may ask for (None: the model's context)
    max_tokens_limit: int | None = Field(None, ge=1)
    #: the bearer token clients must send; a SecretStr so that no repr or log shows it
    api_key: SecretStr | None = None

    @property
    def api_key_value(self) -> str | None:
        """The API key in clear (to hand to the server only), or None."""
        return self.api_key.get_secret_value() if self.api_key else None


def vllm_command(config: ServeConfig, model_dir: Path) -> list[str]:
    """The ``vllm serve`` command line for a model, its quantized version and its draft.

    vLLM reads the quantization method from the checkpoint's ``config.json`` (compressed-tensors
    from ``w8a16``/``w4a16``, bitsandbytes, torchao), so the quantized directory is simply the
    model it serves; the draft goes in ``--speculative-config``.

    Raises:
        ConfigError: a quantized directory vLLM cannot load (``int8-dynamic`` or GGUF), or an
            EAGLE head (medverify's own layout).
    """
    served = model_dir
    if config.quantized is not None:
        manifest = read_manifest(config.quantized, kind="quantized")
        if manifest.method == "int8-dynamic" or manifest.method.startswith("gguf-"):
            raise ConfigError(
                f"{config.quantized} is {manifest.method}, a CPU format vLLM cannot load; "
                "quantize with w8a16, w4a16, bnb-nf4 or torchao-int8 for vLLM, or serve with "
                "--engine local"
            )
        served = config.quantized
    cmd = [
        "vllm",
        "serve",
        str(served),
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--served-model-name",
        config.name or served.name,
    ]
    if is_ngram(config.draft):
        spec: dict[str, Any] = {
            "method": "ngram",
            "num_speculative_tokens": config.draft_tokens or NGRAM_DRAFT_TOKENS,
            "prompt_lookup_max": 4,
        }
        cmd += ["--speculative-config", json.dumps(spec)]
    elif config.draft is not None:
        if is_eagle_dir(config.draft):
            raise ConfigError(
                f"{config.draft} is a medverify EAGLE head (pruned vocabulary, its own file "
                "layout), which vLLM does not load; serve it with --engine local, or give vLLM "
                "a draft model ('deploy distill-draft --kind model') or --draft ngram"
            )
        spec = {
            "model": str(config.draft),
            "num_speculative_tokens": config.draft_tokens or DEFAULT_DRAFT_TOKENS,
        }
        cmd += ["--speculative-config", json.dumps(spec)]
    return cmd


def shell_command(cmd: list[str]) -> str:
    """``cmd`` as one line that pastes into a POSIX shell (JSON arguments quoted)."""
    return shlex.join(cmd)


def vllm_env(config: ServeConfig) -> dict[str, str]:
    """Environment for ``vllm serve``: the API key travels as ``VLLM_API_KEY``, never in argv."""
    key = config.api_key_value
    return {"VLLM_API_KEY": key} if key else {}


def choose_engine(requested: str) -> str:
    """``vllm`` where asked, or for ``auto`` where a GPU and vLLM are present; else ``local``.

    Raises:
        ConfigError: ``vllm`` asked for but not installed or no CUDA device; unknown engine.
    """
    if requested not in ("auto", "local", "vllm"):
        raise ConfigError(f"unknown engine {requested!r}; use auto, local or vllm")
    has_vllm = _importable("vllm") and shutil.which("vllm") is not None
    if requested == "vllm":
        if not has_vllm:
            raise ConfigError("--engine vllm needs vLLM: pip install vllm (on a CUDA machine)")
        if not cuda_available():
            raise ConfigError("--engine vllm needs a CUDA GPU; on CPU use --engine local")
        return "vllm"
    if requested == "auto" and has_vllm and cuda_available():
        return "vllm"
    return "local"


def engine_for(config: ServeConfig) -> Engine:
    """The CPU engine for a serve config (target: the quantized directory when given)."""
    if config.quantized is not None:
        read_manifest(config.quantized, kind="quantized")
        target = config.quantized
    else:
        target = resolve_model(config.model)
    if config.draft is not None and not is_ngram(config.draft):
        read_manifest(config.draft, kind="draft")
    spec = config.model.strip()
    name = config.name or (spec if spec in ("local", DOCTOR_SPEC) else Path(target).name)
    return Engine(target, draft=config.draft, name=name, draft_tokens=config.draft_tokens)


async def serve_forever(config: ServeConfig, *, on_ready: Any = None) -> None:
    """Load the engine and serve until cancelled (Ctrl-C)."""
    check_port_free(config.host, config.port)
    engine = engine_for(config)
    await asyncio.to_thread(engine.load)
    async with running_server(
        engine,
        host=config.host,
        port=config.port,
        default_max_tokens=config.default_max_tokens,
        max_batch_size=config.max_batch_size,
        max_tokens_limit=config.max_tokens_limit,
        api_key=config.api_key_value,
    ) as (_server, url):
        if on_ready is not None:
            on_ready(url, engine)
        await asyncio.Event().wait()
