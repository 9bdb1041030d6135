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

The run's model is a pyfunc (`phishguard.modeling.mlflow_pyfunc`): the 30 features in, the phishing
probability and the decision at the operating threshold out, with a signature, an input example
and the package's own files as its artifact. Each one is registered as a new version of
`phishguard`; the package stage moves the alias `champion` to the version it serves
(`set_champion`). Registry failures, like tracking failures, are one warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from phishguard import first_line
from phishguard.contract.schema import FEATURES
from phishguard.io import exclusive_lock
from phishguard.modeling import mlflow_pyfunc
from phishguard.modeling.zoo import XGBOOST_NATIVE
from phishguard.provenance import git_revision

log = logging.getLogger(__name__)

EXPERIMENT = "phishguard"
REGISTERED_MODEL = "phishguard"
CHAMPION = "champion"  # the alias of the version the package stage serves
REGISTRY_TAGS = ("git_revision", "data_sha256", "dvc_experiment", "model_sha256", "package_version")
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("long", name) for name in FEATURES]),
    outputs=Schema(
        [
            ColSpec("double", "phishing_probability"),
            ColSpec("boolean", "is_phishing"),
            ColSpec("string", "label"),
        ]
    ),
)
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
    """Provenance tags: git revision (of the checkout evaluating now: the model's manifest
    carries none), data content hash, DVC experiment, model identity."""
    return {
        "git_revision": git_revision(),
        "data_sha256": data_sha256,
        "train_data_sha256": str(model_metadata.get("train_data_sha256", "")),
        "dvc_experiment": os.environ.get("DVC_EXP_NAME", "workspace"),
        "dvc_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "model_name": str(model_metadata.get("model_name", "")),
        "model_sha256": str(model_metadata.get("model_sha256", "")),
    }


def pip_requirements(model_name: str) -> list[str]:
    """Exact requirements of the logged pyfunc (its code is phishguard's, bundled with it);
    given explicitly, MLflow skips its slow dependency inference."""
    packages = ["mlflow", "numpy", "pandas", "pandera", "pyarrow", "scikit-learn", "skops"]
    # soft voting's members may include XGBoost
    if model_name in XGBOOST_NATIVE | {"soft_voting"}:
        packages.append("xgboost-cpu")
    return [f"{name}=={metadata.version(name)}" for name in packages]


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise writers of one local sqlite store (queued sweeps run stages in parallel, and
    two processes creating a fresh MLflow schema at once collide)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    with exclusive_lock(Path(uri.removeprefix("sqlite:///") + ".lock")):
        yield


def _log_run(
    uri: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    tags: Mapping[str, str],
    package_dir: Path,
    example: pd.DataFrame,
) -> str:
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
            logged = mlflow.pyfunc.log_model(
                name="model",
                python_model=mlflow_pyfunc.__file__,
                artifacts={mlflow_pyfunc.PACKAGE_ARTIFACT: str(package_dir)},
                code_paths=[str(Path(mlflow_pyfunc.__file__).parent)],
                signature=SIGNATURE,
                input_example=example.loc[:, list(FEATURES)].astype("int64"),
                pip_requirements=pip_requirements(tags["model_name"]),
            )
        _register(logged.model_uri, tags)
        return run.info.run_id


def _register(model_uri: str, tags: Mapping[str, str]) -> None:
    """A new version of the registered model `phishguard`; a failure is one warning."""
    try:
        version = mlflow.register_model(
            model_uri, REGISTERED_MODEL, tags={k: tags[k] for k in REGISTRY_TAGS if k in tags}
        )
    except Exception as error:  # the registry is optional: never fail the stage
        log.warning("WARNING: the run was recorded but not registered (%s)", _first_line(error))
        return
    log.info("registered %s version %s", REGISTERED_MODEL, version.version)


def set_champion(package_version: str) -> str | None:
    """Give the alias `champion` to the registered version of the served package.

    The version is found by its `package_version` tag, the content-derived name the package
    stage gave the package. Returns the version number, or None after one warning when no
    store or no such version can be found: never a failed stage.
    """
    for uri in _stores():
        try:
            client = mlflow.MlflowClient(uri)
            found = client.search_model_versions(
                f"name='{REGISTERED_MODEL}' and tags.package_version='{package_version}'"
            )
            if not found:
                continue
            newest = max(found, key=lambda v: int(v.version))
            client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, newest.version)
        except Exception as error:  # the registry is optional: never fail the stage
            log.warning("WARNING: MLflow registry at %s: %s", uri, _first_line(error))
            continue
        log.info("%s@%s is version %s (%s)", REGISTERED_MODEL, CHAMPION, newest.version, uri)
        return str(newest.version)
    log.warning(
        "WARNING: no registered version of %s holds package %s; the alias %s was not moved",
        REGISTERED_MODEL,
        package_version,
        CHAMPION,
    )
    return None


def _stores() -> list[str]:
    """The stores to try, in order: the configured one, then the local fallback (once). HTTP
    retries are switched off first, so an unreachable server fails fast."""
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    return list(dict.fromkeys([tracking_uri(), local_uri()]))


def _first_line(error: Exception) -> str:
    return f"{type(error).__name__}: {first_line(error)[:200]}"


def record_run(
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    tags: Mapping[str, str],
    package_dir: Path,
    example: pd.DataFrame,
) -> tuple[str, str] | None:
    """Log one run with the model as a pyfunc of `package_dir` and register it; return
    (tracking URI, run id), or None if no store could take it.

    Never raises: an unreachable store means a warning and the local fallback.
    """
    uris = _stores()
    for position, uri in enumerate(uris):
        try:
            run_id = _log_run(uri, params, metrics, tags, package_dir, example)
        except Exception as error:  # any failure of the store: a warning, never a failed stage
            detail = _first_line(error)
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
                    "model and metrics are safe in models/ and reports/metrics.json",
                    uri,
                    detail,
                )
            continue
        log.info("MLflow run %s recorded at %s (experiment '%s')", run_id, uri, EXPERIMENT)
        return uri, run_id
    return None
