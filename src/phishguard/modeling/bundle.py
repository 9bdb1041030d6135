"""The model bundle: the one owner of a trained model's files, their check, and its predict.

A bundle is a folder with the model file (XGBoost's native UBJSON, or a byte-stable skops file
loaded against `zoo.SKOPS_TRUSTED`; never a pickle), its manifest `package.json` and
`package.sha256`, the sha256 of both in `sha256sum` format. The manifest carries the input
columns (the 30 features, maybe followed by the engineered counts), feature order, label
mapping, schema version, training provenance and the model's sha256; once evaluated, also the
operating threshold, operating point and metrics. `train` writes a bundle (`save`), evaluate
and package complete it (`write_evaluated`); everything that uses a model loads it with `load`.

`verify` checks every listed file's hash, then every value a scorer trusts, with one message
format (`<file>: <problem>; re-run ...`). Cheap (no XGBoost import), so a server can run it
before it starts any worker. This detects a bundle that was altered or damaged after it was
written (any edit of one file); it is not a signature against someone who can rewrite all
three files.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phishguard import PhishguardError
from phishguard.contract.schema import FEATURES, SCHEMA_VERSION, TARGET, label_mapping
from phishguard.io import write_atomic
from phishguard.modeling.features import as_matrix, check_input_columns, model_inputs
from phishguard.modeling.skops_bytes import canonical_skops
from phishguard.modeling.zoo import SKOPS_TRUSTED, XGBOOST_NATIVE
from phishguard.provenance import IntegrityError, file_sha256, read_json, write_json

MANIFEST_FILE = "package.json"
CHECKSUM_FILE = "package.sha256"
MODEL_SUFFIXES = (".ubj", ".skops")
# Numbers in the metrics and operating point that are counts (the bootstrap's draws, groups
# and seed among them); `log_loss` (and its spread or interval) is any loss >= 0; every other
# number there is a rate, probability or score in [0, 1].
COUNT_KEYS = frozenset({"n", "rows", "tp", "fp", "tn", "fn", "groups", "resamples", "seed"})
LOSS_KEYS = frozenset({"log_loss"})
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHECKSUM_LINE = re.compile(r"([0-9a-f]{64}) [ *]([^/\\]+)")


class PackageError(PhishguardError, FileNotFoundError):
    """The model bundle is missing, incomplete or out of range; re-run the pipeline."""


def package_version(manifest: dict[str, Any]) -> str:
    """A content-derived BentoML version: the same package always gets the same tag."""
    text = json.dumps(manifest, sort_keys=True).encode()
    return hashlib.sha256(text).hexdigest()[:16]


@dataclass(frozen=True)
class Bundle:
    """A verified, loaded model and its manifest.

    `model` is an XGBoost `Booster` (scored with `inplace_predict`) or a fitted scikit-learn
    estimator. Its inputs are built from the 30 features by `features.model_inputs`, as the
    manifest's `input_columns` say.
    """

    model: Any
    manifest: dict[str, Any]

    @property
    def input_columns(self) -> tuple[str, ...]:
        return tuple(self.manifest["input_columns"])

    @cached_property  # hashing the manifest costs ~90 µs: once, not per scored request
    def version(self) -> str:
        """The package's content-derived version (its folder's name in the BentoML store)."""
        return package_version(self.manifest)

    @property
    def is_xgboost(self) -> bool:
        return hasattr(self.model, "inplace_predict")

    def inputs(self, matrix: np.ndarray) -> np.ndarray:
        """The model's input from a float32 matrix of the 30 features in canonical order."""
        return model_inputs(matrix, self.input_columns)

    def probability(self, matrix: np.ndarray) -> np.ndarray:
        """P(phishing) for each row of a float32 matrix of the 30 features, canonical order."""
        if len(matrix) == 0:  # the dtype the model gives: float32 for XGBoost, else float64
            return np.empty(0, dtype=np.float32 if self.is_xgboost else np.float64)
        if self.is_xgboost:
            return self.model.inplace_predict(self.inputs(matrix), validate_features=False)
        return self.model.predict_proba(self.inputs(matrix))[:, 1]

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """P(phishing) for each row of a table holding the 30 features (any column order)."""
        return self.probability(as_matrix(features))


def model_filename(name: str) -> str:
    return "model.ubj" if name in XGBOOST_NATIVE else "model.skops"


