"""Scoring with the packaged model: load it once (sha256-verified), validate records, predict.

The service, the batch CLI and the benchmark all score through this module, so they share one
model loader and one set of checks, both derived from `phishguard.schema`. Records are checked
as a whole batch with numpy (no object per row), which keeps 1,000-row requests cheap.
"""

from __future__ import annotations

import difflib
import itertools
import operator
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phishguard import PhishguardError, paths
from phishguard.features import SIGNAL_COUNTS, with_signal_counts
from phishguard.packaging import PACKAGE_FILE
from phishguard.provenance import file_sha256, read_json
from phishguard.schema import CLASS_NAMES, DOMAINS, FEATURES

MAX_ROWS_ENV = "PHISHGUARD_MAX_ROWS"
DEFAULT_MAX_ROWS = 10_000
MAX_REPORTED_PROBLEMS = 10

_FEATURE_SET = frozenset(FEATURES)
_values_of = operator.itemgetter(*FEATURES)
# ALLOWED[j, v + 1] is True when value v ∈ {-1, 0, 1} is in feature j's domain.
_ALLOWED = np.array([[v in DOMAINS[name] for v in (-1, 0, 1)] for name in FEATURES], dtype=bool)
_COLUMN_INDEX = np.arange(len(FEATURES))


class PackageError(PhishguardError, FileNotFoundError):
    """The packaged model is missing or incomplete; run the pipeline (`make pipeline`)."""


class RecordError(PhishguardError, ValueError):
    """Some records do not match the schema; `problems` says which record and which field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        super().__init__("; ".join(shown) + (f"; and {more} more" if more > 0 else ""))


class TooManyRecordsError(PhishguardError, ValueError):
    """A request holds more records than the configured limit."""


def positive_int_from_env(name: str, default: int) -> int:
    """A positive integer setting from environment variable `name`, else `default`."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise PhishguardError(f"{name} must be a positive integer, got {text!r}")
    return int(text)


def max_rows_from_env() -> int:
    """The per-request row limit: `PHISHGUARD_MAX_ROWS`, else 10,000."""
    return positive_int_from_env(MAX_ROWS_ENV, DEFAULT_MAX_ROWS)


def latest_package(store: Path = paths.PACKAGE_STORE) -> Path:
    """The directory of the newest packaged model in a BentoML store (no bentoml import)."""
    pointer = store / "latest"
    if not pointer.is_file():
        raise PackageError(f"no packaged model in {store}; run `make pipeline` (package stage)")
    return store / pointer.read_text().strip()


class ExplanationUnavailableError(PhishguardError, ValueError):
    """The packaged model is not XGBoost, so it has no per-feature contributions."""


