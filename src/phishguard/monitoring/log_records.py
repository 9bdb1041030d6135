"""The prediction log's records: its two file formats and how a batch of them is written.

One record per scored row, flat, the same columns in both formats (see
`phishguard.monitoring.prediction_log`). JSONL (`records_jsonl`) is built column by column
with Arrow, not row by row: each row is the element-wise join of a few byte columns (the
per-batch text, the prediction index, the features taken from precomputed texts of `_GROUP`
features at a time, the probability, the decision), and the joined column's data buffer is
the file's text: about 1 µs a row, against 11 µs for a DataFrame's `to_json`. Parquet
(`records_table`) is an Arrow table of `PARQUET_SCHEMA`, about 20 bytes a row on disk.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from phishguard.contract.schema import CLASS_NAMES, FEATURES

FORMATS = ("jsonl", "parquet")
FILE_PATTERNS = tuple(f"predictions-*.{suffix}" for suffix in FORMATS)


@dataclass(frozen=True)
class LoggedBatch:
    """One scored batch as the log queues it (features int8, in canonical order)."""

    time: datetime
    request_id: str
    source: str
    model_version: str
    model_sha256: str
    features: np.ndarray
    probabilities: np.ndarray
    threshold: float
    indexes: np.ndarray | None = None
    caller: str | None = None


PARQUET_SCHEMA = pa.schema(
    [
        *((name, pa.string()) for name in ("time", "request_id", "prediction_id", "source")),
        ("model_version", pa.string()),
        ("model_sha256", pa.string()),
        *((name, pa.int8()) for name in FEATURES),
        ("probability", pa.float64()),
        ("decision", pa.string()),
        ("threshold", pa.float64()),
        ("caller", pa.string()),
    ]
)
"""The Parquet log's columns: those of a JSONL record, `caller` null when not known."""


@dataclass(frozen=True)
class _Rows:
    """The batches' per-row values, joined once (no copy for a single batch)."""

    counts: list[int]
    indexes: np.ndarray
    """Each row's index in its prediction id (`<request_id>-<index>`), int64."""
    features: np.ndarray
    probabilities: np.ndarray
    thresholds: np.ndarray

    @classmethod
    def of(cls, batches: list[LoggedBatch]) -> _Rows:
        counts = [len(batch.probabilities) for batch in batches]

        def joined(arrays: list[np.ndarray]) -> np.ndarray:
            return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)

        features = joined([batch.features for batch in batches])
        if ((features < -1) | (features > 1)).any():  # scored rows are valid; never mis-log one
            raise ValueError("a feature value outside {-1, 0, 1}")
        indexes = [
            np.arange(count) if batch.indexes is None else batch.indexes
            for batch, count in zip(batches, counts, strict=True)
        ]
        return cls(
            counts=counts,
            indexes=joined(indexes).astype(np.int64, copy=False),
            features=features,
            probabilities=joined([batch.probabilities for batch in batches]),
            thresholds=np.repeat(np.array([batch.threshold for batch in batches]), counts),
        )


def records_table(batches: list[LoggedBatch]) -> pa.Table:
    """The batches' records as an Arrow table of `PARQUET_SCHEMA` (no per-row Python)."""
    rows = _Rows.of(batches)
    at = pa.array(np.repeat(np.arange(len(batches)), rows.counts))

    def per_batch(values: list[str | None]) -> pa.Array:
        return pa.array(values, pa.string()).take(at)

    features, thresholds = rows.features, rows.thresholds
    probabilities = rows.probabilities.astype(np.float64)
    prefix = per_batch([f"{batch.request_id}-" for batch in batches])
    numbers = pa.array(rows.indexes.astype("S20"), pa.binary()).cast(pa.string())
    columns = {
        "time": per_batch([_utc_text(batch.time) for batch in batches]),
        "request_id": per_batch([batch.request_id for batch in batches]),
        "prediction_id": pc.binary_join_element_wise(prefix, numbers, ""),
        "source": per_batch([batch.source for batch in batches]),
        "model_version": per_batch([batch.model_version for batch in batches]),
        "model_sha256": per_batch([batch.model_sha256 for batch in batches]),
        **{name: pa.array(features[:, j]) for j, name in enumerate(FEATURES)},
        "probability": pa.array(probabilities),
        "decision": _DECISION_NAMES.take(pa.array((probabilities >= thresholds).view(np.int8))),
        "threshold": pa.array(thresholds),
        "caller": per_batch([batch.caller for batch in batches]),
    }
    return pa.table(columns, schema=PARQUET_SCHEMA)


