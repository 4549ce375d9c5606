"""Config loading: YAML file, then `key=value` overrides (default < file < flag), validated before any work starts.

Stage configs are dataclasses whose fields all have defaults and help. A YAML file either holds one stage's keys at
top level or a section per stage (`synth_rw:`, `train_rw:`, ...), so one file can drive the whole pipeline.
Training stages also accept every TRL `SFTConfig` / `DPOConfig` field in the same section (see `split_trl_keys`).
A numeric field's allowed range lives in its metadata (`"min"`: at least, `"above"`: more than, `"max"`: at most).
Config dataclasses derive from `RangeChecked`, so the range is checked whenever one is built: on load, with the
key's file:line or "command line" in the message, and when code builds one directly.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from saro.errors import ConfigError

T = TypeVar("T")


def _line_numbers(text: str, path: Path | None = None) -> dict[tuple[str, ...], int]:
    """Map each key path in a YAML document to its 1-based line, so errors can point at it; a key given twice in
    one mapping is an error (YAML would keep the last value silently)."""
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: yaml.Node, prefix: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                keys = prefix + (str(key.value),)
                if keys in lines:
                    raise ConfigError(
                        f"{path}:{key.start_mark.line + 1}: {'.'.join(keys)}: duplicate key (first at line "
                        f"{lines[keys]}); give each key once"
                    )
                lines[keys] = key.start_mark.line + 1
                walk(value, keys)
        elif isinstance(node, yaml.SequenceNode):  # list items as "0", "1", ... (suites.0.limit)
            for index, item in enumerate(node.value):
                keys = prefix + (str(index),)
                lines[keys] = item.start_mark.line + 1
                walk(item, keys)

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


class _Source:
    """Where config values came from, for error messages: `file:line: key` or `command line: key`."""

    def __init__(self, path: Path | None, lines: dict[tuple[str, ...], int], prefix: tuple[str, ...] = ()):
        self.path, self.lines, self.prefix = path, lines, prefix
        self.overridden: set[tuple[str, ...]] = set()  # full key paths of `key=value` overrides (their leaves)

    def _from_command_line(self, full: tuple[str, ...]) -> bool:
        for path in self.overridden:
            if full[: len(path)] == path:  # the override set this key or a mapping or list above it
                return True
            if path[: len(full)] == full and full not in self.lines:  # a mapping only the command line gave
                return True
        return False

    def where(self, key_path: tuple[str, ...]) -> str:
        full = self.prefix + key_path
        if self._from_command_line(full):
            return f"command line: {'.'.join(full)}"
        line = self.lines.get(full)
        place = f"{self.path}:{line}" if self.path and line else str(self.path or "command line")
        return f"{place}: {'.'.join(full)}"


class FieldError(ValueError):
    """A bad value of one field (`name`, dotted below it), raised by a dataclass's checks; `build_dataclass` names
    where the value came from: the file's line or the command line."""

    def __init__(self, name: str, detail: str):
        self.name, self.detail = name, detail
        super().__init__(f"{name}: {detail}")


class RangeError(FieldError):
    """A value outside its field's allowed range."""

    def __init__(self, name: str, value: Any, limits: typing.Mapping[str, float]):
        super().__init__(name, f"expected a value {allowed_range(limits)}, got {value!r}")


def allowed_range(limits: typing.Mapping[str, float]) -> str:
    """`{"min": 1}` -> ">= 1"; `{"above": 0, "max": 1}` -> "> 0 and <= 1"."""
    parts = []
    if "min" in limits:
        parts.append(f">= {limits['min']}")
    if "above" in limits:
        parts.append(f"> {limits['above']}")
    if "max" in limits:
        parts.append(f"<= {limits['max']}")
    return " and ".join(parts)


def check_range(name: str, value: Any, limits: typing.Mapping[str, float]) -> None:
    """Raise `RangeError` when the number `value` is outside `limits` (`min`, `above`, `max`); for a mapping
    (counts per kind), each of its values is checked, named `name.key`. None and non-numbers pass (types are
    checked elsewhere)."""
    if limits and isinstance(value, dict):
        for key, item in value.items():
            check_range(f"{name}.{key}", item, limits)
        return
    if not limits or isinstance(value, bool) or not isinstance(value, int | float):
        return
    if (
        ("min" in limits and value < limits["min"])
        or ("above" in limits and value <= limits["above"])
        or ("max" in limits and value > limits["max"])
    ):
        raise RangeError(name, value, limits)


_LIMIT_KEYS = ("min", "above", "max")


def field_limits(f: dataclasses.Field) -> dict[str, float]:
    """The allowed range in a field's metadata (empty: any value of its type)."""
    return {k: f.metadata[k] for k in _LIMIT_KEYS if k in f.metadata}


def check_fields(obj: Any) -> None:
    """Raise `RangeError` for the first field of dataclass instance `obj` outside its metadata range."""
    for f in dataclasses.fields(obj):
        check_range(f.name, getattr(obj, f.name), field_limits(f))


class RangeChecked:
    """Base of saro's config dataclasses: building one, from a config file or in code, checks every field against
    its metadata range. A subclass with its own `__post_init__` calls `super().__post_init__()` first."""

    def __post_init__(self) -> None:
        check_fields(self)