def save(model: Any, directory: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Write a fitted model as a bundle in `directory`; return the manifest as written.

    `manifest` describes the training (model_name, input_columns, ...); the model's file name
    and sha256 are added here.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / model_filename(manifest["model_name"])
    if path.suffix == ".ubj":
        model.save_model(path)
    else:
        import skops.io  # imported here: only scikit-learn models need it

        # Same model, same bytes: what lets two clones produce identical model files.
        write_atomic(path, canonical_skops(skops.io.dumps(model)))
    written = {**manifest, "model_file": path.name, "model_sha256": file_sha256(path)}
    seal(directory, written)
    return written


def evaluated_manifest(
    trained: dict[str, Any], operating_point: dict[str, Any], metrics: dict[str, Any]
) -> dict[str, Any]:
    """A trained bundle's manifest completed with evaluate's threshold and metrics."""
    return {
        **trained,
        "threshold": float(operating_point["threshold"]),
        "operating_point": operating_point,
        "metrics": metrics,
    }


def write_evaluated(source: Path, target: Path, manifest: dict[str, Any]) -> None:
    """Write the bundle `source` (its model file) into `target` with the evaluated `manifest`."""
    model_file = manifest["model_file"]
    if (source / model_file).resolve() != (target / model_file).resolve():
        shutil.copyfile(source / model_file, target / model_file)
    seal(target, manifest)


def seal(directory: Path, manifest: dict[str, Any]) -> None:
    """Write `manifest` into `directory`, then the sha256 of it and of its model file."""
    write_json(directory / MANIFEST_FILE, manifest)
    names = sorted([manifest["model_file"], MANIFEST_FILE])
    lines = [f"{file_sha256(directory / name)}  {name}\n" for name in names]
    write_atomic(directory / CHECKSUM_FILE, "".join(lines))


def verify(directory: Path, evaluated: bool = True) -> dict[str, Any]:
    """Check a bundle without loading its model; return its manifest.

    Raises `PackageError` for a missing file or a value out of range, naming the file and the
    value, and `IntegrityError` when a file's sha256 is not the one recorded when it was
    written. `evaluated` also requires the threshold, operating point and metrics.
    """
    manifest_path, sums = directory / MANIFEST_FILE, directory / CHECKSUM_FILE
    for path in (manifest_path, sums):
        if not path.is_file():
            raise PackageError(f"{path}: missing; re-run the package stage (`make pipeline`)")
    recorded = _read_checksums(sums)
    if MANIFEST_FILE not in recorded:
        raise PackageError(f"{sums}: does not cover {MANIFEST_FILE}; re-run the package stage")
    for name, expected in recorded.items():
        path = directory / name
        if not path.is_file():
            raise PackageError(f"{path}: missing; re-run the package stage (`make pipeline`)")
        actual = file_sha256(path)
        if actual != expected:
            raise IntegrityError(
                f"{path}: sha256 {actual[:12]}… does not match the packaged {expected[:12]}…; "
                "the package was altered after packaging — re-run the pipeline"
            )
    try:
        manifest = read_json(manifest_path)
        problem = manifest_problem(manifest, recorded, evaluated)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        problem = f"not a package manifest ({type(error).__name__}: {error})"
    if problem:
        raise PackageError(f"{manifest_path}: {problem}; re-run the package stage")
    return manifest


def load(directory: Path, nthread: int = 1, evaluated: bool = True) -> Bundle:
    """`verify` a bundle, then load its model; XGBoost with `nthread` predict threads.

    One thread is right for online scoring: on 2 cores XGBoost's 2-thread single-row predict
    was ~50x slower than one thread.
    """
    manifest = verify(directory, evaluated)
    path = directory / manifest["model_file"]
    if path.suffix == ".ubj":
        from xgboost import Booster  # imported here: ~0.5 s, and `verify` callers skip it

        model = Booster(params={"nthread": nthread})
        model.load_model(path)
        width = model.num_features()
    else:
        import skops.io  # imported here: only scikit-learn models need it

        model = skops.io.load(path, trusted=SKOPS_TRUSTED)
        width = int(model.n_features_in_)
    columns = manifest["input_columns"]
    if width != len(columns):
        raise PackageError(
            f"{directory / MANIFEST_FILE}: the model takes {width} inputs but input_columns "
            f"lists {len(columns)}; re-run the package stage"
        )
    return Bundle(model=model, manifest=manifest)


def manifest_problem(
    manifest: dict[str, Any], recorded: dict[str, str], evaluated: bool = True
) -> str | None:
    """What is wrong with a manifest's trusted values (None if nothing): `recorded` maps the
    bundle's file names to their sha256."""
    if evaluated:
        threshold = manifest["threshold"]
        if not _number(threshold) or not 0 < threshold < 1:
            return f"threshold {threshold!r} is outside (0, 1)"
        if manifest["operating_point"]["threshold"] != threshold:
            return "operating_point.threshold differs from threshold"
    if list(manifest["features"]) != list(FEATURES):
        return "feature order differs from phishguard.contract.schema"
    try:
        check_input_columns(manifest["input_columns"])
    except ValueError as error:
        return str(error)
    if manifest["label_mapping"] != label_mapping() or manifest["target"] != TARGET:
        return "label mapping differs from phishguard.contract.schema"
    if manifest["schema_version"] != SCHEMA_VERSION:
        return f"schema_version {manifest['schema_version']!r} is not {SCHEMA_VERSION}"
    rows = manifest["train_rows"]
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        return f"train_rows {rows!r} is not a positive integer"
    model_file, digest = manifest["model_file"], manifest["model_sha256"]
    if model_file not in recorded or not model_file.endswith(MODEL_SUFFIXES):
        return f"model_file {model_file!r} is not a model file the checksums cover"
    if (
        not isinstance(digest, str)
        or not _SHA256.fullmatch(digest)
        or recorded[model_file] != digest
    ):
        return f"model_sha256 {digest!r} is not the checksum of {model_file}"
    for section in ("operating_point", "metrics") if evaluated else ():
        problem = _numbers_problem(manifest[section], section)
        if problem:
            return problem
    return None


def _numbers_problem(value: Any, where: str) -> str | None:
    """The first number under `value` outside its range, by its dotted path."""
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _numbers_problem(item, f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(value, list | str) or value is None:
        return None
    parts = where.split(".")
    if parts[-1] in COUNT_KEYS:
        ok, allowed = isinstance(value, int) and not isinstance(value, bool) and value >= 0, "≥ 0"
    elif LOSS_KEYS.intersection(parts):
        ok, allowed = _number(value) and value >= 0, "≥ 0"
    else:
        ok, allowed = _number(value) and 0 <= value <= 1, "in [0, 1]"
    return None if ok else f"{where} = {value!r} is not a number {allowed}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _read_checksums(path: Path) -> dict[str, str]:
    recorded = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        match = _CHECKSUM_LINE.fullmatch(line)
        if not match or match.group(2) in (".", ".."):
            raise PackageError(f"{path}: line {number} is not '<sha256>  <file name>'")
        recorded[match.group(2)] = match.group(1)
    return recorded
