"""Batched Hugging Face generation with left padding: ~6x faster than one by one for SmolLM2 on CPU."""

from __future__ import annotations

from dataclasses import dataclass

from tqdm.auto import tqdm


@dataclass
class Generation:
    text: str
    tokens: int
    truncated: bool  # stopped by max_new_tokens, not by the end-of-turn token


def generate_batched(
    model,
    tokenizer,
    conversations: list[list[dict]],
    max_new_tokens: int = 256,
    batch_size: int = 16,
    temperature: float = 0.0,
    seed: int = 0,
    desc: str | None = None,
    prefixes: list[str] | None = None,
) -> list[Generation]:
    """Generate one assistant turn per conversation, in the given order.

    `prefixes` (one per conversation) start the assistant turns, teacher-forced: the model writes what follows
    (trailing whitespace included), and the result holds the continuation alone.

    Batches are formed from consecutive conversations (callers that resume rely on a fixed batch composition to
    reproduce greedy outputs exactly), and padded on the left so every sequence ends where generation starts.
    """
    import torch

    from saro.chat import continue_turn, render_prompt, stop_token_ids, token_decoder, whole_turn

    tokenizer.padding_side = "left"
    eos = stop_token_ids(tokenizer)
    decode = token_decoder(tokenizer)
    results: list[Generation] = []
    batches = range(0, len(conversations), batch_size)
    for start in tqdm(batches, desc=desc or "generating", unit="batch", disable=desc == ""):
        batch = conversations[start : start + batch_size]
        texts = [render_prompt(tokenizer, c) for c in batch]
        if prefixes is not None:
            # The prefix ends on a token boundary: a trailing "\n\n" is one token at the end of a prompt but two
            # inside a trained turn, and after it SmolLM2 restarts its reasoning instead of answering.
            texts = [continue_turn(t, p.rstrip())[0] for t, p in zip(texts, prefixes[start : start + batch_size])]
        inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        torch.manual_seed(seed + start)
        sampling = (
            {"do_sample": True, "temperature": temperature, "top_p": 0.95} if temperature > 0 else {"do_sample": False}
        )
        with torch.inference_mode():
            output = model.generate(
                **inputs,
                max_new_tokens=max_new_tokens,
                eos_token_id=eos,
                pad_token_id=tokenizer.pad_token_id,
                **sampling,
            )
        new = output[:, inputs["input_ids"].shape[1] :]
        for prompt, row in zip(texts, new):
            ids = row.tolist()
            ended = [i for i, t in enumerate(ids) if t in eos]
            length = ended[0] if ended else len([t for t in ids if t != tokenizer.pad_token_id])
            text = decode(ids[:length]).strip()
            text = text if prefixes is not None else whole_turn(prompt, text)
            results.append(Generation(text, length, truncated=not ended))
    return results
