"""OpenAI-compatible chat-completions client (vLLM, OpenAI, llama.cpp server, `saro serve`, ...)."""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from saro.errors import SaroError, TeacherError
from saro.teachers.base import TeacherConfig, TeacherJob

log = logging.getLogger(__name__)
_TRANSIENT = {408, 409, 425, 429, 500, 502, 503, 504}


class HttpTeacher:
    """Sends one request per sample, `concurrency` at a time, retrying transient failures with backoff."""

    def __init__(self, config: TeacherConfig):
        self.config = config
        self.name = f"http:{config.model}"
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        headers = {}
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise SaroError(f"teacher.api_key_env: environment variable {config.api_key_env} is not set")
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(headers=headers, timeout=config.timeout)

    def complete(self, messages: list[dict[str, str]], seed: int = 0) -> str:
        """One chat completion's text; raises TeacherError naming the endpoint and status (never the key)."""
        return self.chat(messages, seed)["text"]

    def chat(self, messages: list[dict[str, str]], seed: int = 0) -> dict:
        """One chat completion: `text`, `finish_reason` ("length" when cut by max_tokens) and `completion_tokens`
        (None when the server reports no usage). Transient failures are retried with backoff."""
        body = {
            "model": self.config.model,
            "messages": messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
            "seed": seed,
        }
        delay, last = self.config.backoff, ""
        for attempt in range(self.config.max_retries + 1):
            try:
                response = self._client.post(self.url, json=body)
            except httpx.TransportError as exc:  # timeouts, refused or dropped connections
                last = type(exc).__name__
            else:
                if response.status_code == 200:
                    try:
                        data = response.json()
                        choice = data["choices"][0]
                        text = choice["message"]["content"] or ""
                    except (ValueError, KeyError, IndexError, TypeError):
                        raise TeacherError(f"teacher {self.url}: malformed response (no choices[0].message)") from None
                    usage = data.get("usage") or {}
                    return {
                        "text": text,
                        "finish_reason": choice.get("finish_reason"),
                        "completion_tokens": usage.get("completion_tokens"),
                    }
                last = f"HTTP {response.status_code}"
                if response.status_code not in _TRANSIENT:
                    raise TeacherError(f"teacher {self.url}: {last} (not retried)")
            if attempt < self.config.max_retries:
                log.warning("teacher %s: %s; retrying in %.1fs", self.url, last, delay)
                time.sleep(delay)
                delay *= 2
        raise TeacherError(f"teacher {self.url}: {last} after {self.config.max_retries + 1} attempts")

    def generate(self, jobs: list[TeacherJob]) -> list[list[str]]:
        calls = [(j, s) for j, job in enumerate(jobs) for s in range(job.n)]
        with ThreadPoolExecutor(self.config.concurrency) as pool:
            texts = list(pool.map(lambda c: self.complete(jobs[c[0]].messages, seed=c[1]), calls))
        results: list[list[str]] = [[] for _ in jobs]
        for (j, _), text in zip(calls, texts):
            results[j].append(text)
        return results
