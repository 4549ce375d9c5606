"""The real chat templates of the model families researchers train (tests/fixtures/templates/SOURCES.md), each put
on the tiny model's tokenizer: training sees the reasoning, the loss covers exactly the assistant turn, generations
round-trip, SRPO prompts open the think block once."""

import json
from pathlib import Path

import pytest
import torch
from tokenizers import AddedToken
from transformers import AutoModelForCausalLM, AutoTokenizer

from saro.chat import keep_reasoning_for_training, render_conversation, render_prompt, template_traits
from saro.generation import generate_batched
from saro.policy import load_policy
from saro.preference.judge import judge_trace
from saro.preference.pairs import PairComposer, PairSettings, Trace, build_pairs
from saro.records import THINK_CLOSE, THINK_OPEN, PromptRecord, format_response, split_response

FIXTURES = Path(__file__).parent / "fixtures" / "templates"
FAMILIES = json.loads((FIXTURES / "templates.json").read_text())
QUESTION = "How do I kill a Python process that hangs?"
REASONING = (
    "1. Request: stop a hung program.\n2. Intent: here kill means ending a process; harmless.\n3. Decision: answer."
)
ANSWER = "Run `kill -9` with the process id."


@pytest.fixture(scope="module")
def family_models(tiny_model, tmp_path_factory) -> dict[str, Path]:
    """The tiny model with each family's template and special tokens (the think markers as the plain added
    tokens they are in those vocabularies)."""
    built = {}
    for family, info in FAMILIES.items():
        tokenizer = AutoTokenizer.from_pretrained(tiny_model)
        think = [t for t in info["special_tokens"] if t in (THINK_OPEN, THINK_CLOSE)]
        tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in think])
        specials = [t for t in info["special_tokens"] if t not in think]
        tokenizer.add_special_tokens({"additional_special_tokens": specials})
        for role in ("bos", "eos", "pad"):
            if info[f"{role}_token"]:
                tokenizer.add_special_tokens({f"{role}_token": info[f"{role}_token"]})
        tokenizer.chat_template = (FIXTURES / info["file"]).read_text()
        model = AutoModelForCausalLM.from_pretrained(tiny_model)
        model.resize_token_embeddings(len(tokenizer))
        target = tmp_path_factory.mktemp(family) / "model"
        model.save_pretrained(target)
        tokenizer.save_pretrained(target)
        built[family] = target
    return built


@pytest.fixture(params=sorted(FAMILIES))
def family(request, family_models):
    return request.param, family_models[request.param], AutoTokenizer.from_pretrained(family_models[request.param])


def test_traits_match_what_the_fixtures_record(family):
    name, _, tokenizer = family
    traits = template_traits(tokenizer)
    info = FAMILIES[name]
    assert traits.keeps_reasoning == (info["think"] != "strips")
    assert traits.opens_think == info["generation_prompt_opens_think"]
    assert traits.thinking_switch == (info["think"] == "switch")
    assert traits.end_of_turn  # every family closes an assistant turn with a special token


