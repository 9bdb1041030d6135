"""Live signals of what the service scores, in its Prometheus `/metrics` (issue 12).

- `phishguard_predictions_total{label}`: records scored, by decided label;
- `phishguard_phishing_probability`: a histogram of the probabilities;
- `phishguard_feature_drift_psi{feature}`: per feature, the PSI of the -1/0/1 shares of the
  worker's last `window` scored records against the training split's shares (the manifest's
  `reference_shares`), refreshed at most once a second. Counts only: no test, no model;
  `phishguard drift` over the prediction log is the real check;
- `phishguard_prediction_log_dropped{cause}`: records the prediction log could not keep.

The metrics are created once per process, when the first `LiveMetrics` is made: BentoML sets
its multiprocess directory in each worker before the service's `__init__` runs, and
prometheus_client reads it at import (so it is imported there, not at module import).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np

from phishguard.contract.schema import CLASS_NAMES, DOMAINS, FEATURES
from phishguard.modeling.features import psi

PROBABILITY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
WINDOW = 5_000
"""Records in the rolling window of the drift gauge, per worker."""
REFRESH_SECONDS = 1.0
PSEUDO_COUNT = 0.5
"""Added to every value's count before PSI, as `phishguard drift` does (monitor.features)."""
_LEVELS = np.array([-1, 0, 1], dtype=np.int8)


@cache
def _metrics() -> dict[str, Any]:
    import prometheus_client as prom  # after BentoML set the worker's multiprocess directory

    return {
        "predictions": prom.Counter(
            "phishguard_predictions", "Records scored, by decided label.", ["label"]
        ),
        "probability": prom.Histogram(
            "phishguard_phishing_probability",
            "P(phishing) of the scored records.",
            buckets=PROBABILITY_BUCKETS,
        ),
        "drift": prom.Gauge(
            "phishguard_feature_drift_psi",
            f"PSI of each feature's value shares over the last {WINDOW} scored records "
            "against the training split.",
            ["feature"],
            multiprocess_mode="liveall",
        ),
        "dropped": prom.Gauge(
            "phishguard_prediction_log_dropped",
            "Scored records the prediction log could not keep, by cause.",
            ["cause"],
            multiprocess_mode="liveall",
        ),
    }


class LiveMetrics:
    """A scoring observer (`serving.scoring.Observer`) that updates the live metrics."""

    def __init__(
        self,
        reference_shares: Mapping[str, Mapping[str, float]] | None,
        dropped: Any = None,
        window: int = WINDOW,
    ) -> None:
        """`reference_shares`: the manifest's training shares (None: no drift gauge);
        `dropped`: a callable giving the prediction log's dropped counts by cause."""
        self.metrics = _metrics()
        self.dropped = dropped
        self.window = np.zeros((window, len(FEATURES)), dtype=np.int8)
        self.occupied = np.zeros(window, dtype=bool)
        self.filled = 0
        self.position = 0
        self.counts = np.zeros((len(FEATURES), len(_LEVELS)), dtype=np.int64)
        self.reference = (
            None
            if reference_shares is None
            else np.array(
                [[reference_shares[name].get(str(v), 0.0) for v in _LEVELS] for name in FEATURES]
            )
        )
        self.present = np.array([[v in DOMAINS[name] for v in _LEVELS] for name in FEATURES])
        self.refreshed = 0.0
        self.lock = threading.Lock()

    def record(
        self,
        features: np.ndarray,
        probabilities: np.ndarray,
        threshold: float,
        **_: object,
    ) -> None:
        flagged = int(np.count_nonzero(probabilities >= threshold))
        metrics = self.metrics
        if flagged:
            metrics["predictions"].labels(CLASS_NAMES[1]).inc(flagged)
        if flagged < len(probabilities):
            metrics["predictions"].labels(CLASS_NAMES[0]).inc(len(probabilities) - flagged)
        histogram = metrics["probability"]
        for p in probabilities.tolist():
            histogram.observe(p)
        if self.reference is not None:
            with self.lock:
                self._slide(np.asarray(features, dtype=np.int8)[-len(self.window) :])
                now = time.monotonic()
                if now - self.refreshed >= REFRESH_SECONDS:
                    self.refreshed = now
                    self._publish()

    def psi(self) -> dict[str, float]:
        """Each feature's PSI of the window's value counts against the training shares (as
        counts of a window's size), over the values of its domain."""
        scale = max(self.filled, 1)
        return {
            name: round(
                psi(self.reference[i, in_domain] * scale, self.counts[i, in_domain], PSEUDO_COUNT),
                6,
            )
            for i, (name, in_domain) in enumerate(zip(FEATURES, self.present, strict=True))
        }

    def _slide(self, rows: np.ndarray) -> None:
        """Put `rows` in the window, evicting the oldest, and keep the value counts current."""
        index = (self.position + np.arange(len(rows))) % len(self.window)
        evicted = index[self.occupied[index]]
        self.counts -= _one_hot_counts(self.window[evicted])
        self.occupied[index] = True
        self.window[index] = rows
        self.counts += _one_hot_counts(rows)
        self.position = int((self.position + len(rows)) % len(self.window))
        self.filled = min(len(self.window), self.filled + len(rows))

    def _publish(self) -> None:
        gauge = self.metrics["drift"]
        for feature, value in self.psi().items():
            gauge.labels(feature).set(value)
        if self.dropped is not None:
            self.publish_dropped(self.dropped())

    def publish_dropped(self, counts: Mapping[str, int]) -> None:
        """Set the prediction log's dropped counts by cause (the log calls this as it drops,
        so a scrape sees them at once, not only after the next scoring call)."""
        for cause, count in counts.items():
            self.metrics["dropped"].labels(cause).set(count)


def _one_hot_counts(rows: np.ndarray) -> np.ndarray:
    """Per feature, how many of `rows` hold -1, 0 and 1."""
    return (rows[:, :, None] == _LEVELS).sum(axis=0)
