"""Writes per API key (issue 18): a token bucket of `PHISHGUARD_WRITE_BURST` writes (default:
the rate's count) refilled at `PHISHGUARD_WRITE_RATE` (default "60/minute"). `ApiKeyAuth`
answers 429 with `Retry-After` (whole seconds) past it. The buckets live in each worker: with N
workers a key may write up to N times the rate.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from phishguard import PhishguardError

RATE_ENV = "PHISHGUARD_WRITE_RATE"
BURST_ENV = "PHISHGUARD_WRITE_BURST"
DEFAULT_RATE = "60/minute"
_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}


@dataclass(frozen=True)
class WriteRate:
    """Writes per key: `burst` at once, refilled at `per_second`."""

    per_second: float
    burst: int
    text: str

    @property
    def limits(self) -> str:
        """The limits and where they are set, for the 429's message."""
        return f"at most {self.text} ({RATE_ENV}), {self.burst} at once ({BURST_ENV})"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WriteRate:
        text = environ.get(RATE_ENV, "").strip() or DEFAULT_RATE
        match = re.fullmatch(r"(\d+)\s*/\s*(second|minute|hour)", text)
        if not match or int(match.group(1)) < 1:
            raise PhishguardError(
                f'{RATE_ENV} must read N/second, N/minute or N/hour (N ≥ 1), got "{text}"'
            )
        count = int(match.group(1))
        burst_text = environ.get(BURST_ENV, "").strip() or str(count)
        if not burst_text.isdigit() or int(burst_text) < 1:
            raise PhishguardError(f"{BURST_ENV} must be a positive integer, got {burst_text!r}")
        return cls(count / _PERIODS[match.group(2)], int(burst_text), text)


class TokenBuckets:
    """One token bucket per key name."""

    def __init__(self, rate: WriteRate, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # name → (tokens, at)

    def take(self, name: str) -> float:
        """0 if `name` may write now (a token is taken), else the seconds until it may."""
        now = self.clock()
        tokens, at = self._buckets.get(name, (float(self.rate.burst), now))
        tokens = min(float(self.rate.burst), tokens + (now - at) * self.rate.per_second)
        if tokens >= 1.0:
            self._buckets[name] = (tokens - 1.0, now)
            return 0.0
        self._buckets[name] = (tokens, now)
        return (1.0 - tokens) / self.rate.per_second
