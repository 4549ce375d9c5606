"""One way to sample assistant turns, locally or from a server: SRPO synthesis and evaluation both use it.

Local: batched `transformers` generation with left padding. Endpoint: any OpenAI-compatible server (a `vllm serve`
of the model is the scale path, `saro serve` the small one), `concurrency` requests at a time, with retries. Both
return the same `Generation` (text, generated tokens, cut by the token limit or not).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from saro.config import RangeChecked
from saro.generation import Generation, generate_batched


@dataclass
class EndpointConfig(RangeChecked):
    """An OpenAI-compatible server to sample from instead of loading the model (vLLM, an API, `saro serve`)."""

    base_url: str = field(default="http://127.0.0.1:8000/v1", metadata={"help": "OpenAI-compatible base URL."})
    model: str | None = field(default=None, metadata={"help": "Served model name (default: the model setting)."})
    api_key_env: str | None = field(default=None, metadata={"help": "Environment variable holding the API key."})
    tokenizer: str | None = field(default=None, metadata={"help": "Tokenizer for token counts (path / hub id)."})
    concurrency: int = field(default=8, metadata={"help": "Parallel requests.", "min": 1})
    timeout: float = field(default=300.0, metadata={"help": "Seconds per request.", "above": 0})
    max_retries: int = field(default=4, metadata={"help": "Retries on 429, 5xx and network errors.", "min": 0})
    backoff: float = field(default=1.0, metadata={"help": "First retry delay; doubles each retry.", "min": 0})


class Sampler:
    """`generate(conversations, max_new_tokens, temperature, seed)` from a local model or an endpoint."""

    def __init__(self, model: str, endpoint: EndpointConfig | None = None, batch_size: int = 16):
        from saro.models import load_model, load_tokenizer

        self.endpoint, self.batch_size = endpoint, batch_size
        if endpoint is None:
            self.model, self.tokenizer = load_model(model), load_tokenizer(model)
            self.name = f"local:{model}"
            return
        from saro.teachers.base import TeacherConfig
        from saro.teachers.http import HttpTeacher

        self.client = HttpTeacher(
            TeacherConfig(
                kind="http",
                model=endpoint.model or model,
                base_url=endpoint.base_url,
                api_key_env=endpoint.api_key_env,
                concurrency=endpoint.concurrency,
                timeout=endpoint.timeout,
                max_retries=endpoint.max_retries,
                backoff=endpoint.backoff,
            )
        )
        self.tokenizer = load_tokenizer(endpoint.tokenizer) if endpoint.tokenizer else None
        self.name = f"http:{endpoint.model or model}"

    def count(self, text: str) -> int:
        """Tokens in `text` (about 4 characters a token when an endpoint has no tokenizer configured)."""
        if not text:
            return 0
        if self.tokenizer is None:
            return max(1, round(len(text) / 4))
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate(
        self, conversations: list[list[dict]], max_new_tokens: int, temperature: float = 0.0, seed: int = 0
    ) -> list[Generation]:
        """One assistant turn per conversation, in order. Locally, consecutive conversations form the batches."""
        if self.endpoint is None:
            return generate_batched(
                self.model, self.tokenizer, conversations, max_new_tokens, self.batch_size, temperature, seed, desc=""
            )
        settings = self.client.config
        settings.max_tokens, settings.temperature = max_new_tokens, temperature
        with ThreadPoolExecutor(settings.concurrency) as pool:
            replies = list(pool.map(lambda c: self.client.chat(c, seed=seed), conversations))
        return [
            Generation(
                r["text"].strip(),
                r["completion_tokens"] if r["completion_tokens"] is not None else self.count(r["text"]),
                truncated=r["finish_reason"] == "length",
            )
            for r in replies
        ]
