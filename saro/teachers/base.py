"""The teacher interface: given prompt records and the messages to send, return n candidate responses each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from saro.config import RangeChecked
from saro.records import PromptRecord


@dataclass
class TeacherJob:
    record: PromptRecord
    messages: list[dict[str, str]]
    n: int = 1


class Teacher(Protocol):
    name: str

    def generate(self, jobs: list[TeacherJob]) -> list[list[str]]:
        """Return `job.n` responses per job, in job order. Raises TeacherError when the backend fails for good."""


@dataclass
class TeacherConfig(RangeChecked):
    """Which teacher writes the reasoning.

    `kind`: offline (composes policy reasoning from labels; benign answers from `answer_model`), http (any
    OpenAI-compatible endpoint: `base_url`, `model`, key from the variable named by `api_key_env`), or local (a
    Hugging Face model at `model`). HTTP robustness: `concurrency`, `timeout`, `max_retries`, `backoff`.
    """

    kind: Literal["offline", "http", "local"] = field(default="offline", metadata={"help": "Teacher backend."})
    model: str | None = field(default=None, metadata={"help": "Model name (http) or path / hub id (local)."})
    base_url: str = field(default="http://127.0.0.1:8000/v1", metadata={"help": "OpenAI-compatible base URL."})
    api_key_env: str | None = field(default=None, metadata={"help": "Environment variable holding the API key."})
    temperature: float = field(
        default=0.8, metadata={"help": "Sampling temperature (n samples per prompt).", "min": 0}
    )
    max_tokens: int = field(default=768, metadata={"help": "Max tokens per teacher response.", "min": 1})
    concurrency: int = field(default=8, metadata={"help": "Parallel HTTP requests.", "min": 1})
    timeout: float = field(default=120.0, metadata={"help": "Seconds per HTTP request.", "above": 0})
    max_retries: int = field(
        default=4, metadata={"help": "Retries on 429, 5xx, timeouts and network errors.", "min": 0}
    )
    backoff: float = field(
        default=1.0, metadata={"help": "First retry delay in seconds; doubles each retry.", "min": 0}
    )
    answer_model: str | None = field(
        default=None, metadata={"help": "offline: model answering benign prompts (default: the student model)."}
    )
    answer_max_tokens: int = field(default=96, metadata={"help": "offline: max tokens of a benign answer.", "min": 1})
    benign_cites_category: bool = field(
        default=True,
        metadata={"help": "offline: a look-alike's policy step names the category it resembles ('S1 ... allowed')."},
    )
    answer_opening: str = field(
        default="",
        metadata={
            "help": "offline: text put before every answer (not refusal) it writes, e.g. 'Sure.': one shared opening "
            "competes with the refusals' shared 'I can't' as a small model's first answer token under greedy decoding."
        },
    )
    uniform_reflection: bool = field(
        default=False,
        metadata={
            "help": "offline: every reflection asks 'a real risk?' and answers Yes / No first, copying the intent "
            "step's stance, instead of varied wordings per side (with answer_opening: answers follow the reasoning)."
        },
    )
    intent_label_last: bool = field(
        default=False,
        metadata={
            "help": "offline: the intent step never opens with its stance ('Intent: harmful: ...'); it describes the "
            "request first and labels it after, so the stance is not decided at the step's first token."
        },
    )
    intent_names_target: bool = field(
        default=False,
        metadata={
            "help": "offline: a seed action's intent step first quotes what the trigger word acts on (it is about "
            "'the competition at a pub quiz') and reads the trigger from it, so the stance rests on the target."
        },
    )
    corrections: float = field(
        default=0.0,
        metadata={
            "help": "offline: share of contrast seed prompts whose intent step takes the other side's reading first "
            "and whose reflection re-reads the request and corrects it; the misreading is context, never trained on.",
            "min": 0,
            "max": 1,
        },
    )
    batch_size: int = field(default=16, metadata={"help": "local / offline: generation batch size.", "min": 1})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kind in ("http", "local") and not self.model:
            raise ValueError(f"teacher.model is required for teacher.kind={self.kind}")
