"""MLflow tracking: one run per trained model, holding its params, every metric, the model and
where it came from.

The evaluate stage records the run: only there do the params, the fitted model and every test
and CV metric exist together, so one run holds all of them. Nothing MLflow returns (run ids,
timestamps) is written into a DVC output, so models and metrics stay byte-identical across
clones.

Where runs go: `MLFLOW_TRACKING_URI` when set, else the git-ignored `mlflow.db` (sqlite) at the
repository root — the parent repository's root during a queued `dvc exp run`, so sweeps land in
one store. If the configured store cannot be reached, the run goes to that local file instead
and a warning says so; if even that fails, a warning says the run was not recorded. Tracking
never fails the stage: the model is already on disk, as DVC's output of `train`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

EXPERIMENT = "phishguard"
LOCAL_STORE = "mlflow.db"
# Fail fast when a tracking server is down: MLflow's defaults retry for minutes.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
}


def repository_root() -> Path:
    """The repository whose `mlflow.db` holds local runs (DVC_ROOT in queued experiments)."""
    return Path(os.environ.get("DVC_ROOT") or ".").resolve()


def local_uri() -> str:
    """The git-ignored sqlite store at the repository root."""
    return f"sqlite:///{repository_root() / LOCAL_STORE}"


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else the local sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI", "").strip() or local_uri()


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level with dotted keys: {"model": {"name": x}} → {"model.name": x}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def numeric_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Every number in the metrics document, flattened (`test.accuracy`, `cv.roc_auc`, …)."""
    return {
        name: float(value)
        for name, value in flatten(metrics).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def run_tags(model_metadata: Mapping[str, Any], data_sha256: str) -> dict[str, str]:
    """Provenance tags: git revision, data content hash, DVC experiment, model identity."""
    return {
        "git_revision": str(model_metadata.get("git_revision", "unknown")),
        "data_sha256": data_sha256,
        "train_data_sha256": str(model_metadata.get("train_data_sha256", "")),
        "dvc_experiment": os.environ.get("DVC_EXP_NAME", "workspace"),
        "dvc_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "model_name": str(model_metadata.get("model_name", "")),
        "model_sha256": str(model_metadata.get("model_sha256", "")),
    }


def pip_requirements(model_name: str) -> list[str]:
    """Exact requirements for the logged model; given explicitly, MLflow skips its slow
    dependency inference."""
    packages = ["numpy", "scikit-learn", "skops"]
    if model_name == "xgboost":
        packages = ["numpy", "xgboost-cpu"]
    elif model_name == "soft_voting":  # its members may include XGBoost
        packages.append("xgboost-cpu")
    return [f"{name}=={metadata.version(name)}" for name in packages]


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise writers of one local sqlite store (queued sweeps run stages in parallel, and
    two processes creating a fresh MLflow schema at once collide)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock_path = Path(uri.removeprefix("sqlite:///") + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _log_run(
    uri: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    tags: Mapping[str, str],
    model: Any,
    model_dir: Path,
    extra_files: list[Path],
) -> str:
    import mlflow

    with _store_lock(uri):
        mlflow.set_tracking_uri(uri)
        if uri.startswith("sqlite:///") and mlflow.get_experiment_by_name(EXPERIMENT) is None:
            # Artifacts beside the store, not in the cwd: a queued experiment's temporary
            # workspace is deleted after its run.
            artifacts = Path(uri.removeprefix("sqlite:///")).parent / "mlruns"
            mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts.as_uri())
        mlflow.set_experiment(EXPERIMENT)
        run_name = tags["dvc_experiment"] if tags["dvc_experiment"] != "workspace" else None
        with mlflow.start_run(run_name=run_name) as run:
            mlflow.set_tags(dict(tags))
            mlflow.log_params({k: "null" if v is None else v for k, v in flatten(params).items()})
            mlflow.log_metrics(numeric_metrics(metrics))
            _log_model(model, tags["model_name"])
            mlflow.log_artifacts(str(model_dir), artifact_path="model_files")
            for path in extra_files:
                if path.exists():
                    mlflow.log_artifact(str(path))
            return run.info.run_id


def _log_model(model: Any, model_name: str) -> None:
    requirements = pip_requirements(model_name)
    if model_name == "xgboost":
        import mlflow.xgboost

        mlflow.xgboost.log_model(
            model, name="model", model_format="ubj", pip_requirements=requirements
        )
        return
    import mlflow.sklearn

    from phishguard.models import SKOPS_TRUSTED

    mlflow.sklearn.log_model(
        model,
        name="model",
        serialization_format="skops",
        skops_trusted_types=list(SKOPS_TRUSTED),
        pip_requirements=requirements,
    )


def record_run(
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    tags: Mapping[str, str],
    model: Any,
    model_dir: Path,
    extra_files: list[Path] | None = None,
) -> tuple[str, str] | None:
    """Log one run; return (tracking URI, run id), or None if no store could take it.

    Never raises: an unreachable store means a warning and the local fallback.
    """
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    uris = [tracking_uri()]
    if uris[0] != local_uri():
        uris.append(local_uri())
    for position, uri in enumerate(uris):
        try:
            run_id = _log_run(uri, params, metrics, tags, model, model_dir, extra_files or [])
        except Exception as error:  # any failure of the store: a warning, never a failed stage
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            detail = f"{type(error).__name__}: {first_line[:200]}"
            if position + 1 < len(uris):
                log.warning(
                    "WARNING: MLflow tracking at %s is unreachable (%s); logging this run to the "
                    "local fallback %s instead",
                    uri,
                    detail,
                    uris[position + 1],
                )
            else:
                log.warning(
                    "WARNING: MLflow tracking failed at %s (%s); this run was not recorded. The "
                    "model and metrics are safe in %s and reports/metrics.json",
                    uri,
                    detail,
                    model_dir,
                )
            continue
        log.info("MLflow run %s recorded at %s (experiment '%s')", run_id, uri, EXPERIMENT)
        return uri, run_id
    return None
