"""A fake OpenAI-compatible server on 127.0.0.1, for tests and benchmarks that must stay offline.

It answers ``POST /v1/chat/completions`` like vLLM or OpenAI would, after a configurable
latency, and can be told to misbehave: rate limits (429 with ``Retry-After``), server errors,
malformed JSON, a reply that never comes, a dropped connection, a rejected key. Faults are queued
and consumed one request at a time, so a test says exactly what the next calls will meet.

Two ways to run it:

* in-process, in a background thread (tests): ``with FakeOpenAIServer(latency_s=0.01) as srv:``
  then point a backend at ``srv.base_url``; ``srv.responder`` may be any Python function of the
  request body, so a test can play a grader that answers JSON verdicts;
* as its own process (benchmarks, so that server and client don't share a core):
  ``python -m medverify.testing.fake_openai --latency 0.1`` prints ``PORT <n>`` when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from aiohttp import web

from medverify.testing.judges import keyword_judge

Fault = Literal["429", "500", "503", "malformed", "hang", "disconnect", "401", "empty"]
FAULTS: tuple[str, ...] = ("429", "500", "503", "malformed", "hang", "disconnect", "401", "empty")
Responder = Callable[[dict[str, Any]], str]


def echo_responder(body: dict[str, Any]) -> str:
    """Default reply: a deterministic echo of the last user message."""
    last = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
    return f"echo: {last}"


class FakeOpenAIServer:
    """An OpenAI-compatible chat endpoint with injectable latency and faults.

    Args:
        latency_s: delay before every answer.
        responder: function of the request body returning the reply text.
        api_key: when set, requests must carry ``Authorization: Bearer <api_key>`` (else 401).
        port: 0 picks a free port.
        keep_bodies: how many recent request bodies to keep for inspection.
    """

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        responder: Responder = echo_responder,
        api_key: str | None = None,
        port: int = 0,
        keep_bodies: int = 1000,
    ) -> None:
        self.latency_s = latency_s
        self.responder = responder
        self.api_key = api_key
        self.port = port
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.by_outcome: collections.Counter[str] = collections.Counter()
        self.calls_by_prompt: collections.Counter[str] = collections.Counter()
        self.bodies: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep_bodies)
        self.auth_headers: collections.deque[str] = collections.deque(maxlen=keep_bodies)
        self._faults: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._hanging: set[asyncio.Future[None]] = set()

    # -- control -------------------------------------------------------------------------------
    def enqueue_faults(self, *faults: str) -> None:
        """Make the next ``len(faults)`` requests fail this way, in order."""
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; choose from {FAULTS}")
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        """Forget counts and pending faults."""
        with self._lock:
            self._faults.clear()
            self.requests = 0
            self.max_in_flight = 0
            self.by_outcome.clear()
            self.calls_by_prompt.clear()
            self.bodies.clear()
            self.auth_headers.clear()

    @property
    def base_url(self) -> str:
        """The ``/v1`` URL to give a client."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- HTTP ----------------------------------------------------------------------------------
    def app(self) -> web.Application:
        """The aiohttp application (also usable with aiohttp's own test client)."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/_fake/stats", self._stats)
        app.router.add_post("/_fake/faults", self._faults_endpoint)
        return app

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.requests,
                "max_in_flight": self.max_in_flight,
                "by_outcome": dict(self.by_outcome),
            }
        )

    async def _faults_endpoint(self, request: web.Request) -> web.Response:
        payload = await request.json()
        self.enqueue_faults(*payload.get("faults", []))
        return web.json_response({"queued": len(self._faults)})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        auth = request.headers.get("Authorization", "")
        with self._lock:
            self.requests += 1
            fault = self._faults.popleft() if self._faults else None
            self.auth_headers.append(auth)
        try:
            body = json.loads(raw)
        except ValueError:
            self.by_outcome["400"] += 1
            return web.json_response({"error": {"message": "invalid JSON body"}}, status=400)
        self.bodies.append(body)
        last = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        self.calls_by_prompt[last] += 1
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            fault = "401"
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        self.by_outcome[fault or "ok"] += 1
        if fault == "429":
            return web.json_response(
                {"error": {"message": "rate limited", "type": "rate_limit"}},
                status=429,
                headers={"Retry-After": "0"},
            )
        if fault in ("500", "503"):
            return web.json_response({"error": {"message": "server error"}}, status=int(fault))
        if fault == "401":
            return web.json_response(
                {"error": {"message": "Incorrect API key provided", "type": "invalid_api_key"}},
                status=401,
            )
        if fault == "malformed":
            return web.Response(body=b'{"choices": [ {"mess', content_type="application/json")
        if fault == "empty":
            return web.json_response({"id": "x", "object": "chat.completion", "choices": []})
        if fault == "hang":
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._hanging.add(waiter)
            try:
                await waiter
            finally:
                self._hanging.discard(waiter)
        if fault == "disconnect":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)
        text = self.responder(body)
        prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
        return web.json_response(
            {
                "id": f"chatcmpl-fake-{self.requests}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(text.split()),
                    "total_tokens": prompt_tokens + len(text.split()),
                },
            }
        )

    # -- lifecycle -----------------------------------------------------------------------------
    async def start_async(self) -> str:
        """Start on the running loop; returns the base URL."""
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=4096)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        return self.base_url

    async def stop_async(self) -> None:
        """Stop serving; requests that hang are released."""
        for waiter in list(self._hanging):
            waiter.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> str:
        """Start in a background thread with its own event loop; returns the base URL."""

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start_async())
            self._started.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.stop_async())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("fake OpenAI server did not start")
        return self.base_url

    def stop(self) -> None:
        """Stop the background server."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> FakeOpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Run the fake server in the foreground (``python -m medverify.testing.fake_openai``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--api-key", default=None)
    parser.add_argument(
        "--responder",
        choices=("echo", "keyword-judge"),
        default="echo",
        help="echo the last user message, or answer grading requests as a keyword judge",
    )
    args = parser.parse_args(argv)
    responder = echo_responder
    if args.responder == "keyword-judge":
        responder = keyword_judge
    server = FakeOpenAIServer(
        latency_s=args.latency, api_key=args.api_key, port=args.port, responder=responder
    )

    async def serve() -> None:
        await server.start_async()
        print(f"PORT {server.port}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
