"""Writes per API key (issue 18): a token bucket of `PHISHGUARD_WRITE_BURST` writes (default:
the rate's count) refilled at `PHISHGUARD_WRITE_RATE` (default "60/minute"). `ApiKeyAuth`
answers 429 with `Retry-After` (whole seconds) past it. The buckets live in each worker: with N
workers a key may write up to N times the rate.

Verdicts per API key (issue 27), counted one by one whatever the number of requests: a bucket
of `PHISHGUARD_VERDICT_BURST` verdicts (default: the rate's count) refilled at
`PHISHGUARD_VERDICT_RATE` (default "5000/hour"); `POST /feedback` answers 429 past it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from phishguard import PhishguardError

RATE_ENV = "PHISHGUARD_WRITE_RATE"
BURST_ENV = "PHISHGUARD_WRITE_BURST"
DEFAULT_RATE = "60/minute"
VERDICT_RATE_ENV = "PHISHGUARD_VERDICT_RATE"
VERDICT_BURST_ENV = "PHISHGUARD_VERDICT_BURST"
DEFAULT_VERDICT_RATE = "5000/hour"
_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}


@dataclass(frozen=True)
class WriteRate:
    """Writes per key: `burst` at once, refilled at `per_second`."""

    per_second: float
    burst: int
    text: str
    names: tuple[str, str] = (RATE_ENV, BURST_ENV)

    @property
    def limits(self) -> str:
        """The limits and where they are set, for the 429's message."""
        rate, burst = self.names
        return f"at most {self.text} ({rate}), {self.burst} at once ({burst})"

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] = os.environ,
        names: tuple[str, str] = (RATE_ENV, BURST_ENV),
        default: str = DEFAULT_RATE,
    ) -> WriteRate:
        """The rate the variables `names` (rate, burst) set, or `default`."""
        rate_env, burst_env = names
        text = environ.get(rate_env, "").strip() or default
        match = re.fullmatch(r"(\d+)\s*/\s*(second|minute|hour)", text)
        if not match or int(match.group(1)) < 1:
            raise PhishguardError(
                f'{rate_env} must read N/second, N/minute or N/hour (N ≥ 1), got "{text}"'
            )
        count = int(match.group(1))
        burst_text = environ.get(burst_env, "").strip() or str(count)
        if not burst_text.isdigit() or int(burst_text) < 1:
            raise PhishguardError(f"{burst_env} must be a positive integer, got {burst_text!r}")
        return cls(count / _PERIODS[match.group(2)], int(burst_text), text, names)

    @classmethod
    def verdicts_from_env(cls, environ: Mapping[str, str] = os.environ) -> WriteRate:
        """The verdicts-per-key rate (`PHISHGUARD_VERDICT_RATE`, `PHISHGUARD_VERDICT_BURST`)."""
        return cls.from_env(environ, (VERDICT_RATE_ENV, VERDICT_BURST_ENV), DEFAULT_VERDICT_RATE)


class TokenBuckets:
    """One token bucket per key name."""

    def __init__(self, rate: WriteRate, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # name → (tokens, at)

    def take(self, name: str, count: int = 1) -> float:
        """0 if `name` may write `count` now (the tokens are taken), else the seconds until it
        may (`math.inf` when `count` is over the burst: it never may at once)."""
        if count > self.rate.burst:
            return math.inf
        now = self.clock()
        tokens, at = self._buckets.get(name, (float(self.rate.burst), now))
        tokens = min(float(self.rate.burst), tokens + (now - at) * self.rate.per_second)
        if tokens >= count:
            self._buckets[name] = (tokens - count, now)
            return 0.0
        self._buckets[name] = (tokens, now)
        return (count - tokens) / self.rate.per_second
