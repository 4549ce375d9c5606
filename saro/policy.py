"""The explicit, versioned safety policy that reasoning cites by category id (e.g. "S3 cybercrime")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path

import yaml

from saro.errors import DataError

DEFAULT_POLICY = "policy-v1.yaml"


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    definition: str
    disallowed: tuple[str, ...]
    allowed: tuple[str, ...]
    refusal: str
    alternative: str
    keywords: tuple[str, ...]

    @property
    def label(self) -> str:
        """How reasoning cites the category: `S3 cybercrime`."""
        return f"{self.id} {self.name}"


@dataclass(frozen=True)
class Policy:
    name: str
    version: int
    categories: tuple[Category, ...]

    def __getitem__(self, key: str) -> Category:
        for category in self.categories:
            if key in (category.id, category.name, category.label):
                return category
        raise KeyError(f"unknown policy category {key!r}; known: {', '.join(c.label for c in self.categories)}")

    def __contains__(self, key: str) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    @cached_property
    def _keyword_patterns(self) -> list[tuple[Category, re.Pattern]]:
        return [
            (c, re.compile(r"\b(" + "|".join(re.escape(k) for k in c.keywords) + r")", re.I)) for c in self.categories
        ]

    def classify(self, text: str, default: str = "S4") -> str:
        """Best-guess category id for a harmful prompt from keywords, for sources that carry no category."""
        best, best_hits = default, 0
        for category, pattern in self._keyword_patterns:
            hits = len(pattern.findall(text))
            if hits > best_hits:
                best, best_hits = category.id, hits
        return best


@lru_cache(maxsize=8)
def load_policy(path: str | Path | None = None) -> Policy:
    """Load a policy file (the packaged v1 policy when `path` is None), validating every category."""
    if path is None:
        text, where = resources.files("saro.data").joinpath(DEFAULT_POLICY).read_text(encoding="utf-8"), DEFAULT_POLICY
    else:
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: policy file not found")
        text, where = path.read_text(encoding="utf-8"), str(path)
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
        raise DataError(f"{where}: a policy needs a 'categories' list")
    categories = []
    for index, item in enumerate(data["categories"]):
        missing = [f for f in Category.__dataclass_fields__ if f not in item]
        if missing:
            raise DataError(f"{where}: categories[{index}]: missing field '{missing[0]}'")
        for key in ("disallowed", "allowed", "keywords"):
            if not isinstance(item[key], list) or not all(isinstance(v, str) for v in item[key]):
                raise DataError(
                    f"{where}: categories[{index}].{key}: expected a list of strings (quote items with ':')"
                )
        categories.append(Category(**{k: tuple(v) if isinstance(v, list) else v for k, v in item.items()}))
    return Policy(name=data.get("name", where), version=int(data.get("version", 0)), categories=tuple(categories))
