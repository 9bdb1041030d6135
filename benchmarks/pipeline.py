"""How fast the experiment loop is: thread counts per zoo model, the pipeline's stages cold, one
`dvc exp run -S`, a no-op `dvc repro`, and `make pipeline` on a fresh machine.

Two settings run side by side, interleaved, in one scratch clone of the working tree:
- before: each model fits with 2 threads (`model.n_jobs=2`) and CV fits one fold at a time
  (`evaluate.cv_workers=1`), the committed configuration until issue 10;
- after: the committed configuration (single-threaded models, two folds at once).
The machine is shared and noisy, so medians over `--repeats` runs and their ratios are
reported, never one draw. The two settings must give byte-identical metrics; this checks it.

    python -m benchmarks.pipeline [--data PATH] [--repeats 3] [--out benchmarks/results/pipeline.md]

`make bench-pipeline` runs it on the offline dataset.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from phishguard.config.compose import compose_params
from phishguard.config.models import model_config
from phishguard.contract.schema import TARGET
from phishguard.modeling.evaluate import grouped_cv
from phishguard.modeling.features import as_matrix, model_inputs
from phishguard.modeling.zoo import build_model, input_columns
from phishguard.provenance import library_versions
from tests.support import clone_project, tool_env

REPO = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "validate", "featurize", "train", "evaluate", "package")
SETTINGS = {
    "before": {"model_threads": 2, "cv_workers": 1},
    "after": {"model_threads": 1, "cv_workers": 2},
}
THREADED_MODELS = ("xgboost", "random_forest", "extra_trees", "soft_voting")


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def with_threads(spec: dict, threads: int) -> dict:
    """`spec` with every `n_jobs` (soft voting's members' too) set to `threads`."""
    spec = json.loads(json.dumps(spec))
    for part in [spec, *spec.get("members", {}).values()]:
        if "n_jobs" in part:
            part["n_jobs"] = threads
    return spec


def thread_counts(train: pd.DataFrame, repeats: int) -> list[dict]:
    """Per zoo model: one fit and a 5-fold grouped CV, under both settings (medians)."""
    rows = []
    y = train[TARGET].to_numpy()
    for name in THREADED_MODELS:
        base = yaml.safe_load(compose_params([f"model={name}"], REPO / "conf"))["model"]
        times: dict[str, dict[str, list[float]]] = {s: {"fit": [], "cv": []} for s in SETTINGS}
        for _ in range(repeats):
            for setting, knobs in SETTINGS.items():
                spec = model_config(with_threads(base, knobs["model_threads"]))
                columns = input_columns(spec)
                X = model_inputs(as_matrix(train), columns)
                times[setting]["fit"].append(timed(build_model(spec, 42).fit, X, y))
                estimator = build_model(spec, 42)
                times[setting]["cv"].append(
                    timed(
                        lambda e=estimator, c=columns, w=knobs["cv_workers"]: grouped_cv(
                            e, train, 5, 42, columns=c, workers=w
                        )
                    )
                )
        rows.append(
            {
                "model": name,
                **{
                    f"{part}_{setting}": statistics.median(times[setting][part])
                    for setting in SETTINGS
                    for part in ("fit", "cv")
                },
            }
        )
    return rows


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Run `command` in `cwd`; return its wall time; stop with its output if it fails."""
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=cwd, env=env or tool_env(cwd), capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return time.perf_counter() - start


def apply_setting(clone: Path, knobs: dict[str, int]) -> None:
    """Write the setting into params.yaml and commit it (the baseline `dvc exp run` uses)."""
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["model"]["n_jobs"] = knobs["model_threads"]
    params["evaluate"]["cv_workers"] = knobs["cv_workers"]
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "commit", "-q", "-am", "benchmark setting", "--allow-empty"], clone)


def pipeline_times(clone: Path, knobs: dict[str, int]) -> dict[str, float]:
    """Every stage cold (no run cache), one experiment, one no-op repro."""
    apply_setting(clone, knobs)
    times = {}
    for stage in STAGES:
        times[stage] = run(["dvc", "repro", "--no-run-cache", "--force", "-s", stage], clone)
    times["stages"] = sum(times[stage] for stage in STAGES)
    times["noop"] = run(["dvc", "repro"], clone)
    metrics = (clone / "reports" / "metrics.json").read_bytes()
    overrides = [
        f"model.n_jobs={knobs['model_threads']}",
        f"evaluate.cv_workers={knobs['cv_workers']}",
        "model.max_depth=4",
    ]
    # `dvc exp run` has no --no-run-cache: drop the run cache so the repetition really runs.
    shutil.rmtree(clone / ".dvc" / "cache" / "runs", ignore_errors=True)
    times["exp_run"] = run(["dvc", "exp", "run", *[f"-S{o}" for o in overrides]], clone)
    run(["git", "checkout", "-q", "--", "."], clone)
    run(["dvc", "exp", "remove", "-A", "-q"], clone)
    times["metrics_sha"] = hashlib.sha256(metrics).hexdigest()
    return times


