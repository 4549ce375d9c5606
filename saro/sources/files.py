"""Shared readers for source files (local path or URL) and hub datasets, with errors that name file and item."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from saro.errors import DataError
from saro.records import read_jsonl


def local_path(path: str | Path) -> Path:
    """Return a local file for `path`, downloading an http(s) URL once into ~/.cache/saro/downloads."""
    text = str(path)
    if text.startswith(("http://", "https://")):
        import hashlib

        import httpx

        cache = Path.home() / ".cache" / "saro" / "downloads"
        target = cache / (hashlib.sha1(text.encode()).hexdigest()[:12] + "-" + text.rsplit("/", 1)[-1])
        if not target.exists():
            cache.mkdir(parents=True, exist_ok=True)
            try:
                response = httpx.get(text, follow_redirects=True, timeout=60)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise DataError(f"{text}: download failed ({type(exc).__name__})") from None
            target.write_bytes(response.content)
        return target
    result = Path(path)
    if not result.exists():
        raise DataError(f"{result}: file not found")
    return result


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise DataError(f"{path}{':' + str(mark.line + 1) if mark else ''}: invalid YAML") from None


def read_csv(path: Path) -> list[tuple[str, dict[str, str]]]:
    """Rows as (`file:line`, row); lines starting with '#' before the header are skipped."""
    with path.open(encoding="utf-8", newline="") as handle:
        lines = list(handle)
    skipped = 0
    while skipped < len(lines) and lines[skipped].startswith("#"):
        skipped += 1
    reader = csv.DictReader(lines[skipped:])
    return [(f"{path}:{skipped + reader.line_num}", row) for row in reader]


def require(item: Any, field: str, where: str) -> Any:
    """The value of `field` in `item`, or a DataError naming where and which field."""
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected an object, got {type(item).__name__}")
    value = item.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{where}: missing field '{field}'")
    return value


def jsonl_items(path: Path, fields: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    return list(read_jsonl(path, required=fields))


def hub_rows(hub_id: str, split: str, config: str | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Rows of a Hugging Face hub dataset (needs network), as (`hub_id[split]:row`, row)."""
    import datasets

    try:
        data = datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:  # datasets raises many types for offline / missing / gated sets
        raise DataError(
            f"{hub_id}: could not load from the Hugging Face hub ({type(exc).__name__}); pass a local path instead"
        ) from None
    return [(f"{hub_id}[{split}]:{i}", row) for i, row in enumerate(data)]