def _coerce(value: Any, hint: Any, where: str, source: _Source | None = None, path: tuple[str, ...] = ()) -> Any:
    """Check `value` against a type hint, converting only what YAML cannot express (str -> Path, dict -> config)."""
    if dataclasses.is_dataclass(hint) and isinstance(value, dict) and source is not None:
        return build_dataclass(hint, value, source, path)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, where, source, path)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_hint, *_) = typing.get_args(hint) or (Any,)
        return [_coerce(item, item_hint, f"{where}[{i}]", source, path + (str(i),)) for i, item in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        (_, value_hint) = typing.get_args(hint) or (Any, Any)
        return {
            key: _coerce(
                item,
                value_hint,
                source.where(path + (str(key),)) if source else f"{where}.{key}",
                source,
                path + (str(key),),
            )
            for key, item in value.items()
        }
    if hint is Any or hint is object:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{where}: expected a path, got {value!r}")
        return Path(value)
    if dataclasses.is_dataclass(hint):
        raise ConfigError(f"{where}: expected a mapping of {hint.__name__} keys")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not one of {[e.value for e in hint]}") from None
    return value  # types we do not check (TRL's rarer fields): TRL validates them itself


def unknown_key_error(where: str, key: str, valid: typing.Iterable[str]) -> ConfigError:
    """An 'unknown key' error with a did-you-mean suggestion."""
    close = difflib.get_close_matches(key, list(valid), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"{where}: unknown key '{key}'{hint}")


def build_dataclass(cls: type[T], data: dict[str, Any], source: _Source, prefix: tuple[str, ...] = ()) -> T:
    """Instantiate dataclass `cls` from `data`, validating keys and types; nested dataclasses recurse."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    try:
        for key, value in data.items():
            path = prefix + (key,)
            if key not in fields:
                raise unknown_key_error(source.where(path), key, fields)
            kwargs[key] = _coerce(value, hints[key], source.where(path), source, path)
        return cls(**kwargs)
    except FieldError as exc:  # from `RangeChecked`'s metadata check, or a __post_init__ naming its field
        raise ConfigError(f"{source.where(prefix + tuple(exc.name.split('.')))}: {exc.detail}") from None
    except (ValueError, TypeError) as exc:  # __post_init__ cross-field checks (ours and TRL's)
        raise ConfigError(f"{source.where(prefix) if prefix else source.path or 'config'}: {exc}") from None


def parse_overrides(overrides: typing.Sequence[str]) -> dict[str, Any]:
    """Turn `a.b=1` strings into a nested dict; values are parsed as YAML (so `true`, `3`, `[1, 2]` work)."""
    result: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}': expected key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        node = result
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return result


def merge_mappings(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_mappings(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_section(path: str | Path | None, section: str, known_sections: typing.Iterable[str]) -> tuple[dict, _Source]:
    """Read a YAML config file and return the mapping for `section` (or the whole file when it has no sections)."""
    if path is None:
        return {}, _Source(None, {})
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if not path.is_file():
        raise ConfigError(f"{path}: not a file; --config takes a YAML config file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        bad = raw[exc.start]
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{bad:02x}); save the config as UTF-8") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at top level")
    lines = _line_numbers(text, path)
    known_sections = set(known_sections)
    if known_sections & set(data):
        for key in data:
            if key not in known_sections:
                raise unknown_key_error(_Source(path, lines).where((key,)), key, known_sections)
        section_data = data.get(section) or {}
        if not isinstance(section_data, dict):
            raise ConfigError(f"{_Source(path, lines).where((section,))}: expected a mapping")
        return section_data, _Source(path, lines, (section,))
    return data, _Source(path, lines)


def read_config_data(path, section: str, overrides: typing.Sequence[str], sections) -> tuple[dict, _Source]:
    """A section's mapping with `key=value` overrides applied (default < file < flag), and where it came from."""
    data, source = read_section(path, section, sections or (section,))
    extra = parse_overrides(overrides)
    source.overridden = {source.prefix + path for path in _replaced_paths(data, extra)}
    return merge_mappings(data, extra), source


def _replaced_paths(
    base: dict[str, Any], extra: dict[str, Any], prefix: tuple[str, ...] = ()
) -> typing.Iterator[tuple[str, ...]]:
    """The key paths whose value `merge_mappings(base, extra)` takes from `extra`: the override's leaves, or the
    file's key itself where an override such as `samples.x=3` replaced a value that was not a mapping."""
    for key, value in extra.items():
        if isinstance(value, dict) and value and isinstance(base.get(key), dict):
            yield from _replaced_paths(base[key], value, prefix + (str(key),))
        else:
            yield prefix + (str(key),)


def load_config(
    cls: type[T], path: str | Path | None, section: str, overrides: typing.Sequence[str] = (), sections=()
) -> T:
    """Load stage config `cls` from `section` of a YAML file plus `key=value` overrides."""
    return build_dataclass(cls, *read_config_data(path, section, overrides, sections))


def split_trl_keys(
    data: dict[str, Any], saro_cls: type, trl_cls: type, source: _Source
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split one section into saro's own keys and TRL's, failing on keys that belong to neither."""
    saro_names = {f.name for f in dataclasses.fields(saro_cls)}
    trl_names = {f.name for f in dataclasses.fields(trl_cls) if f.init}
    ours, theirs = {}, {}
    for key, value in data.items():
        if key in saro_names:
            ours[key] = value
        elif key in trl_names:
            theirs[key] = value
        else:
            raise unknown_key_error(source.where((key,)), key, saro_names | trl_names)
    return ours, theirs


def to_plain(obj: Any) -> Any:
    """A JSON-friendly copy of a config (dataclasses, paths, enums), for manifests and hashing."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "value") and type(obj).__module__ != "builtins":
        return obj.value
    return obj


def config_hash(obj: Any) -> str:
    """A short hash of a config, recorded in manifests so a changed config is noticed."""
    return hashlib.sha256(json.dumps(to_plain(obj), sort_keys=True, default=str).encode()).hexdigest()[:16]
