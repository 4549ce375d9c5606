"""Every on-disk record type and the one place that reads, appends and resumes JSONL files.

Long jobs append one record per line and flush it, so a killed job loses at most the line being written; on
restart, `JsonlWriter` drops a torn last line and reports which ids are already done. A `<file>.manifest.json`,
written last and atomically, marks the file finished.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from saro.errors import ConfigError, DataError

KINDS = ("harmful", "jailbreak", "borderline_benign", "general")
HARMFUL_KINDS = ("harmful", "jailbreak")  # kinds that call for a refusal; the others for an answer

# The assistant turn is `<think>\n{reasoning}\n</think>\n\n{answer}`: the same delimiters as DeepSeek-R1 / Qwen3, so
# reasoning parsers in vLLM and chat UIs already understand the outputs.
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_THINK_RE = re.compile(re.escape(THINK_OPEN) + r"\s*(.*?)\s*" + re.escape(THINK_CLOSE) + r"\s*(.*)", re.S)


def format_response(reasoning: str, answer: str) -> str:
    """Join reasoning and answer into one assistant turn."""
    return f"{THINK_OPEN}\n{reasoning.strip()}\n{THINK_CLOSE}\n\n{answer.strip()}"


def split_response(text: str) -> tuple[str | None, str]:
    """Split an assistant turn into (reasoning, answer); reasoning is None when the think block is missing. A turn
    whose opener the chat template wrote (DeepSeek-R1's generation prompt, a server without a reasoning parser)
    starts inside the block: everything before the first `</think>` is the reasoning."""
    match = _THINK_RE.search(text)
    if not match:
        if THINK_CLOSE in text:
            reasoning, answer = text.split(THINK_CLOSE, 1)
            return reasoning.strip(), answer.strip()
        return None, text.strip()
    return match.group(1).strip(), match.group(2).strip()


# A decision line ("5. Decision: refuse."); group 1 is the decision word.
DECISION_LINE = re.compile(r"decision\s*:\s*\**\s*(refuse|decline|answer|comply|help)", re.I)


def decision_of(reasoning: str | None) -> str | None:
    """The reasoning's last decision line as "refuse" or "answer"; None when it has none."""
    found = DECISION_LINE.findall(reasoning or "")
    if not found:
        return None
    return "refuse" if found[-1].lower() in ("refuse", "decline") else "answer"


def stable_id(*parts: Any) -> str:
    """A short id that is the same on every rerun for the same source, index and shaping parameters."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class PromptRecord:
    """One prompt to synthesize for or evaluate on.

    `kind` is one of KINDS; `category` is a policy category id (or "none" for benign prompts); `template_family`
    names the jailbreak wrapper for kind "jailbreak"; `reference` holds a checked answer where the source has one.
    """

    id: str
    prompt: str
    kind: str
    category: str = "none"
    source: str = ""
    template_family: str | None = None
    reference: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "") -> PromptRecord:
        """Build from a JSON object, naming `where` (file:line) and the field when it is malformed."""
        for name in ("id", "prompt", "kind"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise DataError(f"{where}: field '{name}' is missing or not a non-empty string")
        if data["kind"] not in KINDS:
            raise DataError(f"{where}: field 'kind' is {data['kind']!r}; expected one of {', '.join(KINDS)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"{where}: unknown field '{unknown[0]}' (prompt records have {', '.join(sorted(known))})")
        return cls(**data)


def read_jsonl(path: str | Path, required: Iterable[str] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (`file:line`, object) for each non-blank line, failing on the first bad line or missing field."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a file; expected a JSONL file")
    with path.open("rb") as handle:  # bytes, so a line that is not UTF-8 is named like any other bad line
        for lineno, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise DataError(f"{where}: not UTF-8 text; JSONL files must be UTF-8") from None
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
            for name in required:
                if name not in obj:
                    raise DataError(f"{where}: missing field '{name}'")
            yield where, obj


def read_prompts(path: str | Path) -> list[PromptRecord]:
    """Read a prompt-record JSONL file, failing on the first malformed line or repeated id (outputs are keyed by
    prompt id, so a second record under one id would be written twice and lost on resume)."""
    records, first_seen = [], {}
    for where, obj in read_jsonl(path):
        record = PromptRecord.from_dict(obj, where)
        if record.id in first_seen:
            first = first_seen[record.id]
            raise DataError(f"{where}: duplicate id {record.id!r} (first at {first}); prompt ids must be unique")
        first_seen[record.id] = where
        records.append(record)
    return records


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records atomically (temp file, then rename); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # several processes may write the same file
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


class JsonlWriter:
    """Append-only JSONL writer that resumes: ids already in the file are reported by `done_ids`.

    A last line cut off by a kill (no trailing newline, or not valid JSON) is dropped on open, so a restart rewrites
    that record instead of keeping half of it. A bad line anywhere else is not from a kill: it is an error naming
    file:line, and nothing is dropped.
    """

    def __init__(self, path: str | Path, id_field: str = "id"):
        self.path = Path(path)
        self.id_field = id_field
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done_ids: set[str] = set()
        self._drop_torn_tail()
        self._handle = self.path.open("a", encoding="utf-8")

    def _drop_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        *complete, tail = data.split(b"\n")  # `tail`: what follows the last newline, torn when not empty
        keep = 0
        for lineno, line in enumerate(complete, 1):
            try:
                obj = json.loads(line) if line.strip() else {}
            except ValueError as exc:  # invalid JSON or invalid UTF-8
                if lineno < len(complete) or tail:
                    problem = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else "invalid JSON"
                    raise DataError(
                        f"{self.path}:{lineno}: {problem}, and not the last line (only a torn last line is dropped "
                        "on resume); fix or delete that line, then rerun"
                    ) from None
                break  # a bad last line: the torn record of a killed run
            if isinstance(obj, dict) and self.id_field in obj:
                self.done_ids.add(obj[self.id_field])
            keep += len(line) + 1
        if keep != len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(keep)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and flush it to the OS, so a kill after this call cannot lose it."""
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        self.done_ids.add(record[self.id_field])

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pending_batches(items: list, ids: list[str], done: set[str], size: int) -> list[list[int]]:
    """Fixed batches (positions into `items`) that still hold an id not in `done`.

    Batches are cut from the full list, not from what is left, so a resumed batch has the same members as in an
    uninterrupted run and batched greedy generation (padding included) reproduces the same outputs.
    """
    batches = [list(range(i, min(i + size, len(items)))) for i in range(0, len(items), size)]
    return [b for b in batches if any(ids[i] not in done for i in b)]


def manifest_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".manifest.json")


def write_manifest(path: str | Path, info: dict[str, Any]) -> Path:
    """Atomically write `<path>.manifest.json`, marking `path` finished."""
    target = manifest_path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def output_folder(path: str | Path, key: str = "output", create: bool = True) -> Path:
    """Create output folder `path` (its parents too) and make sure files can be written in it, so a path that is
    a file or a folder without write access fails in a second, naming `key`, before any model loads. With
    `create=False` nothing is created: the nearest existing folder on the way is tried instead.

    Raises:
        ConfigError: `path` is an existing file, or the folder cannot be created or written to.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key} {path}: a file is there, not a folder; choose another {key}")
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        existing = next(p for p in (path, *path.absolute().parents) if p.exists())
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{existing} is a file")
        with tempfile.TemporaryFile(dir=existing):  # permissions alone do not tell: root, read-only mounts, quotas
            pass
    except OSError as exc:
        raise ConfigError(f"{key} {path}: cannot write there ({exc.strerror or exc}); choose another {key}") from None
    return path
