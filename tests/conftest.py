"""Shared fixtures: a tiny Llama built once per run, slices of the team's real data, a local OpenAI-style server."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from saro.models import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.exists():
        pytest.skip("../shared/data is not beside the checkout")
    return SHARED


@pytest.fixture
def data_slice(shared_data, tmp_path):
    """Copy the first `lines` lines of a shared text file into tmp_path (tests never write to shared data)."""

    def make(relative: str, lines: int | None = None) -> Path:
        source = shared_data / relative
        target = tmp_path / source.name
        if lines is None:
            shutil.copy(source, target)
        else:
            with source.open(encoding="utf-8") as handle:
                target.write_text("".join(line for _, line in zip(range(lines), handle)), encoding="utf-8")
        return target

    return make


RW_REFUSAL = (
    "<think>\n1. Request: a harmful request.\n2. Intent: harm.\n3. Policy: S1 violence_weapons applies.\n"
    "4. Reflection: wait, no harmless reading.\n5. Decision: refuse.\n</think>\n\nI can't help with that."
)
RW_ANSWER = (
    "<think>\n1. Request: a question.\n2. Intent: harmless.\n3. Policy: no category applies.\n"
    "4. Reflection: wait, nothing risky.\n5. Decision: answer.\n</think>\n\nHere is how: use the kill command."
)


class ScriptedServer:
    """A real OpenAI-compatible HTTP server on 127.0.0.1 with scriptable faults.

    `fail_first` requests answer `fail_status` before it starts answering; `fail_after` makes every request after
    that many successes fail for good. Replies follow the RW format: refusal when the system turn says the
    prompt is labelled harmful or jailbreak, an answer otherwise.
    """

    def __init__(self):
        self.requests, self.fail_first, self.fail_after, self.fail_status = 0, 0, None, 500
        self.reply = None  # optional function: request body -> reply text (judges)
        self.auth_headers: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    server.requests += 1
                    n = server.requests
                    server.auth_headers.append(self.headers.get("Authorization"))
                    successes = n - server.fail_first
                failing = n <= server.fail_first or (server.fail_after is not None and successes > server.fail_after)
                if failing:
                    self.send_response(server.fail_status)
                    self.end_headers()
                    return
                system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
                harmful = "label for this message: harmful" in system or "label for this message: jailbreak" in system
                content = server.reply(body) if server.reply else RW_REFUSAL if harmful else RW_ANSWER
                # `reply` may return (text, finish_reason) to script outputs cut by max_tokens
                content, finish = content if isinstance(content, tuple) else (content, "stop")
                reply = {"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": finish}]}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def scripted_server():
    server = ScriptedServer()
    yield server
    server.httpd.shutdown()
