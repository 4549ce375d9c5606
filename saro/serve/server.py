"""`saro serve MODEL`: an OpenAI-compatible HTTP server over a local Hugging Face model.

Endpoints: `POST /v1/chat/completions` (JSON or, with `"stream": true`, server-sent events), `GET /v1/models`,
`GET /health`. Concurrent requests are batched by `BatchingEngine`. Bad requests get an OpenAI-style error object
with a 4xx status; the server keeps serving. It lets red-teaming tools (garak, promptfoo, PyRIT) and saro's own
teacher and judge clients talk to an aligned model.

    saro serve runs/demo/srpo-model --port 8000
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from saro.config import RangeChecked
from saro.errors import SaroError
from saro.models import DEFAULT_MODEL
from saro.serve.engine import BatchingEngine, GenerationRequest, drain

log = logging.getLogger(__name__)
ROLES = ("system", "user", "assistant")


@dataclass
class ServeConfig(RangeChecked):
    """Where to listen (`host`, `port`), what to serve (`model`, listed as `served_name`), how to batch
    (`max_batch_size`, `batch_wait_ms`) and the request limits (`max_tokens_limit`, `default_max_tokens`,
    `max_body_bytes`, `request_timeout`); a prompt plus its max_tokens must also fit the model's context."""

    model: str = field(default=DEFAULT_MODEL, metadata={"help": "Model: path, hub id or 'smollm2'."})
    served_name: str | None = field(default=None, metadata={"help": "Model id clients send (default: model)."})
    host: str = field(default="127.0.0.1", metadata={"help": "Interface to listen on."})
    port: int = field(default=8000, metadata={"help": "Port (0: any free port).", "min": 0, "max": 65535})
    max_batch_size: int = field(default=16, metadata={"help": "Requests generated together at most.", "min": 1})
    batch_wait_ms: float = field(
        default=10.0, metadata={"help": "How long a batch waits for more requests.", "min": 0}
    )
    default_max_tokens: int = field(default=256, metadata={"help": "max_tokens when a request gives none.", "min": 1})
    max_tokens_limit: int = field(default=4096, metadata={"help": "Largest max_tokens accepted.", "min": 1})
    max_body_bytes: int = field(default=4_000_000, metadata={"help": "Largest request body accepted.", "min": 1})
    request_timeout: float = field(
        default=30.0, metadata={"help": "Seconds to wait for a request's next bytes.", "above": 0}
    )


class RequestError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.param, self.code = status, param, code


