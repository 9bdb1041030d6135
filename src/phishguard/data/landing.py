"""Getting the data in: `fetch` puts the configured source into the landing folder.

`fetch` is the one dispatch over sources and the only place that looks at `PHISHING_DATA`,
`MONGODB_URI` or the network. It puts exactly one file into the git-ignored landing folder,
which is a DVC dependency of `ingest`; so DVC sees every change of input, and no environment
variable changes a stage's output behind its back. The source is, in order: the one given on
the command line, else a MongoDB snapshot (`data=mongodb`), else `$PHISHING_DATA`, else the
configured URL (`data.url`).

With `data.feedback: true` the landed file is instead the snapshot of that source plus every
verdict in the feedback store (`phishguard.data.snapshot`): the source is fetched into a
staging folder first, and the store is `phishguard.feedback.store.open_store()` (MongoDB's
`feedback` collection when `MONGODB_URI` is set, else the local file under data/feedback/).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from phishguard import first_line
from phishguard.config.params import ParamsError, build
from phishguard.data import mongo
from phishguard.data.snapshot import write_snapshot
from phishguard.data.sources import (
    READERS,
    DataSourceError,
    copy_file,
    download,
    is_url,
    supported_suffixes,
    url_suffix,
)
from phishguard.feedback.store import open_store

DATA_ENV = "PHISHING_DATA"
LANDING_STEM = "phishing_websites"


def choose_source(
    configured_url: str, environ: os._Environ[str] | dict[str, str] = os.environ
) -> str:
    """`PHISHING_DATA` if set (a path or URL), else the configured public URL."""
    return environ.get(DATA_ENV, "").strip() or configured_url


def fetch_file(source: str, landing_dir: Path, from_env: bool = False) -> Path:
    """Put `source` into `landing_dir` as the only file there, and return its path.

    The file keeps the source's extension, so ingest knows how to read it. Re-fetching the
    same bytes leaves the landed file as it was. `from_env`: `source` is $PHISHING_DATA's
    value, which an error then names (and only then).
    """
    suffix = url_suffix(source) if is_url(source) else Path(source).suffix.lower()
    if suffix not in READERS:
        raise DataSourceError(
            f"{source}: unknown file type {suffix or '(no extension)'!r}; "
            f"expected {supported_suffixes()}"
        )
    landing_dir.mkdir(parents=True, exist_ok=True)
    target = landing_dir / f"{LANDING_STEM}{suffix}"
    if is_url(source):
        try:
            download(source, target)
        except DataSourceError as error:
            raise DataSourceError(
                f"{error} — offline? set {DATA_ENV}=/path/to/phishing_websites.csv "
                f"(or .json, .jsonl, .arff, .parquet)"
            ) from None
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            kinds = f"the dataset ({supported_suffixes()})"
            if from_env:
                raise DataSourceError(
                    f"{DATA_ENV}={source}: no such file; point {DATA_ENV} at {kinds}, "
                    "or unset it to download data.url"
                )
            raise DataSourceError(f"{source}: no such file; give the path of {kinds}")
        if not (target.exists() and target.read_bytes() == path.read_bytes()):
            copy_file(path, target)
    _keep_only(target)
    return target


def landed_file(landing_dir: Path) -> Path:
    """The one file `fetch` left in `landing_dir`."""
    files = sorted(p for p in landing_dir.glob(f"{LANDING_STEM}.*") if p.is_file())
    if len(files) != 1:
        found = "nothing" if not files else ", ".join(p.name for p in files)
        raise DataSourceError(
            f"{landing_dir}: expected one {LANDING_STEM}.* file, found {found}; run `make data` "
            f"(set {DATA_ENV}=/path/to/file when offline)"
        )
    return files[0]


def fetch(
    data: Mapping[str, Any],
    landing_dir: Path,
    source: str | None = None,
    connect: Callable[[str], Any] | None = None,
    verdicts: Callable[[], pd.DataFrame] | None = None,
) -> tuple[Path, str]:
    """Land the source of params section `data` (or `source`, if given) in `landing_dir`.

    Returns the landed file and where it came from, for the log. `connect` turns the MongoDB
    URI into a client (default: `phishguard.data.mongo.connect`). With `data.feedback` true the
    landed file is the snapshot of the source and of `verdicts()` (default: the feedback
    store's verdicts).
    """
    if not wants_feedback(data):
        return _fetch_base(data, landing_dir, source, connect)
    landing_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".staging-", dir=landing_dir.parent) as staging:
        base, origin = _fetch_base(data, Path(staging), source, connect)
        feedback = (verdicts or stored_verdicts)()
        target = landing_dir / f"{LANDING_STEM}.parquet"
        kind = "mongodb" if source is None and data.get("name") == "mongodb" else base.name
        summary = write_snapshot(base, feedback, target, base_source=kind)
    _keep_only(target)
    return target, f"{origin} + {summary.feedback_rows} feedback verdicts"


def wants_feedback(data: Mapping[str, Any]) -> bool:
    """`data.feedback`: whether the landed file adds the feedback store's verdicts.

    Absent means false, so a params file from before feedback existed lands what it did.
    """
    value = data.get("feedback", False)
    if not isinstance(value, bool):
        raise ParamsError(f"params 'data.feedback': expected true or false, got {value!r}")
    return value


def stored_verdicts() -> pd.DataFrame:
    """Every verdict in the feedback store once per submitter who sent it
    (`phishguard.feedback.store`'s `assertions()`: what the trust rules weigh)."""
    store = open_store()
    try:
        return store.assertions()
    finally:
        store.close()


def _fetch_base(
    data: Mapping[str, Any],
    landing_dir: Path,
    source: str | None,
    connect: Callable[[str], Any] | None,
) -> tuple[Path, str]:
    if source is None and data.get("name") == "mongodb":
        values = {k: v for k, v in data.items() if k != "feedback"}
        where = build(mongo.MongoSource, values, "data")
        client = (connect or mongo.connect)(mongo.uri_from_env(None))
        try:
            landed, rows = fetch_snapshot(where, landing_dir, client)
        finally:
            client.close()
        return landed, f"MongoDB (${mongo.URI_ENV}): {rows} documents"
    chosen = source or choose_source(data["url"])
    from_env = not source and chosen != data["url"]
    origin = "" if source else f" ({DATA_ENV})" if from_env else " (data.url)"
    return fetch_file(chosen, landing_dir, from_env), f"{chosen}{origin}"


def fetch_snapshot(source: mongo.MongoSource, landing_dir: Path, client: Any) -> tuple[Path, int]:
    """Snapshot `source` into `landing_dir` as its only landed file; return path and rows."""
    # pymongo costs ~0.8 s of import: paid only when MongoDB is the source.
    from pymongo.errors import PyMongoError

    target = landing_dir / f"{LANDING_STEM}.parquet"
    try:
        result = mongo.snapshot(client[source.database][source.collection], target, source.filter)
    except PyMongoError as error:
        raise mongo.MongoError(
            f"reading {source.database}.{source.collection} failed: {first_line(error)}"
        ) from None
    _keep_only(target)
    return result


def _keep_only(target: Path) -> None:
    """Remove every landed file but `target`."""
    for other in target.parent.iterdir():
        if other != target and other.name.startswith(LANDING_STEM):
            other.unlink()