@dataclass(frozen=True)
class Scorer:
    """A loaded model with its operating threshold and package metadata.

    `model` is an XGBoost `Booster` (scored with `inplace_predict`, explained with its own
    contributions) or a fitted scikit-learn estimator loaded with skops. `engineered` says
    whether the model takes the two signal counts after the 30 features.
    """

    model: Any
    threshold: float
    metadata: dict[str, Any]
    engineered: bool = False

    @property
    def is_xgboost(self) -> bool:
        return hasattr(self.model, "inplace_predict")

    @property
    def input_names(self) -> tuple[str, ...]:
        return (*FEATURES, *SIGNAL_COUNTS) if self.engineered else FEATURES

    def inputs(self, matrix: np.ndarray) -> np.ndarray:
        """The model's input from a float32 matrix of the 30 features in canonical order."""
        return with_signal_counts(matrix) if self.engineered else matrix

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        """P(phishing) for each row of a float32 matrix in canonical feature order."""
        if len(matrix) == 0:
            return np.empty(0, dtype=np.float32)
        if self.is_xgboost:
            return self.model.inplace_predict(self.inputs(matrix), validate_features=False)
        return self.model.predict_proba(self.inputs(matrix))[:, 1]

    def decisions(self, matrix: np.ndarray) -> pd.DataFrame:
        """Columns phishing_probability, is_phishing and label, one row per matrix row."""
        proba = self.probability(matrix)
        flagged = proba >= self.threshold
        return pd.DataFrame(
            {
                "phishing_probability": proba,
                "is_phishing": flagged,
                "label": np.where(flagged, CLASS_NAMES[1], CLASS_NAMES[0]),
            }
        )

    def results(self, matrix: np.ndarray) -> list[dict[str, Any]]:
        """One result per row: probability, decision at the stored threshold, class name."""
        proba = self.probability(matrix)
        flagged = proba >= self.threshold
        return [
            {
                "phishing_probability": p,
                "is_phishing": f,
                "label": CLASS_NAMES[1] if f else CLASS_NAMES[0],
            }
            for p, f in zip(proba.tolist(), flagged.tolist(), strict=True)
        ]

    def results_json(self, matrix: np.ndarray) -> str:
        """`{"results": [...]}` as `results` gives it, formatted directly (no dicts, no encoder).

        `repr` of a float is the shortest round-tripping text, as `json.dumps` writes it.
        """
        proba = self.probability(matrix)
        flagged = (proba >= self.threshold).tolist()
        names = {
            True: f'true,"label":"{CLASS_NAMES[1]}"}}',
            False: f'false,"label":"{CLASS_NAMES[0]}"}}',
        }
        items = [
            f'{{"phishing_probability":{p!r},"is_phishing":{names[f]}'
            for p, f in zip(proba.tolist(), flagged, strict=True)
        ]
        return '{"results":[' + ",".join(items) + "]}"

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """XGBoost's SHAP contributions (log-odds of phishing), one column per input + bias."""
        if not self.is_xgboost:
            raise ExplanationUnavailableError(
                f"explanations need an XGBoost model; the packaged model is "
                f"{self.metadata.get('model_name')!r}"
            )
        from xgboost import DMatrix

        names = list(self.input_names)
        return self.model.predict(
            DMatrix(self.inputs(matrix), feature_names=names), pred_contribs=True
        )

    def explain(self, matrix: np.ndarray, top: int = 5) -> list[list[dict[str, Any]]]:
        """Per row, the `top` inputs that moved the score most (positive = towards phishing).

        Inputs are the 30 features and, for a model that takes them, the signal counts.
        """
        names = self.input_names
        contribs = self.contributions(matrix)[:, : len(names)]
        inputs = self.inputs(matrix)
        order = np.argsort(-np.abs(contribs), axis=1, kind="stable")[:, :top]
        return [
            [
                {
                    "feature": names[j],
                    "value": int(inputs[i, j]),
                    "contribution": round(float(contribs[i, j]), 6),
                }
                for j in order[i]
            ]
            for i in range(len(matrix))
        ]


def verify_package(directory: Path) -> dict[str, Any]:
    """Check a packaged model without loading it; return its manifest (`package.json`).

    Raises `PackageError` for a missing manifest or model file or a feature order other than
    `phishguard.schema`'s, and `IntegrityError` when the model file's sha256 is not the one
    recorded at packaging. Cheap (no XGBoost import), so a server can run it before it starts
    any worker.
    """
    manifest = directory / PACKAGE_FILE
    if not manifest.is_file():
        raise PackageError(f"{manifest}: missing; re-run the package stage")
    metadata = read_json(manifest)
    if list(metadata["features"]) != list(FEATURES):
        raise PackageError(f"{manifest}: feature order differs from phishguard.schema")
    model_path = directory / metadata["model_file"]
    if not model_path.is_file():
        raise PackageError(f"{model_path}: missing; re-run the package stage")
    actual = file_sha256(model_path)
    if actual != metadata["model_sha256"]:
        from phishguard.models import IntegrityError

        raise IntegrityError(
            f"{model_path}: sha256 {actual[:12]}… does not match the packaged "
            f"{metadata['model_sha256'][:12]}…; re-run the pipeline"
        )
    return metadata


def load_scorer(directory: Path | None = None, nthread: int = 1) -> Scorer:
    """Load a packaged model, verifying its sha256; one predict thread by default.

    One thread is right for online scoring: on 2 cores XGBoost's 2-thread single-row predict
    was ~50x slower than one thread (see the brief). XGBoost models are read from their native
    format, scikit-learn models with skops against the allow-list; never a pickle.
    """
    directory = latest_package() if directory is None else directory
    metadata = verify_package(directory)
    model_path = directory / metadata["model_file"]
    if model_path.suffix == ".ubj":
        from xgboost import Booster

        model = Booster(params={"nthread": nthread})
        model.load_model(model_path)
        width = model.num_features()
    else:
        from phishguard.models import load_model

        model = load_model(model_path, metadata["model_sha256"])
        width = int(model.n_features_in_)
    if width not in (len(FEATURES), len(FEATURES) + len(SIGNAL_COUNTS)):
        raise PackageError(f"{model_path}: the model takes {width} inputs; expected 30 or 32")
    return Scorer(
        model=model,
        threshold=float(metadata["threshold"]),
        metadata=metadata,
        engineered=width > len(FEATURES),
    )


