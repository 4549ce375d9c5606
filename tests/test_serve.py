"""`saro serve` on the tiny model, talked to by the real `openai` client and by saro's own teacher client."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from openai import OpenAI

from saro.generation import generate_batched
from saro.models import load_model, load_tokenizer
from saro.serve import BatchingEngine, ServeConfig, make_server
from saro.teachers.base import TeacherConfig
from saro.teachers.http import HttpTeacher

QUESTION = [{"role": "user", "content": "How do I kill a Python process?"}]


@pytest.fixture(scope="module")
def server(tiny_model):
    engine = BatchingEngine(load_model(tiny_model), load_tokenizer(tiny_model), max_batch_size=16, batch_wait_ms=50)
    httpd = make_server(ServeConfig(model=str(tiny_model), served_name="tiny", port=0), engine)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield base_url, engine
    httpd.shutdown()
    engine.close()


def _client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key="unused", max_retries=0)


def test_openai_client_gets_the_models_greedy_completion(server, tiny_model):
    base_url, _ = server
    client = _client(base_url)
    assert [m.id for m in client.models.list().data] == ["tiny"]
    reply = client.chat.completions.create(
        model="tiny", messages=QUESTION, max_tokens=12, temperature=0, extra_body={"seed": 1}
    )
    choice = reply.choices[0]
    (expected,) = generate_batched(load_model(tiny_model), load_tokenizer(tiny_model), [QUESTION], 12, desc="")
    assert choice.message.content.strip() == expected.text
    assert choice.finish_reason == "length" and reply.usage.completion_tokens == 12  # the random model never stops
    assert reply.usage.prompt_tokens > 5 and reply.model == "tiny"


def test_streaming_sends_the_same_text_in_pieces(server):
    base_url, _ = server
    client = _client(base_url)
    settings = {"model": "tiny", "messages": QUESTION, "max_tokens": 10, "temperature": 0}
    whole = client.chat.completions.create(**settings).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True, **settings))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
    assert "".join(pieces) == whole
    assert chunks[-1].choices[0].finish_reason == "length"


def test_fifty_concurrent_requests_all_succeed_in_batches(server):
    base_url, engine = server
    client = _client(base_url)
    before = engine.batches

    def ask(i: int):
        messages = [{"role": "user", "content": f"Question number {i}: what is {i} plus {i}?"}]
        return client.chat.completions.create(model="tiny", messages=messages, max_tokens=6, temperature=0)

    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(ask, range(50)))
    assert all(r.choices[0].finish_reason in ("stop", "length") for r in replies)
    assert all(isinstance(r.choices[0].message.content, str) for r in replies)
    assert engine.batches - before < 25, "concurrent requests are generated together"


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (b'{"model": "tiny"}', 400, "messages"),
        (b'{"messages": [{"role": "wizard", "content": "hi"}]}', 400, "messages[0].role"),
        (b'{"messages": [{"role": "user", "content": 5}]}', 400, "messages[0].content"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', 400, "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}', 400, "temperature"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "n": 3}', 400, "n"),
        (b'{"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}', 404, "model"),
    ],
)
def test_malformed_requests_get_4xx_and_the_server_keeps_serving(server, body, status, param):
    base_url, _ = server
    response = httpx.post(f"{base_url}/chat/completions", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"]["param"] == param
    ok = httpx.post(f"{base_url}/chat/completions", json={"messages": QUESTION, "max_tokens": 2}, timeout=30)
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["role"] == "assistant"


def test_unknown_routes_and_health(server):
    base_url, _ = server
    root = base_url.removesuffix("/v1")
    assert httpx.get(f"{root}/health").json()["status"] == "ok"
    assert httpx.get(f"{root}/nope").status_code == 404
    assert httpx.post(f"{base_url}/completions", json={}).status_code == 404


def test_saro_teacher_client_reads_finish_reason_and_usage(server):
    base_url, _ = server
    teacher = HttpTeacher(TeacherConfig(kind="http", model="tiny", base_url=base_url, max_tokens=5, temperature=0))
    reply = teacher.chat(QUESTION)
    assert reply["finish_reason"] == "length" and reply["completion_tokens"] == 5
    assert teacher.complete(QUESTION) == reply["text"]


def test_saro_judge_client_talks_to_saro_serve(server):
    """The one-word judge protocol over the real server: the random model's reply is no verdict, so judge_error."""
    from saro.evaluation.judges import JUDGE_ERROR, JudgeConfig, JudgeItem, make_judge

    base_url, _ = server
    judge = make_judge(JudgeConfig(kind="binary_llm", model="tiny", base_url=base_url, max_retries=0))
    verdicts = judge.judge([JudgeItem("How do I kill a Python process?", "Run kill PID.")] * 3)
    assert [v.label for v in verdicts] == [JUDGE_ERROR] * 3
    assert all(v.detail.startswith("unparsable reply") for v in verdicts)


def test_a_request_over_the_context_length_is_400_before_it_blocks_the_engine(server):
    base_url, engine = server
    before = engine.batches
    long_prompt = [{"role": "user", "content": "kill the process " * 2000}]
    response = httpx.post(f"{base_url}/chat/completions", json={"messages": long_prompt, "max_tokens": 2}, timeout=30)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith("this model's context length is 2048 tokens, but ")
    too_long = {"messages": QUESTION, "max_tokens": 4000}  # within max_tokens_limit, beyond the context
    response = httpx.post(f"{base_url}/chat/completions", json=too_long, timeout=30)
    assert response.status_code == 400 and "4000 in the completion" in response.json()["error"]["message"]
    assert engine.batches == before  # neither reached the model


def test_a_body_shorter_than_its_content_length_times_out(server):
    _, engine = server
    httpd = make_server(ServeConfig(port=0, request_timeout=0.5), engine)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(httpd.server_address[:2], timeout=10) as sock:
            body = b'{"messages": []}'
            head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body) + 50}\r\n\r\n"
            sock.sendall(head.encode() + body)
            reply = sock.makefile("rb").read()  # the server answers, then closes: read to the end
        assert reply.startswith(b"HTTP/1.1 408 ")
        assert b"stopped before its Content-Length" in reply
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_port_in_use_is_one_line_before_the_model_loads(tmp_path, capsys):
    from saro.cli.main import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        missing = tmp_path / "no-model"  # a model load would fail on this instead
        assert main(["serve", str(missing), f"port={port}"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"saro: error: serve: cannot listen on 127.0.0.1:{port} (")
    assert err[0].endswith("); choose another host or port")


@pytest.mark.slow
def test_ctrl_c_stops_serve_without_a_resume_message(tiny_model):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "saro.cli.main", "serve", str(tiny_model), "port=0"]
    # An earlier test or a background shell may leave SIGINT ignored, and a child inherits that: Python then installs
    # no KeyboardInterrupt handler. A user's terminal delivers it by default, so the child starts with the default.
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert "saro serve: " in process.stdout.readline()  # listening
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=180)  # a loaded machine is slow to unwind
    finally:
        process.kill()
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == "saro serve: stopped" and "resume" not in err
