"""The one source of truth for the data's shape: features, domains, label mapping, schema.

Validate, featurize, train, evaluate, the service and the batch CLI all import these names,
so a change here is a change everywhere.
"""

from __future__ import annotations

import hashlib
from types import MappingProxyType

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1

TERNARY = (-1, 0, 1)
BINARY = (-1, 1)
ZERO_ONE = (0, 1)

# Canonical column order, spelled exactly as the UCI source spells it (typos included).
_TERNARY_FEATURES = frozenset(
    {
        "URL_Length",
        "having_Sub_Domain",
        "SSLfinal_State",
        "URL_of_Anchor",
        "Links_in_tags",
        "SFH",
        "web_traffic",
        "Links_pointing_to_page",
    }
)
FEATURES: tuple[str, ...] = (
    "having_IP_Address",
    "URL_Length",
    "Shortining_Service",
    "having_At_Symbol",
    "double_slash_redirecting",
    "Prefix_Suffix",
    "having_Sub_Domain",
    "SSLfinal_State",
    "Domain_registeration_length",
    "Favicon",
    "port",
    "HTTPS_token",
    "Request_URL",
    "URL_of_Anchor",
    "Links_in_tags",
    "SFH",
    "Submitting_to_email",
    "Abnormal_URL",
    "Redirect",
    "on_mouseover",
    "RightClick",
    "popUpWidnow",
    "Iframe",
    "age_of_domain",
    "DNSRecord",
    "web_traffic",
    "Page_Rank",
    "Google_Index",
    "Links_pointing_to_page",
    "Statistical_report",
)

LABEL = "Result"
"""The raw label column, as the source spells it."""
TARGET = "is_phishing"
"""The model's target: 1 = phishing (the positive class in every metric), 0 = legitimate."""

RESULT_PHISHING = -1
RESULT_LEGITIMATE = 1
CLASS_NAMES = MappingProxyType({0: "legitimate", 1: "phishing"})


def label_mapping() -> dict[str, object]:
    """The label mapping as recorded with a model (training writes it, serving checks it)."""
    return {
        "source_column": LABEL,
        "phishing": RESULT_PHISHING,
        "legitimate": RESULT_LEGITIMATE,
        "target_classes": {str(k): v for k, v in CLASS_NAMES.items()},
    }


COLUMNS: tuple[str, ...] = (*FEATURES, LABEL)

MAX_CELL_CHARS = 64
"""The longest cell any entry point reads (CSV, Parquet, JSON). Every valid value is a small
integer of at most 2 characters; the cap keeps memory bounded by the row count, never by the
longest cell, and keeps error messages short. A longer cell rejects its row, naming the field."""

ROW_PROBLEM = "_row_problem"
"""The column the CSV reader adds to a chunk holding a row it could not split into the
header's columns (wrong field count, a cell over `MAX_CELL_CHARS`): the reason, else missing.
Validation quarantines such a row with that reason; its cells are all missing."""


def too_long_problem(field: str, characters: int | str) -> str:
    """The reason a cell over `MAX_CELL_CHARS` rejects its row; `field` as it is to be shown."""
    return f"field {field} has {characters} characters; the limit is {MAX_CELL_CHARS}"


def clipped(value: object) -> str:
    """`value` as text for a message or a rejects file, cut at `MAX_CELL_CHARS` characters."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= MAX_CELL_CHARS:
        return text
    return f"{text[:MAX_CELL_CHARS]}… ({len(text)} characters)"


def _domain(column: str) -> tuple[int, ...]:
    if column in _TERNARY_FEATURES:
        return TERNARY
    if column == "Redirect":
        return ZERO_ONE
    return BINARY


DOMAINS: MappingProxyType[str, tuple[int, ...]] = MappingProxyType(
    {column: _domain(column) for column in COLUMNS}
)
"""Every allowed value of every column, features and label."""


def to_target(result: pd.Series) -> np.ndarray:
    """Map the raw `Result` column (-1 phishing, 1 legitimate) to the 0/1 target."""
    unknown = set(pd.unique(result)) - {RESULT_PHISHING, RESULT_LEGITIMATE}
    if unknown:
        raise ValueError(f"{LABEL} has values outside {{-1, 1}}: {sorted(unknown)}")
    return (result.to_numpy() == RESULT_PHISHING).astype(np.int8)


def feature_vector_ids(features: pd.DataFrame) -> np.ndarray:
    """One integer per row, equal exactly when the rows' 30 feature values are equal.

    Used as the group in every split, so identical feature vectors never straddle train and
    test.
    """
    values = features.loc[:, list(FEATURES)].to_numpy(dtype=np.int8)
    # Base-3 encoding of the 30 values shifted to {0, 1, 2}: exact and collision-free.
    weights = 3 ** np.arange(len(FEATURES), dtype=np.int64)
    return (values.astype(np.int64) + 1) @ weights


def row_ids(rows: pd.DataFrame) -> np.ndarray:
    """One integer per row, equal exactly when the rows' 30 features and label are equal."""
    return feature_vector_ids(rows) * 2 + (rows[LABEL].to_numpy() == RESULT_PHISHING)


class ContentHash:
    """`content_sha256` fed chunk by chunk: the same digest as for the concatenated table."""

    def __init__(self, columns: list[str] | tuple[str, ...]) -> None:
        self._digest = hashlib.sha256(",".join(map(str, columns)).encode())

    def update(self, chunk: pd.DataFrame) -> None:
        self._digest.update(chunk.to_csv(index=False, header=False, lineterminator="\n").encode())

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def content_sha256(table: pd.DataFrame) -> str:
    """A hash of a table's content (column names, order and values), independent of file format."""
    digest = ContentHash(list(table.columns))
    digest.update(table)
    return digest.hexdigest()
