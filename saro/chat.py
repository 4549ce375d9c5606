"""How a model's chat template treats the think block, and rendering and decoding that are right for each family.

saro's assistant turns are `<think>\\n{reasoning}\\n</think>\\n\\n{answer}`. Templates differ in what they do with it:
- ChatML (SmolLM2, Qwen2.5), Llama-3.1, Gemma-3 keep it as plain text in the assistant turn;
- Qwen3 keeps it in the last assistant turn (and reads `enable_thinking`: saro always thinks);
- DeepSeek-R1-Distill *deletes* it from every assistant turn (`content.split('</think>')[-1]`) and its generation
  prompt *opens* the block, so the model writes only `{reasoning}\\n</think>\\n\\n{answer}`.
Training patches a deleting template (and restores it before saving); prompts that open the block get saro's own
opener dropped once, so the block is never opened twice; generations get the opener back, so every stored trace
is a whole assistant turn whatever the template.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from saro.errors import SaroError
from saro.records import THINK_CLOSE, THINK_OPEN, format_response

log = logging.getLogger(__name__)

_REASONING, _ANSWER, _QUESTION = "saro-reasoning-probe", "saro-answer-probe", "saro-question-probe"
# The R1-distill fragment that deletes reasoning from assistant turns (with or without its `if` around it).
_STRIP_REASONING = re.compile(
    r"\{%-?\s*set\s+content\s*=\s*content\.split\(\s*['\"]</think>['\"]\s*\)\s*\[\s*-1\s*\]\s*-?%\}"
)


@dataclass(frozen=True)
class TemplateTraits:
    keeps_reasoning: bool  # a rendered assistant turn still holds its think block
    opens_think: bool  # the generation prompt ends inside an opened think block
    thinking_switch: bool  # the template reads `enable_thinking`
    end_of_turn: tuple[str, ...]  # special tokens that close an assistant turn


def _template_kwargs(tokenizer) -> dict:
    return {"enable_thinking": True} if "enable_thinking" in (tokenizer.chat_template or "") else {}


def render_prompt(tokenizer, messages: list[dict]) -> str:
    """The chat prompt text up to where the assistant writes, with thinking on where the template has a switch."""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, **_template_kwargs(tokenizer)
    )


def render_conversation(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, **_template_kwargs(tokenizer))


def template_traits(tokenizer) -> TemplateTraits:
    """Probe the template by rendering: what it does is what counts, whatever its text looks like."""
    question = [{"role": "user", "content": _QUESTION}]
    turn = render_conversation(
        tokenizer, [*question, {"role": "assistant", "content": format_response(_REASONING, _ANSWER)}]
    )
    plain = render_conversation(tokenizer, [*question, {"role": "assistant", "content": _ANSWER}])
    after_answer = plain[plain.rindex(_ANSWER) + len(_ANSWER) :]
    special = set(tokenizer.all_special_tokens) | {
        t.content for t in tokenizer.added_tokens_decoder.values() if t.special
    }
    end_of_turn = tuple(t for t in special if after_answer.lstrip().startswith(t))
    return TemplateTraits(
        keeps_reasoning=_REASONING in turn,
        opens_think=opens_think(render_prompt(tokenizer, question)),
        thinking_switch=bool(_template_kwargs(tokenizer)),
        end_of_turn=end_of_turn,
    )


def opens_think(prompt: str) -> bool:
    """Whether a rendered prompt ends inside an opened think block."""
    tail = prompt.rstrip()
    return tail.endswith(THINK_OPEN)


def _drop_opener(text: str) -> str:
    stripped = text.lstrip()
    return stripped[len(THINK_OPEN) :].lstrip("\n") if stripped.startswith(THINK_OPEN) else text


def continue_turn(prompt: str, prefix: str, *completions: str) -> tuple[str, ...]:
    """`prompt + prefix` and the completions that follow it, with the think block opened exactly once: where the
    template's generation prompt opened it, saro's own opener (at the start of the prefix, or of each completion
    when there is no prefix) is dropped."""
    if not opens_think(prompt):
        return (prompt + prefix, *completions)
    if prefix:
        return (prompt + _drop_opener(prefix), *completions)
    return (prompt, *(_drop_opener(c) for c in completions))


def whole_turn(prompt: str, generated: str) -> str:
    """The assistant turn a generation belongs to: the opener the prompt already wrote is put back in front."""
    if opens_think(prompt) and THINK_OPEN not in generated.split(THINK_CLOSE)[0]:
        return f"{THINK_OPEN}\n{generated.lstrip()}"
    return generated


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end generation: the tokens the template closes an assistant turn with, and the EOS."""
    ids = [tokenizer.convert_tokens_to_ids(t) for t in template_traits(tokenizer).end_of_turn]
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return list(dict.fromkeys(i for i in ids if i is not None))


def token_decoder(tokenizer) -> Callable[[list[int]], str]:
    """Generated ids -> text without special tokens, except the think markers (special tokens in some
    vocabularies). The set to drop is built once: a stream decodes after every token."""
    keep = {THINK_OPEN, THINK_CLOSE}
    drop = {tokenizer.convert_tokens_to_ids(t) for t in tokenizer.all_special_tokens if t not in keep}
    drop |= {i for i, t in tokenizer.added_tokens_decoder.items() if t.special and t.content not in keep}
    return lambda ids: tokenizer.decode([i for i in ids if i not in drop], skip_special_tokens=False)


def keep_reasoning_for_training(tokenizer, name: str = "model") -> str | None:
    """Make the tokenizer's template keep the think block in assistant turns, so training sees the reasoning.
    Returns the original template when it had to be patched (restore it before saving), None when it kept it."""
    if template_traits(tokenizer).keeps_reasoning:
        return None
    original = tokenizer.chat_template
    tokenizer.chat_template = _STRIP_REASONING.sub("", original)
    if not template_traits(tokenizer).keeps_reasoning:
        tokenizer.chat_template = original
        raise SaroError(
            f"{name}: the chat template deletes the reasoning from assistant turns and saro cannot patch it; "
            "give the tokenizer a template that keeps `<think>...</think>` in the assistant turn"
        )
    log.info("%s: the chat template deletes reasoning from assistant turns; patched for training", name)
    return original
