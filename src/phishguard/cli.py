"""The `phishguard` command: fetch the data; compose params."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from phishguard import __version__, paths
from phishguard.config.compose import compose_params
from phishguard.config.params import section
from phishguard.entrypoint import run
from phishguard.serving.keys import ROLES

log = logging.getLogger("phishguard")


# Each command imports the modules it runs inside its handler: the data and scoring modules
# cost ~3 s of import (pandas, pandera, pymongo, xgboost), which `phishguard params` and
# `--help` do not need.


def _fetch(args: argparse.Namespace) -> None:
    from phishguard.data.landing import fetch

    landed, origin = fetch(section("data"), Path(args.landing_dir), args.source)
    log.info("landed %s from %s", landed, origin)


def _load(args: argparse.Namespace) -> None:
    from phishguard.data.load import command

    command(args.files, args.uri, args.database, args.collection, args.dry_run, args.json)


def _feedback(args: argparse.Namespace) -> None:
    from phishguard.feedback.submit import command

    command(args.file, args.source, args.submitter, args.json)


def _predict(args: argparse.Namespace) -> None:
    from phishguard.dask_cluster import scheduler_address
    from phishguard.serving.batch import predict_command

    # SIGTERM (a scheduler's stop, `kill`) becomes an exception like Ctrl-C, so the output
    # writers remove their hidden `.part` files on the way out instead of leaving them behind.
    signal.signal(signal.SIGTERM, _interrupt)
    scheduler = scheduler_address(args.scheduler)
    if scheduler is None and args.workers is None:
        predict_command(args.input, args.output, args.rejects, args.model, args.chunk_rows)
        return
    # importing dask and distributed costs ~0.4 s: only the cluster path pays it.
    from phishguard.serving import distributed

    distributed.predict_command(
        args.input, args.output, args.rejects, args.model, scheduler, args.workers
    )


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _params(args: argparse.Namespace) -> None:
    text = compose_params(args.overrides)
    if args.check:
        current = paths.PARAMS.read_text() if paths.PARAMS.exists() else ""
        if current != text:
            raise SystemExit(
                "params.yaml differs from the Hydra composition of conf/; run `make params`"
            )
        return
    from phishguard.io import write_atomic  # pandas (~1 s): `phishguard params --check` skips it

    write_atomic(paths.PARAMS, text)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="phishguard",
        description="Phishing-website classifier: data, pipeline and scoring tools.",
    )
    top.add_argument("--version", action="version", version=f"phishguard {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fetch = commands.add_parser(
        "fetch",
        help="put the source data into data/landing/ (the input of the ingest stage)",
        description=(
            "Copy or download the dataset into the landing folder that `ingest` reads. The source is "
            "SOURCE if given, else $PHISHING_DATA (a path or http(s) URL; CSV, JSON, JSONL, ARFF or "
            "Parquet), else the public UCI URL in params.yaml (data.url). With data.feedback true "
            "(the default) it lands one Parquet snapshot instead: that source's rows, then every "
            "verdict in the feedback store (data/feedback/, or MongoDB's `feedback` collection when "
            "$MONGODB_URI is set), oldest first; the same inputs give the same bytes."
        ),
    )
    fetch.add_argument(
        "source", nargs="?", help="path or URL (default: $PHISHING_DATA, then data.url)"
    )
    fetch.add_argument("--landing-dir", default=str(paths.LANDING_DIR), help="default: %(default)s")
    fetch.set_defaults(handler=_fetch)

    params = commands.add_parser(
        "params",
        help="write params.yaml from the Hydra configs in conf/ (as `dvc exp run` does)",
        description=(
            "Compose conf/config.yaml with Hydra, exactly as `dvc exp run` does, and write the "
            "result to params.yaml, which `dvc repro` reads (`make params` runs this). With "
            "OVERRIDEs, compose as `dvc exp run -S OVERRIDE` would: a key conf/ lacks is named "
            "with the nearest valid one. --check writes nothing and fails if params.yaml differs."
        ),
    )
    params.add_argument(
        "overrides",
        nargs="*",
        metavar="OVERRIDE",
        help="Hydra override, as given to `dvc exp run -S`: model=random_forest, model.max_depth=4",
    )
    params.add_argument(
        "--check", action="store_true", help="only check that params.yaml is current"
    )
    params.set_defaults(handler=_params)

    # --- load (issue 3): the idempotent ETL into MongoDB; the logic is in phishguard.data.load
    load = commands.add_parser(
        "load",
        help="validate data files and upsert their rows into MongoDB (idempotent)",
        description=(
            "Read each FILE (CSV, JSON, JSONL, ARFF or Parquet; globs allowed) in chunks, validate "
            "every row with the pipeline's schema, and upsert valid rows into MongoDB with "
            "_id = a hash of the row's content, so loading the same data twice adds nothing. "
            "Invalid rows go to the <collection>_quarantine collection with their reasons."
        ),
    )
    load.add_argument("files", nargs="+", metavar="FILE", help="data file or quoted glob")
    load.add_argument("--uri", help="MongoDB URI (default: $MONGODB_URI)")
    load.add_argument("--database", default="phishguard", help="default: %(default)s")
    load.add_argument("--collection", default="websites", help="default: %(default)s")
    load.add_argument(
        "--dry-run", action="store_true", help="validate and count only; no database needed"
    )
    load.add_argument(
        "--json",
        action="store_true",
        help='print {"read", "inserted", "already_present", "quarantined"} as JSON on stdout',
    )
    load.set_defaults(handler=_load)
    predict = commands.add_parser(
        "predict",
        help="score a CSV or Parquet file with the packaged model (invalid rows to a rejects file)",
        description=(
            "Score INPUT in chunks (constant memory) with the model the package stage imported "
            "(models/bentoml/, or --model). OUTPUT gets row, phishing_probability, is_phishing "
            "and label; rows that fail the schema go to the rejects CSV with their reasons."
        ),
    )
    predict.add_argument("input", help="CSV or Parquet file of the 30 features (Result ignored)")
    predict.add_argument("-o", "--output", required=True, help="output .csv or .parquet")
    predict.add_argument("--rejects", help="rejects file (default: OUTPUT stem + .rejects.csv)")
    predict.add_argument("--model", help="a packaged model folder (default: the latest package)")
    predict.add_argument("--chunk-rows", type=int, default=50_000, help="default: %(default)s")
    predict.add_argument(
        "--scheduler",
        help="score on the Dask cluster at this address (tcp://host:8786), or 'local' for a "
        "local cluster (default: $DASK_SCHEDULER_ADDRESS; unset: one process). INPUT may then "
        "be a glob, a folder of Parquet or CSV parts or an s3:// URL; OUTPUT and --rejects are "
        "folders of part-NNNNN.parquet files (rejects default: OUTPUT.rejects)",
    )
    predict.add_argument(
        "--workers", type=int, help="start a local Dask cluster of N single-threaded workers"
    )
    predict.set_defaults(handler=_predict)

    # --- drift (issue 12): the statistics are in phishguard.monitoring.drift
    drift = commands.add_parser(
        "drift",
        help="check a prediction log or records file for drift against the training data",
        description=(
            "Compare CURRENT (a prediction-log directory or any records file with the 30 "
            "features; extra columns ignored) with REF: per feature the -1/0/1 shares (PSI and a "
            "chi-square test, Benjamini-Hochberg over the 30), the share of never-seen feature "
            "vectors, and, given reference scores, the probabilities and the alert rate. "
            "Thresholds: the monitor section of params.yaml (conf/monitor/)."
        ),
    )
    drift.add_argument("current", help="prediction-log directory or records file")
    drift.add_argument(
        "--reference", help=f"reference records (default: {paths.TRAIN_TABLE}, the training split)"
    )
    drift.add_argument(
        "--reference-scores",
        help="reference probabilities (e.g. out-of-fold training scores; column probability or "
        "phishing_probability); without it prediction drift is not judged",
    )
    drift.add_argument("--json", action="store_true", help="print the report as one JSON object")
    drift.add_argument(
        "--fail-on-drift", action="store_true", help="exit 1 when drift is found (else 0)"
    )
    drift.set_defaults(handler=_drift)

    # --- feedback (issue 13): analysts' verdicts; the logic is in phishguard.feedback
    feedback = commands.add_parser(
        "feedback",
        help="store analysts' verdicts from a file (checked; idempotent; all rows or none)",
        description=(
            "Check every row of FILE (CSV, JSONL or Parquet: the 30 features and `label` = "
            "phishing|legitimate, or `Result` in the UCI coding -1 phishing / 1 legitimate; "
            "optional `note` and `source` columns) and store them in the feedback store: "
            "data/feedback/ ($PHISHGUARD_FEEDBACK_DIR), or the MongoDB collection `feedback` when "
            "$MONGODB_URI is set. A verdict already stored is not stored again. One bad row "
            "stops the command, naming every bad row, with nothing stored."
        ),
    )
    feedback.add_argument("file", metavar="FILE", help="CSV, JSONL or Parquet file of verdicts")
    feedback.add_argument("--source", help="where the verdicts come from (default: cli)")
    feedback.add_argument("--submitter", help="who sends them (recorded with each verdict)")
    feedback.add_argument(
        "--json", action="store_true", help='print {"accepted": n, "already_present": m}'
    )
    feedback.set_defaults(handler=_feedback)

    # --- keys (issue 18): the store is phishguard.serving.key_stores, the check serving.auth
    keys = commands.add_parser(
        "keys",
        help="create, list and revoke the service's API keys",
        description=(
            "API keys for the service (Authorization: Bearer <key>). Only a salted hash of each "
            "key is stored: in $PHISHGUARD_KEYS if set, else the MongoDB collection api_keys if "
            f"$MONGODB_URI is set, else {paths.KEYS_FILE}. Roles: analyst (may send verdicts to "
            "/feedback, and score), scorer (may score, when PHISHGUARD_AUTH=all) and reviewer "
            "(may approve or reject disputed verdicts: /feedback/review, docs/feedback.md)."
        ),
    )
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    add = key_commands.add_parser("add", help="create a key and print it (shown only once)")
    add.add_argument("name", help="the key's name, recorded with every verdict it sends")
    add.add_argument("--role", choices=ROLES, default="scorer", help="default: %(default)s")
    add.set_defaults(handler=_keys_add)
    listing = key_commands.add_parser(
        "list",
        help="names, roles, creation and last use",
        description="List every API key in the store: name, role, when it was created and last "
        "used, and whether it is revoked. Keys themselves are never shown (only hashes are kept).",
    )
    listing.set_defaults(handler=_keys_list)
    revoke = key_commands.add_parser(
        "revoke",
        help="revoke a key (the service stops accepting it within about a second)",
        description="Revoke the API key NAME in the store. A running service re-reads the store "
        "and refuses the key within about a second, without a restart; the name stays listed "
        "as revoked.",
    )
    revoke.add_argument("name", help="the key's name, as given to `phishguard keys add`")
    revoke.set_defaults(handler=_keys_revoke)
    return top


def _keys_add(args: argparse.Namespace) -> None:
    from phishguard.serving.key_stores import add_command

    add_command(args.name, args.role)


def _keys_list(_: argparse.Namespace) -> None:
    from phishguard.serving.key_stores import list_command

    list_command()


def _keys_revoke(args: argparse.Namespace) -> None:
    from phishguard.serving.key_stores import revoke_command

    revoke_command(args.name)


def _drift(args: argparse.Namespace) -> None:
    from phishguard.monitoring.check import command  # scipy and pandas: ~1 s at start-up

    command(args.current, args.reference, args.reference_scores, args.json, args.fail_on_drift)


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    args = parser().parse_args(argv)
    run(lambda: args.handler(args), "phishguard")


if __name__ == "__main__":
    main(sys.argv[1:])
