"""The package stage's core: the evaluated model + everything needed to serve it, as one unit.

The unit is a BentoML model (`phishguard:<version>`) in the repository's own model store
(`models/bentoml/`, so `bentoml build` can bundle it). Its folder is the trained model bundle
(`phishguard.modeling.bundle`) with evaluate's threshold, operating point and metrics added to
its manifest. The version is derived from the manifest's content, so packaging the same model
twice gives the same tag.

A new package is built and verified in a staging folder of the same store, then switched in
with renames; the served package is removed only after that, so a failed run leaves it whole.
`phishguard.modeling.bundle.verify` checks a package: what the service and the batch CLI trust.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from phishguard import PhishguardError, paths
from phishguard.io import atomic_path
from phishguard.modeling.bundle import (
    PackageError,
    evaluated_manifest,
    manifest_problem,
    package_version,
    verify,
    write_evaluated,
)
from phishguard.provenance import read_json

LATEST = "latest"  # BentoML's pointer to the newest version of a model, in its store


def package_model(
    model_dir: Path = paths.MODEL_DIR,
    operating_point: Path = paths.OPERATING_POINT,
    metrics: Path = paths.METRICS,
    bentoml_home: Path = paths.BENTOML_HOME,
) -> Path:
    """Import the evaluated model into the BentoML store under `bentoml_home`; return its folder.

    Built and verified in a staging store beside the real one, then renamed into place and
    made `latest`; older versions are removed last. Any failure before the switch leaves the
    store as it was. Sets `BENTOML_HOME` for this process before bentoml is imported (bentoml
    reads it once).
    """
    manifest = candidate_manifest(model_dir, operating_point, metrics)
    version = package_version(manifest)
    os.environ["BENTOML_HOME"] = str(bentoml_home.resolve())
    import bentoml
    from bentoml._internal.models.model import ModelStore

    store = bentoml_home / "models" / paths.PACKAGE_NAME
    store.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=bentoml_home))
    try:
        framework = "xgboost" if manifest["model_file"].endswith(".ubj") else "scikit-learn"
        labels = {"framework": framework, "model": manifest["model_name"], "stage": "evaluated"}
        with bentoml.models.create(
            f"{paths.PACKAGE_NAME}:{version}",
            labels=labels,
            metadata=_summary(manifest),
            _model_store=ModelStore(staging),
        ) as model:
            write_evaluated(model_dir, Path(model.path), manifest)
        built = staging / paths.PACKAGE_NAME / version
        verify(built)
        return _switch_to(built, store)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def candidate_manifest(
    model_dir: Path = paths.MODEL_DIR,
    operating_point: Path = paths.OPERATING_POINT,
    metrics: Path = paths.METRICS,
) -> dict[str, Any]:
    """The manifest the package of the evaluated model in `model_dir` would carry (verified
    first): what the promotion gate judges before anything is written."""
    trained = verify(model_dir, evaluated=False)
    manifest = evaluated_manifest(trained, read_json(operating_point), read_json(metrics))
    # The trained bundle's checksums were just verified: its model file is the one recorded.
    recorded = {manifest["model_file"]: manifest["model_sha256"]}
    problem = manifest_problem(manifest, recorded, evaluated=True)
    if problem:
        raise PackageError(f"{operating_point}, {metrics}: {problem}; re-run the evaluate stage")
    return manifest


def _switch_to(built: Path, store: Path) -> Path:
    """Move the verified package `built` into `store`, make it `latest`, then drop the rest."""
    store.mkdir(exist_ok=True)
    target = store / built.name
    if target.exists():
        try:  # the same content packaged before: keep it if it is still whole
            verify(target)
        except PhishguardError:  # damaged: replace it (renamed aside, removed with staging)
            target.rename(built.parent / f"{built.name}.damaged")
            built.rename(target)
    else:
        built.rename(target)
    with atomic_path(store / LATEST) as pointer:  # readers see the old version or the new one
        pointer.write_text(built.name)
    for other in store.iterdir():
        if other.is_dir() and other.name != built.name:
            shutil.rmtree(other, ignore_errors=True)
    return target


def _summary(manifest: dict[str, Any]) -> dict[str, Any]:
    """What `bentoml models get` shows about the package."""
    return {
        "threshold": manifest["threshold"],
        "model_sha256": manifest["model_sha256"],
        "train_data_sha256": manifest["train_data_sha256"],
        "test_roc_auc": metrics_value(manifest, "roc_auc"),
        "test_accuracy": metrics_value(manifest, "accuracy"),
    }


def metrics_value(manifest: dict[str, Any], name: str) -> float | None:
    """A test-split metric from the manifest, or None when evaluate did not report it."""
    value = manifest.get("metrics", {}).get("test", {}).get(name)
    return None if value is None else float(value)
