"""The rules of allowed hyperparameter values, and how each says what it allows.

The model configs (`phishguard.config.models`) give every hyperparameter one of these rules.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from phishguard import PhishguardError


class ModelConfigError(PhishguardError, ValueError):
    """The `model` params name an unknown model, or a hyperparameter it does not take or
    with a value of the wrong type or out of range."""


@dataclass(frozen=True)
class Rule:
    """What values a hyperparameter takes, and how to say so."""

    allowed: str
    accepts: Callable[[Any], bool]

    def __or__(self, other: Rule) -> Rule:
        return Rule(
            f"{self.allowed} or {other.allowed}", lambda v: self.accepts(v) or other.accepts(v)
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def integer(low: int, high: int | None = None) -> Rule:
    shown = f"an integer ≥ {low}" if high is None else f"an integer in [{low}, {high}]"
    return Rule(shown, lambda v: _is_int(v) and v >= low and (high is None or v <= high))


def number(low: float, high: float = math.inf, *, low_open: bool, high_open: bool = False) -> Rule:
    if high == math.inf:
        shown = f"a number {'>' if low_open else '≥'} {low:g}"
    else:
        opening, closing = "(" if low_open else "[", ")" if high_open else "]"
        shown = f"a number in {opening}{low:g}, {high:g}{closing}"

    def accepts(value: Any) -> bool:
        if not _is_number(value):
            return False
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        return above and below

    return Rule(shown, accepts)


def one_of(*choices: Any) -> Rule:
    shown = ", ".join("null" if c is None else repr(c) for c in choices)
    return Rule(
        f"one of {shown}", lambda v: any(v is c or (v == c and type(v) is type(c)) for c in choices)
    )


def float32(rule: Rule) -> Rule:
    """`rule`, for a value XGBoost parses as a 32-bit float: 0 or a normal float32, never one
    that underflows (XGBoost refuses 5e-222 as out of range)."""

    def accepts(value: Any) -> bool:
        return rule.accepts(value) and (value == 0 or FLOAT32_TINY <= abs(value) <= FLOAT32_MAX)

    return Rule(f"{rule.allowed} (a 32-bit float: 0 or ≥ {FLOAT32_TINY:g})", accepts)


FLOAT32_TINY, FLOAT32_MAX = 1.1754944e-38, 3.4028235e38
NULL = one_of(None)
BOOLEAN = Rule("true or false", lambda v: isinstance(v, bool))
THREADS = integer(1) | one_of(-1)
FRACTION = number(0, 1, low_open=True)
NON_NEGATIVE = number(0, low_open=False)
POSITIVE = number(0, low_open=True)
# A Dask scheduler address (`tcp://host:port`, any Dask scheme, or `host:port`) or "local".
SCHEDULER = NULL | Rule(
    "'local' or a Dask scheduler address like 'tcp://host:8786'",
    lambda v: (
        isinstance(v, str)
        and re.fullmatch(r"local|([a-z]+://)?(\[[0-9a-fA-F:]+\]|[^\s:/\[\]]+):\d{1,5}", v)
        is not None
    ),
)
WEIGHTS = NULL | Rule(
    "a list of numbers ≥ 0", lambda v: isinstance(v, list) and all(map(_ok_weight, v))
)


def _ok_weight(value: Any) -> bool:
    return _is_number(value) and value >= 0