def parse_chat_request(body: dict, config: ServeConfig, names: set[str]) -> dict:
    """Validate a chat-completions body; returns the settings or raises RequestError naming the field."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    model = body.get("model")
    if model is not None and model not in names:
        raise RequestError(
            404, f"model {model!r} is not served here; GET /v1/models lists it", "model", "model_not_found"
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty list", "messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise RequestError(400, f"messages[{i}].role must be one of {', '.join(ROLES)}", f"messages[{i}].role")
        content = message.get("content")
        if isinstance(content, list):  # OpenAI content parts: text only
            if not all(
                isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
            ):
                raise RequestError(
                    400, f"messages[{i}].content: only text parts are supported", f"messages[{i}].content"
                )
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise RequestError(400, f"messages[{i}].content must be a string", f"messages[{i}].content")
        messages[i] = {"role": message["role"], "content": content}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens", config.default_max_tokens))
    if (
        not isinstance(max_tokens, int)
        or isinstance(max_tokens, bool)
        or not 1 <= max_tokens <= config.max_tokens_limit
    ):
        raise RequestError(400, f"max_tokens must be an integer from 1 to {config.max_tokens_limit}", "max_tokens")
    temperature = body.get("temperature", 1.0)  # OpenAI's default
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 <= temperature <= 2:
        raise RequestError(400, "temperature must be a number from 0 to 2", "temperature")
    top_p = body.get("top_p", 1.0)
    if not isinstance(top_p, (int, float)) or isinstance(top_p, bool) or not 0 < top_p <= 1:
        raise RequestError(400, "top_p must be a number in (0, 1]", "top_p")
    if body.get("n", 1) != 1:
        raise RequestError(400, "only n=1 is supported", "n")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise RequestError(400, "seed must be an integer", "seed")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, "stream must be true or false", "stream")
    return {
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": float(temperature),
        "top_p": float(top_p),
        "seed": seed,
        "stream": stream,
    }


def listen(config: ServeConfig) -> ThreadingHTTPServer:
    """A server bound to `config.host:config.port` and not serving yet, so a port in use or out of reach fails
    before the model loads.

    Raises:
        SaroError: the address cannot be bound (in use, not an address of this machine, privileged).
    """
    try:
        return _Server((config.host, config.port), BaseHTTPRequestHandler)
    except OSError as exc:
        raise SaroError(
            f"serve: cannot listen on {config.host}:{config.port} ({exc.strerror or exc}); choose another host or port"
        ) from None


def make_server(
    config: ServeConfig, engine: BatchingEngine, server: ThreadingHTTPServer | None = None
) -> ThreadingHTTPServer:
    """The HTTP server (not started) over `engine`, on `server` from `listen` or a new one; `server.server_address`
    has the bound port."""
    served = config.served_name or config.model
    names = {served, config.model}
    created = int(time.time())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = config.request_timeout  # a client that sends less than its Content-Length frees its thread

        def log_message(self, fmt, *args):  # request lines go to the debug log, never prompts
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send_json(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, error: RequestError) -> None:
            kind = "invalid_request_error" if error.status < 500 else "server_error"
            self._send_json(
                error.status,
                {"error": {"message": str(error), "type": kind, "param": error.param, "code": error.code}},
            )

        def do_GET(self):
            if self.path.rstrip("/") == "/health":
                self._send_json(200, {"status": "ok", "model": served})
            elif self.path.rstrip("/") == "/v1/models":
                model = {"id": served, "object": "model", "created": created, "owned_by": "saro"}
                self._send_json(200, {"object": "list", "data": [model]})
            else:
                self._error(RequestError(404, f"no route GET {self.path}"))

        def do_POST(self):
            try:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    raise RequestError(404, f"no route POST {self.path}")
                length = self.headers.get("Content-Length")
                if length is None or not length.isdigit():
                    raise RequestError(411, "a Content-Length header is required")
                if int(length) > config.max_body_bytes:
                    self.close_connection = True  # the unread body must not be parsed as the next request
                    raise RequestError(413, f"request body over {config.max_body_bytes} bytes")
                try:
                    raw = self.rfile.read(int(length))
                except TimeoutError:
                    self.close_connection = True  # what arrives late must not be read as the next request
                    raise RequestError(408, "the request body stopped before its Content-Length") from None
                try:
                    body = json.loads(raw)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    raise RequestError(400, "the request body is not valid JSON") from None
                settings = parse_chat_request(body, config, names)
                stream = settings.pop("stream")
                try:
                    request = engine.submit(GenerationRequest(**settings))
                except ValueError as exc:
                    raise RequestError(400, str(exc), "messages") from None
            except RequestError as error:
                self._error(error)
                return
            completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
            if stream:
                self._stream(request, completion_id)
            else:
                self._complete(request, completion_id)

        def _complete(self, request: GenerationRequest, completion_id: str) -> None:
            pieces, info = [], {}
            for event in drain(request, engine):
                if isinstance(event, dict):
                    info = event
                else:
                    pieces.append(event)
            if "error" in info:
                self._error(RequestError(500, info["error"]))
                return
            completion = info.get("completion_tokens", 0)
            self._send_json(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": served,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(pieces)},
                            "finish_reason": info.get("finish_reason", "stop"),
                        }
                    ],
                    "usage": {
                        "prompt_tokens": request.prompt_tokens,
                        "completion_tokens": completion,
                        "total_tokens": request.prompt_tokens + completion,
                    },
                },
            )

        def _stream(self, request: GenerationRequest, completion_id: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def send(payload) -> None:
                data = f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def chunk(delta: dict, finish: str | None = None) -> dict:
                return {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": served,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                }

            try:
                send(chunk({"role": "assistant", "content": ""}))
                for event in drain(request, engine):
                    if isinstance(event, dict):
                        if "error" in event:
                            send({"error": {"message": event["error"], "type": "server_error"}})
                        else:
                            send(chunk({}, event["finish_reason"]))
                    else:
                        send(chunk({"content": event}))
                send("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):  # the client went away; the engine finishes the batch
                self.close_connection = True

    server = server or listen(config)
    server.RequestHandlerClass = Handler
    return server


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the listen backlog; the default of 5 refuses bursts of concurrent connections


def serve(config: ServeConfig, ready=None) -> None:
    """Load the model, start the engine and serve until interrupted; `ready(server)` runs once it listens."""
    from saro.models import load_model, load_tokenizer

    server = listen(config)
    try:
        engine = BatchingEngine(
            load_model(config.model), load_tokenizer(config.model), config.max_batch_size, config.batch_wait_ms
        )
    except BaseException:
        server.server_close()
        raise
    server = make_server(config, engine, server)
    if ready:
        ready(server)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        engine.close()