def records_matrix(records: Sequence[Mapping[str, Any]], max_rows: int) -> np.ndarray:
    """Validate JSON records against the schema as one batch; return a float32 matrix.

    Raises `TooManyRecordsError` over `max_rows`, and `RecordError` naming the record (0-based, in
    request order) and field of every problem: missing, unknown/misspelled, not an integer,
    or outside the feature's domain. Key order within a record does not matter.
    """
    if len(records) > max_rows:
        raise TooManyRecordsError(f"{len(records)} records in one request; the limit is {max_rows}")
    if not records:
        raise RecordError(["no records: send at least one"])
    try:
        if any(len(r) != len(FEATURES) for r in records):
            raise KeyError
        # One flat list of values in canonical order: cheaper than a list of row tuples.
        flat = list(itertools.chain.from_iterable(map(_values_of, records)))
    except (KeyError, TypeError):
        raise RecordError(_shape_problems(records)) from None
    # Checked by type, not converted: JSON true/1.0/"1" are not integers here.
    if not set(map(type, flat)) <= {int}:
        raise RecordError(_type_problems([_values_of(r) for r in records]))
    try:
        values = np.fromiter(flat, dtype=np.int64, count=len(flat)).reshape(-1, len(FEATURES))
    except OverflowError:
        raise RecordError(_overflow_problems([_values_of(r) for r in records])) from None
    inside = (values >= -1) & (values <= 1)
    allowed = inside & _ALLOWED[_COLUMN_INDEX, np.clip(values + 1, 0, 2)]
    if not allowed.all():
        bad = np.argwhere(~allowed)
        raise RecordError([_domain_problem(int(i), int(j), values[i, j]) for i, j in bad])
    return values.astype(np.float32)


def frame_matrix(features: pd.DataFrame) -> np.ndarray | None:
    """The float32 matrix of a table whose 30 feature columns are all clean, in-domain integers.

    Returns None when any cell is not (text that is not an integer, a float, a bool, a
    missing value, a value out of domain): the caller then runs the pipeline's `quarantine`
    for per-row reasons. Columns must already have been checked.
    """
    columns = features.loc[:, list(FEATURES)]
    try:
        if all(
            pd.api.types.is_integer_dtype(t) and not pd.api.types.is_bool_dtype(t)
            for t in columns.dtypes
        ):
            values = columns.to_numpy(dtype=np.int64)
        else:  # text (CSV): bools become 'True' and NaN 'nan', which do not parse
            values = columns.to_numpy(dtype=str).astype(np.int64)
    except (ValueError, TypeError, OverflowError):
        return None
    inside = (values >= -1) & (values <= 1)
    if not (inside & _ALLOWED[_COLUMN_INDEX, np.clip(values + 1, 0, 2)]).all():
        return None
    return values.astype(np.float32)


def _shape_problems(records: Sequence[Any]) -> list[str]:
    problems = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            problems.append(f"record {index}: expected an object of the 30 features")
            continue
        missing = [f for f in FEATURES if f not in record]
        extra = [k for k in record if k not in _FEATURE_SET]
        for name in extra:
            near = difflib.get_close_matches(str(name), missing, n=1, cutoff=0.75)
            if near:
                missing.remove(near[0])
                problems.append(f"record {index}: unknown field {name!r} (misspelled {near[0]!r}?)")
            else:
                problems.append(f"record {index}: unknown field {name!r}")
        problems += [f"record {index}: missing field {name!r}" for name in missing]
    return problems


def _type_problems(rows: list[tuple[Any, ...]]) -> list[str]:
    return [
        f"record {i}: field {FEATURES[j]!r} must be an integer, got {value!r}"
        for i, row in enumerate(rows)
        for j, value in enumerate(row)
        if type(value) is not int
    ]


def _domain_problem(index: int, column: int, value: int) -> str:
    name = FEATURES[column]
    domain = ", ".join(map(str, DOMAINS[name]))
    return f"record {index}: field {name!r} = {value} is not in {{{domain}}}"


def _overflow_problems(rows: list[tuple[int, ...]]) -> list[str]:
    """The values beyond int64, named by record and field (too large to print in full)."""
    problems = []
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if value.bit_length() >= 64:
                shown = (
                    str(value)
                    if value.bit_length() < 128
                    else f"an integer of {value.bit_length()} bits"
                )
                problems.append(far_outside_problem(i, FEATURES[j], shown))
    return problems


def far_outside_problem(index: int, name: str, shown: str) -> str:
    """The problem of a value far beyond feature `name`'s domain, `shown` as text: for values
    past int64 here, and for numbers too long to parse (`phishguard.json_numbers`)."""
    domain = ", ".join(map(str, DOMAINS[name]))
    return f"record {index}: field {name!r} = {shown} is far outside {{{domain}}}"
