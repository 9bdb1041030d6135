"""Typed, strict loading of one stage's section of `params.yaml`.

Each stage reads only its own section into a frozen dataclass. An unknown or missing key is a
`ParamsError` naming it, never a silently taken default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from phishguard import PhishguardError
from phishguard.paths import PARAMS

T = TypeVar("T")


class ParamsError(PhishguardError, ValueError):
    """params.yaml does not match what a stage expects."""


def did_you_mean(key: str, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` naming the valid key nearest to a misspelt `key`, or ''."""
    # The schema's spelling rule, imported here: it imports pandas (~0.5 s), which
    # `phishguard params` and `--help` otherwise never pay; only an error needs it.
    from phishguard.contract.problems import misspelled

    nearest = misspelled(key, choices)
    return f"; did you mean '{nearest}'?" if nearest else ""


def read_params(path: Path = PARAMS) -> dict[str, Any]:
    """The whole params file as a dict."""
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the repository root)") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(document, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return document


def section(name: str, path: Path = PARAMS) -> dict[str, Any]:
    """One top-level section of the params file, as a plain dict."""
    document = read_params(path)
    if name not in document or not isinstance(document[name], dict):
        raise ParamsError(f"{path}: missing section '{name}'")
    return document[name]


def load_section(name: str, cls: type[T], path: Path = PARAMS) -> T:
    """Load section `name` of the params file into dataclass `cls`, strictly."""
    return build(cls, section(name, path), name)


def build(cls: type[T], values: dict[str, Any], where: str) -> T:
    """Build dataclass `cls` from `values`, recursing into nested dataclasses; strict keys."""
    if not isinstance(values, dict):
        raise ParamsError(f"params '{where}': expected a mapping, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        hint = did_you_mean(unknown[0], fields) if len(unknown) == 1 else ""
        raise ParamsError(
            f"params '{where}': unknown key(s) {', '.join(unknown)}{hint} "
            f"(expected {', '.join(fields)})"
        )
    missing = [n for n, f in fields.items() if n not in values and _required(f)]
    if missing:
        raise ParamsError(f"params '{where}': missing key(s) {', '.join(missing)}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = build(hint, value, f"{where}.{name}")
        else:
            kwargs[name] = _check_type(value, hint, f"{where}.{name}")
    return cls(**kwargs)


def _required(field: dataclasses.Field) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _check_type(value, option, where)
            except ParamsError:
                continue
        raise ParamsError(f"params '{where}': {value!r} is not {hint}")
    if hint is type(None):
        if value is None:
            return None
        raise ParamsError(f"params '{where}': expected null, got {value!r}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    check = origin or hint
    if check is typing.Any:
        return value
    if not isinstance(value, check) or (check is int and isinstance(value, bool)):
        raise ParamsError(
            f"params '{where}': expected {getattr(hint, '__name__', hint)}, got {value!r}"
        )
    return value
