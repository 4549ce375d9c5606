"""A local Hugging Face model as teacher (or as the answer writer of the offline composer)."""

from __future__ import annotations

from saro.generation import generate_batched
from saro.models import load_model, load_tokenizer
from saro.teachers.base import TeacherJob


class LocalTeacher:
    """Batched generation; sample s of every job uses seed s, so results do not depend on batch neighbours' n."""

    def __init__(self, model: str, temperature: float = 0.8, max_tokens: int = 768, batch_size: int = 16):
        self.name = f"local:{model}"
        self.model, self.tokenizer = load_model(model), load_tokenizer(model)
        self.temperature, self.max_tokens, self.batch_size = temperature, max_tokens, batch_size

    def generate(self, jobs: list[TeacherJob]) -> list[list[str]]:
        results: list[list[str]] = [[] for _ in jobs]
        for sample in range(max((job.n for job in jobs), default=0)):
            active = [j for j, job in enumerate(jobs) if job.n > sample]
            outputs = generate_batched(
                self.model,
                self.tokenizer,
                [jobs[j].messages for j in active],
                self.max_tokens,
                self.batch_size,
                temperature=self.temperature if sample else 0.0,
                seed=sample,
                desc="",
            )
            for j, out in zip(active, outputs):
                results[j].append(_whole_sentences(out.text) if out.truncated else out.text)
        return results


def _whole_sentences(text: str) -> str:
    """Cut a truncated answer after its last full sentence, so training never teaches stopping mid-sentence."""
    cut = max(text.rfind(". "), text.rfind(".\n"), text.rfind("!"), text.rfind("?"), text.rfind("\n\n"))
    return text[: cut + 1].strip() if cut > len(text) // 3 else text