def fresh_machine_setup(data: Path, workdir: Path) -> float:
    """`make pipeline` in a fresh clone with an empty HOME and no uv on PATH (uv cache reused)."""
    clone = clone_project(workdir / "clone")
    home = workdir / "home"
    home.mkdir()
    cache = os.environ.get("UV_CACHE_DIR") or str(Path.home() / ".cache" / "uv")
    env = {
        "HOME": str(home),
        "PYTHONUSERBASE": str(home / ".local"),
        "PATH": f"{Path(sys.base_prefix) / 'bin'}:/usr/bin:/bin",
        "UV_CACHE_DIR": cache,
        "PHISHING_DATA": str(data),
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@phishguard.invalid",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@phishguard.invalid",
    }
    return run(["make", "pipeline"], clone, env)


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def report(threads: list[dict], pipeline: dict[str, list[dict]], fresh: list[float]) -> str:
    """The markdown table file the README links."""
    identical = len({row["metrics_sha"] for rows in pipeline.values() for row in rows}) == 1
    lines = [
        "# Pipeline speed: thread counts, stages, one experiment (`make bench-pipeline`)",
        "",
        f"Medians of {len(fresh)} interleaved repetitions on this machine (2 cores, shared); "
        "ratio = before / after (> 1: after is faster).",
        "*before*: models fit with 2 threads, CV folds one at a time; "
        "*after* (committed): models single-threaded, 2 folds at once.",
        "",
        "## Zoo models on the training split (8,843 rows), seconds",
        "",
        "| model | fit, 2 threads | fit, 1 thread | ratio | 5-fold CV before | CV after | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in threads:
        lines.append(
            f"| {row['model']} | {row['fit_before']:.2f} | {row['fit_after']:.2f} | "
            f"{row['fit_before'] / row['fit_after']:.2f}× | {row['cv_before']:.2f} | "
            f"{row['cv_after']:.2f} | {row['cv_before'] / row['cv_after']:.2f}× |"
        )
    lines += [
        "",
        "## The default pipeline, seconds (each stage cold, `dvc repro --no-run-cache -f -s`)",
        "",
        "| step | before | after | ratio |",
        "|---|---|---|---|",
    ]
    for key in (*STAGES, "stages", "exp_run", "noop"):
        label = {
            "stages": "all six stages",
            "exp_run": "`dvc exp run -S model.max_depth=4`",
            "noop": "no-op `dvc repro`",
        }.get(key, key)
        before, after = median(pipeline["before"], key), median(pipeline["after"], key)
        lines.append(f"| {label} | {before:.1f} | {after:.1f} | {before / after:.2f}× |")
    lines += [
        "",
        f"`make pipeline` on a fresh machine (empty HOME, no uv; uv installed with pip, "
        f"packages from the warm uv cache, then every stage): median "
        f"{statistics.median(fresh):.1f} s over {len(fresh)} runs "
        f"({', '.join(f'{t:.1f}' for t in fresh)}).",
        "",
        f"Metrics byte-identical between the two settings: **{'yes' if identical else 'NO'}**.",
        "",
        "Library versions: " + ", ".join(f"{k} {v}" for k, v in sorted(library_versions().items())),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=os.environ.get("PHISHING_DATA"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/pipeline.md")
    args = parser.parse_args()
    if not args.data or not Path(args.data).is_file():
        raise SystemExit("bench-pipeline: set PHISHING_DATA or pass --data (the dataset file)")
    data = Path(args.data).resolve()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        clone = clone_project(Path(scratch) / "clone")
        run(["phishguard", "fetch", str(data)], clone)
        run(["dvc", "repro"], clone)
        train = pd.read_parquet(clone / "data" / "processed" / "train.parquet")
        threads = thread_counts(train, args.repeats)
        pipeline: dict[str, list[dict]] = {setting: [] for setting in SETTINGS}
        fresh = []
        for repeat in range(args.repeats):
            for setting, knobs in SETTINGS.items():
                pipeline[setting].append(pipeline_times(clone, knobs))
            fresh.append(fresh_machine_setup(data, Path(scratch) / f"fresh{repeat}"))
            print(f"bench-pipeline: repetition {repeat + 1}/{args.repeats} done", flush=True)
    text = report(threads, pipeline, fresh)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {"threads": threads, "pipeline": pipeline, "fresh_make_pipeline": fresh}, indent=1
        )
        + "\n"
    )
    print(text)


if __name__ == "__main__":
    main()
