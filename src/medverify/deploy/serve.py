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
  identical replies (``benchmarks/deploy_serve.py``).

medverify's own ``openai:<model>`` backend, ``healthbench run``, the simulator and ``medverify
demo --doctor openai:<name> --base-url http://127.0.0.1:<port>/v1`` use it unchanged (tested in
``tests/deploy/test_deploy_serve.py``). aiohttp is already a core dependency, so the CPU server
costs no new install (FastAPI + uvicorn would add two for the same three routes).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medverify.backends.base import Message, SamplingParams
from medverify.backends.batching import Batcher
from medverify.deploy.engine import (
    DEFAULT_DRAFT_TOKENS,
    NGRAM_DRAFT_TOKENS,
    Engine,
    Generation,
    is_ngram,
)
from medverify.errors import ConfigError

log = logging.getLogger(__name__)


class ChatRequest(BaseModel):
    """The part of OpenAI's chat-completions request the CPU server honours."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    n: int = Field(1, ge=1, le=1)

    def sampling(self, default_max_tokens: int) -> SamplingParams:
        """The request as medverify sampling parameters."""
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_completion_tokens or self.max_tokens or default_max_tokens,
            seed=self.seed,
            stop=tuple(stop),
        )


def _error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind}}, status=status)


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

    Args:
        engine: the loaded (or lazily loaded) engine.
        default_max_tokens: used when a request sets no ``max_tokens``.
        max_batch_size: most requests in one batch; 1 turns batching off.
        batch_window_s: how long the first request of an idle spell waits for company.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        default_max_tokens: int = 512,
        max_batch_size: int = 8,
        batch_window_s: float = 0.01,
    ) -> None:
        self.batcher = Batcher(engine, max_batch_size=max_batch_size, batch_window_s=batch_window_s)
        self.engine = engine
        self.default_max_tokens = default_max_tokens
        self.max_batch_size = max_batch_size
        self.batch_window_s = batch_window_s
        self.requests = 0
        self.last_stats: Any = None

    @property
    def batch_sizes(self) -> list[int]:
        """Sizes of the batches greedy requests were answered in (empty with batching off)."""
        return self.batcher.sizes

    async def generate(self, messages: list[Message], params: SamplingParams) -> Generation:
        """One reply, batched with concurrent greedy requests where possible."""
        return await asyncio.wrap_future(self.batcher.submit(messages, params))

    def close(self) -> None:
        """Finish the queued requests and stop the generation thread (blocking)."""
        self.batcher.close()

    def app(self) -> web.Application:
        """The routes."""
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "model": self.engine.name})

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": self.engine.name, "object": "model", "owned_by": "medverify"}]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body is not JSON")
        try:
            req = ChatRequest.model_validate(body)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            return _error(400, f"{where}: {err['msg']}")
        try:
            params = req.sampling(self.default_max_tokens)
        except ValidationError as exc:
            return _error(400, str(exc.errors()[0]["msg"]))
        self.requests += 1
        rid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if req.stream:
            return await self._stream(request, req, params, rid)
        try:
            gen = await self.generate(req.messages, params)
        except ConfigError as exc:
            return _error(400, str(exc))
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
        self, request: web.Request, req: ChatRequest, params: SamplingParams, rid: str
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
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

        await resp.write(chunk({"role": "assistant", "content": ""}))
        job = self.batcher.submit(
            req.messages,
            params,
            on_text=lambda t: loop.call_soon_threadsafe(queue.put_nowait, t),
        )
        job.add_done_callback(lambda _f: loop.call_soon_threadsafe(queue.put_nowait, None))
        while (piece := await queue.get()) is not None:
            await resp.write(chunk({"content": piece}))
        try:
            gen = await asyncio.wrap_future(job)
        except ConfigError as exc:
            await resp.write(f"data: {json.dumps({'error': {'message': str(exc)}})}\n\n".encode())
            await resp.write(b"data: [DONE]\n\n")
            return resp
        self.last_stats = gen.stats
        usage = self._completion(gen, rid)["usage"]
        await resp.write(chunk({}, gen.stats.finish_reason, usage=usage))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
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
) -> AsyncIterator[tuple[ChatServer, str]]:
    """Serve ``engine`` in this event loop; yields the server and its ``/v1`` base URL.

    Raises:
        ConfigError: the port is in use.
    """
    check_port_free(host, port)
    server = ChatServer(
        engine, default_max_tokens=default_max_tokens, max_batch_size=max_batch_size
    )
    runner = web.AppRunner(server.app(), access_log=None)
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


def vllm_command(config: ServeConfig, model_dir: Path) -> list[str]:
    """The ``vllm serve`` command line for a model, its quantized version and its draft.

    vLLM reads the quantization method from the checkpoint's ``config.json`` (compressed-tensors
    from ``w8a16``/``w4a16``, bitsandbytes, torchao), so the quantized directory is simply the
    model it serves; the draft goes in ``--speculative-config``.

    Raises:
        ConfigError: a quantized directory vLLM cannot load (``int8-dynamic`` or GGUF), or an
            EAGLE head (medverify's own layout).
    """
    from medverify.deploy.common import read_manifest

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
        from medverify.deploy.eagle import is_eagle_dir

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


def choose_engine(requested: str) -> str:
    """``vllm`` where asked, or for ``auto`` where a GPU and vLLM are present; else ``local``.

    Raises:
        ConfigError: ``vllm`` asked for but not installed or no CUDA device; unknown engine.
    """
    from medverify.deploy.quantize import _importable, cuda_available

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
    from medverify.deploy.common import read_manifest, resolve_model

    if config.quantized is not None:
        read_manifest(config.quantized, kind="quantized")
        target = config.quantized
    else:
        target = resolve_model(config.model)
    if config.draft is not None and not is_ngram(config.draft):
        read_manifest(config.draft, kind="draft")
    name = config.name or ("local" if config.model.strip() == "local" else Path(target).name)
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
    ) as (_server, url):
        if on_ready is not None:
            on_ready(url, engine)
        await asyncio.Event().wait()
