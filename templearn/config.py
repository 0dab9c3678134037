"""Config files (YAML or JSON) loaded into dataclasses, with validation that names the bad key.

Every stage declares its parameters as a dataclass; the orchestrator's run config is a dataclass
of those. ``load(path, Schema)`` checks every key against the schema (a typo gets
``unknown key 'tetris.dilaton_radius' (did you mean 'dilation_radius'?)``), every value against
the field's type, and returns the dataclass.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .errors import TemplearnError

T = TypeVar("T")


def read_mapping(path: str | os.PathLike) -> dict:
    """Read a YAML or JSON file whose top level is a mapping."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TemplearnError("no such config file", path)
    try:
        text = path.read_text()
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()
        raise TemplearnError(f"cannot parse config: {' '.join(first[:2])}", path) from None
    except UnicodeDecodeError:
        raise TemplearnError("cannot parse config: not a text file (UTF-8)", path) from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise TemplearnError("config must be a mapping of keys to values", path)
    return doc


def load(path: str | os.PathLike, schema: type[T]) -> T:
    """Load ``path`` into the dataclass ``schema``, raising a one-line error naming the bad key."""
    try:
        return from_dict(read_mapping(path), schema)
    except ConfigError as exc:
        raise TemplearnError(str(exc), path) from None


class ConfigError(ValueError):
    pass


def from_dict(data: Any, schema: type[T], where: str = "") -> T:
    """Build the dataclass ``schema`` from plain data, checking keys and types recursively."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
    kwargs = {}
    for key, value in data.items():
        key_s = str(key)
        if key_s not in fields:
            close = difflib.get_close_matches(key_s, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known keys: {', '.join(fields)})"
            raise ConfigError(f"unknown key {_join(where, key_s)!r}{hint}")
        kwargs[key_s] = _coerce(value, hints[key_s], _join(where, key_s))
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing key {_join(where, missing[0])!r}")
    try:
        obj = schema(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or 'config'}: {exc}") from None
    return obj


def to_dict(obj) -> Any:
    """Dataclass -> plain data (for provenance and for writing configs back)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(value, tp, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where} must have {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        inner = args[0] if args else Any
        seq = [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(seq) if origin is tuple else seq
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return str(value)
    if tp is Path:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a path, got {value!r}")
        return Path(value)
    return value