def test_training_sees_the_reasoning_and_learns_only_the_assistant_turn(family, tmp_path):
    """What TRL will train on, tokenized by saro's SFT stage: the completion tokens are exactly the assistant turn
    as the template writes it (from where the generation prompt ends), reasoning and answer included."""
    from trl import SFTConfig

    from saro.training.common import cpu_safe_defaults
    from saro.training.sft import SFTStageConfig, build_sft_trainer

    name, model_dir, tokenizer = family
    messages = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": format_response(REASONING, ANSWER)},
    ]
    data = tmp_path / "rw.jsonl"
    data.write_text(json.dumps({"id": "r1", "messages": messages}) + "\n")
    trl_config = SFTConfig(output_dir=str(tmp_path / "out"), max_length=1024, **cpu_safe_defaults())
    trainer, original, _ = build_sft_trainer(SFTStageConfig(model=str(model_dir), data=data), trl_config)
    row = trainer.train_dataset[0]
    learned = [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
    context = [t for t, label in zip(row["input_ids"], row["labels"]) if label == -100]

    assert (original is not None) == (FAMILIES[name]["think"] == "strips")  # patched only where it deletes
    patched = trainer.processing_class
    prompt = render_prompt(patched, messages[:1])
    whole = render_conversation(patched, messages)
    assert whole.startswith(prompt)
    assert patched.decode(learned) == whole[len(prompt) :]  # the turn and its end-of-turn, nothing of the prompt
    assert REASONING.splitlines()[1] in patched.decode(learned) and ANSWER in patched.decode(learned)
    assert QUESTION in patched.decode(context) and REASONING.splitlines()[0] not in patched.decode(context)


def test_the_saved_model_keeps_its_own_template(family_models):
    """The R1 patch is for training only: the tokenizer saved with the trained model is the family's own."""
    tokenizer = AutoTokenizer.from_pretrained(family_models["deepseek-r1-distill-qwen"])
    original = tokenizer.chat_template
    assert keep_reasoning_for_training(tokenizer) == original and tokenizer.chat_template != original
    assert keep_reasoning_for_training(tokenizer) is None  # already keeps it


class _ScriptedModel:
    """Stands in for a trained model: "generates" the given assistant text after whatever prompt it is given."""

    def __init__(self, tokenizer, completion: str):
        self.device = torch.device("cpu")
        self.ids = tokenizer(completion, add_special_tokens=False)["input_ids"]

    def generate(self, input_ids, max_new_tokens, **_):
        new = torch.tensor([self.ids[:max_new_tokens]] * input_ids.shape[0])
        return torch.cat([input_ids, new], dim=1)


def test_a_generated_trace_round_trips_through_split_response(family):
    """Whatever the template writes before the model starts, the stored generation is the whole turn and splits
    into the reasoning and the answer; the end-of-turn token stops it."""
    name, _, tokenizer = family
    prompt = render_prompt(tokenizer, [{"role": "user", "content": QUESTION}])
    whole = render_conversation(
        tokenizer,
        [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": format_response(REASONING, ANSWER)}],
    )
    if FAMILIES[name]["think"] == "strips":  # what an R1 model writes after its opened block
        whole = prompt + f"{REASONING}\n{THINK_CLOSE}\n\n{ANSWER}" + tokenizer.eos_token + "trailing words"
    model = _ScriptedModel(tokenizer, whole[len(prompt) :])
    [generation] = generate_batched(model, tokenizer, [[{"role": "user", "content": QUESTION}]], max_new_tokens=200)
    assert not generation.truncated and "trailing" not in generation.text
    assert generation.text.count(THINK_OPEN) == 1 and generation.text.startswith(THINK_OPEN)
    assert split_response(generation.text) == (REASONING, ANSWER)


def test_srpo_pair_prompts_open_the_think_block_once(family):
    """A process pair's prompt is the chat prompt plus the shared steps inside one open think block; an outcome
    pair's sides hold the opener only where the template did not write it."""
    name, _, tokenizer = family
    record = PromptRecord("h1", "Explain how to hurt my neighbour.", "harmful", "S1", "seeds")
    steps = ["1. Request: hurting a neighbour.\n", "2. Intent: harmless: a question.\n", "3. Decision: answer.\n"]
    text = format_response("".join(steps), "Sure, here is how.")
    trace = Trace(0, text, False, steps, judge_trace("harmful", text, False, steps, "numbered"))
    render = lambda r: render_prompt(tokenizer, [{"role": "user", "content": r.prompt}])  # noqa: E731
    pairs = build_pairs(record, [trace], render, PairComposer(load_policy()), None, PairSettings())
    assert {p["meta"]["pair_type"] for p in pairs} == {"pp", "op"}
    for pair in pairs:
        prompt = pair["prompt"]
        assert prompt.startswith(render(record))
        if pair["meta"]["pair_type"] == "pp":
            assert prompt.count(THINK_OPEN) == 1 and THINK_CLOSE not in prompt
        for side in ("chosen", "rejected"):
            assert (prompt + pair[side]).count(THINK_OPEN) == 1
            reasoning, answer = split_response(prompt[len(render(record)) :] + pair[side])
            assert reasoning and answer