def records_jsonl(batches: list[LoggedBatch]) -> tuple[memoryview, np.ndarray]:
    """The JSONL bytes of the batches' records, one object per scored row, and the byte
    offset at which each record ends (int64; so a writer knows where each batch starts and
    which records a write that stopped part-way holds in full).

    Built column by column with Arrow, not row by row: each row is the element-wise join of a
    few byte columns (the per-batch text, the prediction index, the features taken from
    precomputed texts of `_GROUP` features at a time, the probability, the decision), and the
    joined column's data buffer is the file's text. About 1 µs a row, against 11 µs for a
    DataFrame's `to_json`, which made the log cost more than the model. Probabilities are
    written as the shortest text that reads back to the same float (the model's float32).

    Arrow's fixed cost per call (~0.2 ms) would be most of a small request's, now that each
    request is written before it is answered: up to `SMALL_ROWS` rows are formatted by the
    same rules in plain Python (a test checks both give the same bytes).
    """
    rows = _Rows.of(batches)
    if len(rows.probabilities) <= SMALL_ROWS:
        return _small_records_jsonl(batches, rows)

    def per_batch(texts: list[str]) -> pa.Scalar | pa.Array:
        """One text per batch, repeated over its rows (a scalar for one batch)."""
        if len(texts) == 1:
            return pa.scalar(texts[0].encode(), pa.binary())
        return pa.array(texts, pa.binary()).take(np.repeat(np.arange(len(texts)), rows.counts))

    features, probabilities, thresholds = rows.features, rows.probabilities, rows.thresholds
    parts: list[pa.Scalar | pa.Array] = [
        per_batch([_head(batch) for batch in batches]),
        pa.array(rows.indexes.astype("S20"), pa.binary()),
        per_batch([_middle(batch) for batch in batches]),
    ]
    for columns, texts in _feature_texts():
        codes = np.zeros(len(features), dtype=np.int64)
        for column in columns:  # the group's values as one base-3 number
            codes *= 3
            codes += features[:, column] + 1
        parts.append(texts.take(codes))
    parts.append(pa.scalar(b',"probability":'))
    parts.append(pa.array(probabilities.astype("S32"), pa.binary()))
    parts.append(_DECISIONS.take((probabilities >= thresholds).view(np.int8)))
    parts.append(per_batch(_tails(batches)))
    joined = pc.binary_join_element_wise(*parts, pa.scalar(b""))
    if not len(joined):
        return memoryview(b""), np.zeros(0, np.int64)
    offsets = np.frombuffer(joined.buffers()[1], np.int32, len(joined) + 1, 4 * joined.offset)
    start, end = int(offsets[0]), int(offsets[-1])
    return memoryview(joined.buffers()[2])[start:end], offsets[1:].astype(np.int64) - start


SMALL_ROWS = 64
"""Up to this many rows in one write, the records are formatted in plain Python."""


def _head(batch: LoggedBatch) -> str:
    """A record's text up to its prediction index."""
    return (
        f'{{"time":"{_utc_text(batch.time)}","request_id":{_json(batch.request_id)},'
        f'"prediction_id":{_json(batch.request_id)[:-1]}-'
    )


def _middle(batch: LoggedBatch) -> str:
    """A record's text from after its prediction index to its features."""
    return (
        f'","source":{_json(batch.source)},"model_version":{_json(batch.model_version)},'
        f'"model_sha256":{_json(batch.model_sha256)}'
    )


def _tails(batches: list[LoggedBatch]) -> list[str]:
    """Per batch, its records' text after the decision: threshold, caller, end of line."""
    tail = [repr(batch.threshold) for batch in batches]
    if any(batch.caller is not None for batch in batches):
        tail = [f'{t},"caller":{_json(b.caller)}' for t, b in zip(tail, batches, strict=True)]
    return [f"{t}}}\n" for t in tail]


def _small_records_jsonl(batches: list[LoggedBatch], rows: _Rows) -> tuple[memoryview, np.ndarray]:
    """`records_jsonl` for a few rows, formatted row by row (the same bytes)."""
    texts = _feature_value_texts()
    decisions = [d.decode() for d in _DECISIONS.to_pylist()]
    probabilities = rows.probabilities.astype("S32").tolist()
    flags = (rows.probabilities >= rows.thresholds).tolist()
    indexes = rows.indexes.tolist()
    features = (rows.features.astype(np.int64) + 1).tolist()
    lines = []
    row = 0
    for batch, count, tail in zip(batches, rows.counts, _tails(batches), strict=True):
        head, middle = _head(batch), _middle(batch)
        for _ in range(count):
            values = "".join([column[v] for column, v in zip(texts, features[row], strict=True)])
            lines.append(
                f'{head}{indexes[row]}{middle}{values},"probability":'
                f"{probabilities[row].decode()}{decisions[flags[row]]}{tail}".encode()
            )
            row += 1
    data = b"".join(lines)
    return memoryview(data), np.cumsum([len(line) for line in lines], dtype=np.int64)


@cache
def _feature_value_texts() -> list[tuple[str, str, str]]:
    """Per feature, the text `,"name":v` for v = -1, 0, 1."""
    return [tuple(f',"{name}":{v}' for v in (-1, 0, 1)) for name in FEATURES]  # type: ignore[misc]


_GROUP = 6
"""Features formatted together: 3**6 = 729 precomputed texts per group of six."""
_DECISION_NAMES = pa.array([CLASS_NAMES[0], CLASS_NAMES[1]], pa.string())
_DECISIONS = pa.array(
    [f',"decision":"{CLASS_NAMES[flag]}","threshold":'.encode() for flag in (0, 1)], pa.binary()
)


@cache
def _feature_texts() -> list[tuple[list[int], pa.Array]]:
    """Per group of `_GROUP` features: their positions, and the text `,"name":value` of every
    combination of their values in {-1, 0, 1}, indexed by the values read as a base-3 number."""
    groups = []
    for start in range(0, len(FEATURES), _GROUP):
        names = FEATURES[start : start + _GROUP]
        texts = [
            "".join(f',"{name}":{value}' for name, value in zip(names, values, strict=True))
            for values in itertools.product((-1, 0, 1), repeat=len(names))
        ]
        groups.append((list(range(start, start + len(names))), pa.array(texts, pa.binary())))
    return groups


def _json(value: object) -> str:
    return json.dumps(value)


def _utc_text(time: datetime) -> str:
    return time.isoformat(timespec="microseconds").replace("+00:00", "Z")
