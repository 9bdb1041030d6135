"""What the service and the batch CLI trust in a packaged model, and its verification.

A package folder holds the model file, `package.json` (threshold, metrics, feature order,
label mapping, ...) and `package.sha256`, which lists the sha256 of both in `sha256sum`
format. `verify_package` checks every listed file's hash, then every value the service
trusts: the feature order, label mapping and schema version against `phishguard.contract.schema`, the
threshold in (0, 1), and every number of the operating point and metrics in its range. Cheap
(no XGBoost import), so a server can run it before it starts any worker.

This detects a package that was altered or damaged after packaging (any edit of one file); it
is not a signature against someone who can rewrite all three files.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from phishguard import PhishguardError
from phishguard.contract.schema import FEATURES, SCHEMA_VERSION, TARGET, label_mapping
from phishguard.provenance import IntegrityError, file_sha256, read_json

PACKAGE_FILE = "package.json"
CHECKSUM_FILE = "package.sha256"
MODEL_SUFFIXES = (".ubj", ".skops")
# Numbers in the metrics and operating point that are counts (the bootstrap's draws, groups
# and seed among them); `log_loss` (and its spread or interval) is any loss >= 0; every other
# number there is a rate, probability or score in [0, 1].
COUNT_KEYS = frozenset({"n", "tp", "fp", "tn", "fn", "groups", "resamples", "seed"})
LOSS_KEYS = frozenset({"log_loss"})
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHECKSUM_LINE = re.compile(r"([0-9a-f]{64}) [ *]([^/\\]+)")


class PackageError(PhishguardError, FileNotFoundError):
    """The packaged model is missing, incomplete or out of range; re-run the package stage."""


def seal(directory: Path, names: list[str]) -> None:
    """Write `package.sha256`: the sha256 of each file `names` in `directory`."""
    lines = [f"{file_sha256(directory / name)}  {name}\n" for name in sorted(names)]
    (directory / CHECKSUM_FILE).write_text("".join(lines), encoding="utf-8")


def verify_package(directory: Path) -> dict[str, Any]:
    """Check a packaged model without loading it; return its manifest (`package.json`).

    Raises `PackageError` for a missing file or a value out of range, naming the file and the
    value, and `IntegrityError` when a file's sha256 is not the one recorded at packaging.
    """
    manifest_path, sums = directory / PACKAGE_FILE, directory / CHECKSUM_FILE
    for path in (manifest_path, sums):
        if not path.is_file():
            raise PackageError(f"{path}: missing; re-run the package stage (`make pipeline`)")
    recorded = _read_checksums(sums)
    if PACKAGE_FILE not in recorded:
        raise PackageError(f"{sums}: does not cover {PACKAGE_FILE}; re-run the package stage")
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
        problem = manifest_problem(manifest, recorded)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        problem = f"not a package manifest ({type(error).__name__}: {error})"
    if problem:
        raise PackageError(f"{manifest_path}: {problem}; re-run the package stage")
    return manifest


def manifest_problem(manifest: dict[str, Any], recorded: dict[str, str]) -> str | None:
    """What is wrong with a manifest's trusted values (None if nothing): `recorded` maps the
    package's file names to their sha256."""
    threshold = manifest["threshold"]
    if not _number(threshold) or not 0 < threshold < 1:
        return f"threshold {threshold!r} is outside (0, 1)"
    if manifest["operating_point"]["threshold"] != threshold:
        return "operating_point.threshold differs from threshold"
    if list(manifest["features"]) != list(FEATURES):
        return "feature order differs from phishguard.contract.schema"
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
    for section in ("operating_point", "metrics"):
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
