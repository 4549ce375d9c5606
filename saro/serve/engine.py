"""A batching generation engine: requests from many threads are grouped into one `generate` call.

One worker thread owns the model. It takes the first waiting request, waits up to `batch_wait_ms` for more with the
same sampling settings (up to `max_batch_size`), and generates for all of them at once with left padding. Tokens
reach each request as they are produced (a streamer that splits the batch by row), so streaming and batching work
together. A request that asks for fewer tokens than its batch-mates stops receiving tokens at its own limit.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

from saro.chat import opens_think, render_prompt, stop_token_ids, token_decoder
from saro.records import THINK_OPEN

log = logging.getLogger(__name__)

_DONE = object()


@dataclass
class GenerationRequest:
    messages: list[dict]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    events: queue.Queue = field(default_factory=queue.Queue)  # token-id lists, then a final dict, then _DONE
    prompt: str = ""  # the chat-formatted prompt, rendered once at submission
    prompt_tokens: int = 0  # set when its batch is tokenized

    @property
    def sampling(self) -> tuple:
        return (self.temperature > 0, round(self.temperature, 4), round(self.top_p, 4), self.seed)


class _RowStreamer:
    """A transformers streamer for a batch: hands each row's new token to its request until the row ends."""

    def __init__(self, requests: list[GenerationRequest], eos: set[int]):
        self.requests, self.eos = requests, eos
        self.counts = [0] * len(requests)
        self.finished = [False] * len(requests)
        self.reasons = ["length"] * len(requests)
        self._prompt_seen = False

    def put(self, value) -> None:
        if not self._prompt_seen:  # the first call carries the prompt ids
            self._prompt_seen = True
            return
        for row, token in enumerate(value.view(-1).tolist()):
            if self.finished[row]:
                continue
            if token in self.eos:
                self.finished[row], self.reasons[row] = True, "stop"
                continue
            self.requests[row].events.put([token])
            self.counts[row] += 1
            if self.counts[row] >= self.requests[row].max_tokens:
                self.finished[row], self.reasons[row] = True, "length"

    def end(self) -> None:
        pass


class BatchingEngine:
    def __init__(self, model, tokenizer, max_batch_size: int = 16, batch_wait_ms: float = 10.0):
        self.model, self.tokenizer = model, tokenizer
        self.tokenizer.padding_side = "left"
        self.max_batch_size, self.batch_wait = max_batch_size, batch_wait_ms / 1000
        self.eos = set(stop_token_ids(tokenizer))
        self._decode = token_decoder(tokenizer)
        # Longer sequences than the model was built for fail or degrade after blocking the worker: refused up front.
        self.context = getattr(model.config, "max_position_embeddings", None)
        # Fast tokenizers keep padding settings as shared state: a request thread encoding without padding while
        # the worker encodes a padded batch would leave the batch ragged. Every tokenizer call holds this lock.
        self.tokenizer_lock = threading.Lock()
        self.waiting: queue.Queue[GenerationRequest] = queue.Queue()
        self.batches = 0  # generate calls made (tests and logs read it)
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._run, name="saro-engine", daemon=True)
        self._worker.start()

    def render(self, messages: list[dict]) -> str:
        """The chat prompt; raises ValueError when the template rejects the messages."""
        with self.tokenizer_lock:
            try:
                return render_prompt(self.tokenizer, messages)
            except Exception as exc:  # jinja raises TemplateError for roles a template does not allow
                raise ValueError(f"the chat template rejects these messages: {exc}") from None

    def decode(self, ids: list[int]) -> str:
        with self.tokenizer_lock:
            return self._decode(ids)

    def submit(self, request: GenerationRequest) -> GenerationRequest:
        """Queue a request; raises ValueError (the client's 400, not a failed batch) when the template rejects its
        messages or the prompt and `max_tokens` together exceed the model's context length."""
        request.prompt = self.render(request.messages)
        if self.context:
            with self.tokenizer_lock:
                prompt_tokens = len(self.tokenizer(request.prompt, add_special_tokens=False)["input_ids"])
            if prompt_tokens + request.max_tokens > self.context:
                raise ValueError(
                    f"this model's context length is {self.context} tokens, but {prompt_tokens + request.max_tokens}"
                    f" were requested ({prompt_tokens} in the messages, {request.max_tokens} in the completion); "
                    "shorten the messages or lower max_tokens"
                )
        self.waiting.put(request)
        return request

    def close(self) -> None:
        self._stop.set()
        self._worker.join(timeout=5)

    def _collect(self) -> list[GenerationRequest]:
        try:
            first = self.waiting.get(timeout=0.1)
        except queue.Empty:
            return []
        batch, later = [first], []
        deadline = time.monotonic() + self.batch_wait
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                request = self.waiting.get(timeout=remaining)
            except queue.Empty:
                break
            (batch if request.sampling == first.sampling else later).append(request)
        for request in later:  # other sampling settings: the next batch
            self.waiting.put(request)
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._collect()
            if not batch:
                continue
            try:
                self._generate(batch)
            except Exception as exc:  # one failed batch must not kill the server
                log.exception("generation failed")
                for request in batch:
                    request.events.put({"error": f"generation failed: {type(exc).__name__}"})
                    request.events.put(_DONE)

    def _generate(self, batch: list[GenerationRequest]) -> None:
        import torch

        self.batches += 1
        with self.tokenizer_lock:
            inputs = self.tokenizer(
                [r.prompt for r in batch], return_tensors="pt", padding=True, add_special_tokens=False
            )
        for request, length in zip(batch, inputs["attention_mask"].sum(-1).tolist()):
            request.prompt_tokens = length
        inputs = inputs.to(self.model.device)
        first = batch[0]
        sampling = {"do_sample": False}
        if first.temperature > 0:
            sampling = {"do_sample": True, "temperature": first.temperature, "top_p": first.top_p}
            if first.seed is not None:
                torch.manual_seed(first.seed)
        streamer = _RowStreamer(batch, self.eos)
        with torch.inference_mode():
            self.model.generate(
                **inputs,
                max_new_tokens=max(r.max_tokens for r in batch),
                eos_token_id=sorted(self.eos),
                pad_token_id=self.tokenizer.pad_token_id,
                streamer=streamer,
                **sampling,
            )
        for row, request in enumerate(batch):
            request.events.put({"finish_reason": streamer.reasons[row], "completion_tokens": streamer.counts[row]})
            request.events.put(_DONE)


def drain(request: GenerationRequest, engine: BatchingEngine):
    """Yield text pieces as tokens arrive, then the final info dict. Pieces are whole characters: a token that ends
    inside a multi-byte character waits for the next one."""
    ids: list[int] = []
    sent = ""
    if opens_think(request.prompt):  # the template opened the think block: the client gets the whole turn
        yield f"{THINK_OPEN}\n"
    while True:
        event = request.events.get()
        if event is _DONE:
            return
        if isinstance(event, dict):
            text = engine.decode(ids)
            if text != sent and text.startswith(sent):
                yield text[len(sent) :]
            yield event
            continue
        ids += event
        text = engine.decode(ids)
        if text.endswith("\ufffd") or not text.startswith(sent):
            continue
        if len(text) > len(sent):
            yield text[len(sent) :]
            sent = text
