"""The package stage's core: the evaluated model + everything needed to serve it, as one unit.

The unit is a BentoML model (`phishguard:<version>`) in the repository's own model store
(`models/bentoml/`, so `bentoml build` can bundle it). Its folder holds `model.ubj` and
`package.json`: feature order, label mapping, operating threshold, metrics, training-data
hash, git revision and the model's sha256. The version is derived from that content, so
packaging the same model twice gives the same tag.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from phishguard import paths
from phishguard.provenance import read_json, write_json

PACKAGE_FILE = "package.json"

PACKAGE_KEYS = (
    "model_name",
    "model_file",
    "model_sha256",
    "features",
    "label_mapping",
    "target",
    "schema_version",
    "hyperparameters",
    "train_rows",
    "train_data_sha256",
    "git_revision",
    "library_versions",
)


def package_metadata(
    model_metadata: dict[str, Any], operating_point: dict[str, Any], metrics: dict[str, Any]
) -> dict[str, Any]:
    """The served model's manifest, from train's metadata and evaluate's outputs."""
    manifest = {key: model_metadata[key] for key in PACKAGE_KEYS}
    manifest["threshold"] = float(operating_point["threshold"])
    manifest["operating_point"] = operating_point
    manifest["metrics"] = metrics
    return manifest


def package_version(manifest: dict[str, Any]) -> str:
    """A content-derived BentoML version: the same package always gets the same tag."""
    text = json.dumps(manifest, sort_keys=True).encode()
    return hashlib.sha256(text).hexdigest()[:16]


def package_model(
    model_dir: Path = paths.MODEL_DIR,
    operating_point: Path = paths.OPERATING_POINT,
    metrics: Path = paths.METRICS,
    bentoml_home: Path = paths.BENTOML_HOME,
) -> Path:
    """Import the evaluated model into the BentoML store under `bentoml_home`; return its folder.

    Sets `BENTOML_HOME` for this process before bentoml is imported (bentoml reads it once).
    """
    manifest = package_metadata(
        read_json(model_dir / "metadata.json"), read_json(operating_point), read_json(metrics)
    )
    version = package_version(manifest)
    os.environ["BENTOML_HOME"] = str(bentoml_home.resolve())
    import bentoml

    tag = f"{paths.PACKAGE_NAME}:{version}"
    with contextlib.suppress(bentoml.exceptions.NotFound):
        bentoml.models.delete(tag)  # re-packaging the same content replaces it
    framework = "xgboost" if manifest["model_file"].endswith(".ubj") else "scikit-learn"
    labels = {"framework": framework, "model": manifest["model_name"], "stage": "evaluated"}
    summary = {
        "threshold": manifest["threshold"],
        "model_sha256": manifest["model_sha256"],
        "train_data_sha256": manifest["train_data_sha256"],
        "git_revision": manifest["git_revision"],
        "test_roc_auc": metrics_value(manifest, "roc_auc"),
        "test_accuracy": metrics_value(manifest, "accuracy"),
    }
    with bentoml.models.create(tag, labels=labels, metadata=summary) as model:
        target = Path(model.path)
        shutil.copyfile(model_dir / manifest["model_file"], target / manifest["model_file"])
        write_json(target / PACKAGE_FILE, manifest)
    return bentoml_home / "models" / paths.PACKAGE_NAME / version


def metrics_value(manifest: dict[str, Any], name: str) -> float | None:
    """A test-split metric from the manifest, or None when evaluate did not report it."""
    value = manifest.get("metrics", {}).get("test", {}).get(name)
    return None if value is None else float(value)
