"""Batch scoring on a Dask cluster: `phishguard predict IN -o OUT --scheduler ADDRESS | --workers N`.

The input (a file, a glob, a folder of Parquet or CSV parts, local or `s3://`) is cut into
partitions whose global row numbers are fixed before any scoring starts: Parquet row groups
from the files' metadata, CSV files by a first counting pass with the one CSV reader. Each
partition is scored on a worker by `batch.score_table`, the same checks and the same model as
single-process `phishguard predict`, and written as `OUT/part-NNNNN.parquet` (row,
phishing_probability, is_phishing, label) and `OUT.rejects/part-NNNNN.parquet` (row, the 30
features as text, reason). A partition is a pure function of the input, so a task Dask re-runs
after losing a worker writes the same bytes again; the client checks scored + rejected = rows.

The model bundle travels to the workers as its files' bytes in a worker plugin (so a worker
that joins later gets it too), is written to the worker's local directory and loaded with
`bundle.load` (every sha256 verified) once per worker: `_SCORERS` keeps it, keyed by the
bundle's path and the sha256 of its checksum file. Workers therefore need phishguard installed,
not the model. Local output is written to a hidden folder renamed into place at the end.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from distributed import Client, LocalCluster, WorkerPlugin, as_completed
from tqdm import tqdm

from phishguard import DataSourceError, PhishguardError, first_line
from phishguard.contract.csv_reader import read_csv_chunks
from phishguard.contract.problems import SchemaError
from phishguard.contract.schema import FEATURES
from phishguard.data.validate import REASON
from phishguard.io import CHUNK_ROWS
from phishguard.modeling import bundle
from phishguard.serving.batch import ROW, BatchSummary, score_table
from phishguard.serving.scoring import Scorer, load_scorer, packaged_model_dir

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10
PARTITION_ROWS = 250_000
"""Parquet row groups are joined into partitions of about this many rows (a CSV file is one)."""
KINDS = (".parquet", ".csv")
SCORED_SCHEMA = pa.schema(
    [(ROW, pa.int64()), ("phishing_probability", pa.float32()), ("is_phishing", pa.bool_()),
     ("label", pa.string())]
)  # fmt: skip
REJECTS_SCHEMA = pa.schema(
    [(ROW, pa.int64()), *((name, pa.string()) for name in FEATURES), (REASON, pa.string())]
)

_SCORERS: dict[tuple[str, str], Scorer] = {}
"""Per worker process: the loaded bundles, by (the client's bundle path, checksum-file sha256)."""


@dataclass(frozen=True)
class Partition:
    """Rows `first_row` .. `first_row + rows - 1` (global, 1-based): a CSV file, or row groups
    of a Parquet file. `url` is read; `name` is how the user wrote it, for messages."""

    index: int
    url: str
    name: str
    row_groups: tuple[int, ...] | None
    first_row: int
    rows: int


def storage_options(environ: os._Environ[str] | dict[str, str] = os.environ) -> dict[str, Any]:
    """s3fs options from the client's environment, the AWS rules the DVC remote follows:
    AWS_ENDPOINT_URL (moto, MinIO), and the AWS_* credentials if set, passed on to the
    workers; unset, each worker uses its own AWS configuration (an IAM role, ~/.aws)."""
    options: dict[str, Any] = {}
    if endpoint := environ.get("AWS_ENDPOINT_URL"):
        options["client_kwargs"] = {"endpoint_url": endpoint}
    for key, variable in (
        ("key", "AWS_ACCESS_KEY_ID"),
        ("secret", "AWS_SECRET_ACCESS_KEY"),
        ("token", "AWS_SESSION_TOKEN"),
    ):
        if value := environ.get(variable):
            options[key] = value
    return options


def _filesystem(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    return fsspec.core.url_to_fs(url, **(options if "://" in url else {}))


def _is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def input_files(source: str, options: dict[str, Any]) -> tuple[list[tuple[str, str]], str]:
    """The input's parts as (url, name) in sorted order, and their kind (.parquet or .csv)."""
    fs, path = _filesystem(source, options)
    protocol = source.split("://", 1)[0] + "://" if _is_remote(source) else ""
    if fs.isdir(path):
        found = [p for p in fs.ls(path, detail=False) if not Path(p).name.startswith((".", "_"))]
        found = [p for p in found if Path(p).suffix.lower() in KINDS]
    elif any(c in path for c in "*?["):
        found = fs.glob(path)
    elif fs.isfile(path):
        found = [path]
    else:
        raise DataSourceError(f"{source}: no such file or folder")
    found = sorted(found)
    if not found:
        raise DataSourceError(f"{source}: no .parquet or .csv files")
    kinds = {Path(p).suffix.lower() for p in found}
    if len(kinds) > 1 or not kinds <= set(KINDS):
        raise DataSourceError(
            f"{source}: parts must be all .parquet or all .csv, found {', '.join(sorted(kinds))}"
        )
    if protocol:
        return [(protocol + p, protocol + p) for p in found], kinds.pop()
    names = [source] if found == [path] else found
    return [(str(Path(p).resolve()), n) for p, n in zip(found, names, strict=True)], kinds.pop()


def parquet_partitions(
    files: list[tuple[str, str]], options: dict[str, Any], partition_rows: int
) -> list[Partition]:
    """Partitions of whole row groups, about `partition_rows` each, numbered from the metadata."""
    partitions: list[Partition] = []
    first = 1
    for url, name in files:
        fs, path = _filesystem(url, options)
        try:
            with fs.open(path, "rb") as handle:
                metadata = pq.ParquetFile(handle).metadata
        except (pa.ArrowInvalid, OSError) as error:
            raise DataSourceError(
                f"{name}: not a readable Parquet file ({first_line(error)})"
            ) from None
        groups: list[int] = []
        rows = 0
        for group in range(metadata.num_row_groups):
            groups.append(group)
            rows += metadata.row_group(group).num_rows
            if rows >= partition_rows or group == metadata.num_row_groups - 1:
                partitions.append(Partition(len(partitions), url, name, tuple(groups), first, rows))
                first, groups, rows = first + rows, [], 0
    return partitions


def csv_rows(url: str, name: str, options: dict[str, Any]) -> int:
    """The rows of one CSV file as the CSV reader counts them (a task: the first pass)."""
    fs, path = _filesystem(url, options)
    with fs.open(path, "rb") as handle:
        return sum(len(chunk) for chunk in read_csv_chunks(handle, name, CHUNK_ROWS))


def _chunks(partition: Partition, options: dict[str, Any]) -> Iterator[pd.DataFrame]:
    fs, path = _filesystem(partition.url, options)
    with fs.open(path, "rb") as handle:
        if partition.row_groups is None:
            yield from read_csv_chunks(handle, partition.name, CHUNK_ROWS)
            return
        parquet = pq.ParquetFile(handle)
        if not partition.rows:  # a file without rows still has its columns checked
            yield parquet.schema_arrow.empty_table().to_pandas()
        for batch in parquet.iter_batches(CHUNK_ROWS, row_groups=list(partition.row_groups)):
            yield batch.to_pandas()


def score_partition(
    partition: Partition, key: tuple[str, str], out: str, rejects: str, options: dict[str, Any]
) -> tuple[int, int]:
    """Score one partition into its part files (a task); return (scored, rejected) counts."""
    scorer = _SCORERS[key]
    name = f"part-{partition.index:05d}.parquet"
    out_fs, out_path = _filesystem(f"{out}/{name}", options)
    rej_fs, rej_path = _filesystem(f"{rejects}/{name}", options)
    rows = scored = rejected = 0
    with (
        out_fs.open(out_path, "wb") as out_file,
        rej_fs.open(rej_path, "wb") as rej_file,
        pq.ParquetWriter(out_file, SCORED_SCHEMA) as scored_writer,
        pq.ParquetWriter(rej_file, REJECTS_SCHEMA) as rejects_writer,
    ):
        for chunk in _chunks(partition, options):
            try:
                part = score_table(scorer, chunk, partition.first_row + rows)
            except SchemaError as error:
                raise SchemaError(f"{partition.name}: {error}") from None
            rows += len(chunk)
            scored_writer.write_table(pa.Table.from_pandas(part.scored, SCORED_SCHEMA, False))
            text = part.rejected.astype({name: "string" for name in FEATURES})
            rejects_writer.write_table(pa.Table.from_pandas(text, REJECTS_SCHEMA, False))
            scored, rejected = scored + len(part.scored), rejected + len(part.rejected)
    if rows != partition.rows:
        raise DataSourceError(
            f"{partition.name}: read {rows} rows, expected {partition.rows}; did it change?"
        )
    return scored, rejected


class BundlePlugin(WorkerPlugin):
    """Puts the model bundle on every worker (now and joining later) and loads it, verified."""

    def __init__(self, directory: Path) -> None:
        sums = (directory / bundle.CHECKSUM_FILE).read_bytes()
        self.sha256 = hashlib.sha256(sums).hexdigest()
        self.key = (str(directory.resolve()), self.sha256)
        self.name = f"phishguard-bundle-{self.sha256[:16]}"
        names = [line.split()[1] for line in sums.decode().splitlines()]
        self.files = {n: (directory / n).read_bytes() for n in names}
        self.files[bundle.CHECKSUM_FILE] = sums

    def setup(self, worker: Any) -> None:
        if self.key in _SCORERS:
            return
        directory = Path(worker.local_directory) / "phishguard-bundles" / self.sha256
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (directory / name).write_bytes(data)
        sums = (directory / bundle.CHECKSUM_FILE).read_bytes()
        if hashlib.sha256(sums).hexdigest() != self.sha256:
            raise bundle.PackageError(f"{directory}: the bundle changed on its way to the worker")
        _SCORERS[self.key] = load_scorer(directory, nthread=1)


@contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator[Client]:
    """A client of the cluster at `scheduler`, or of a LocalCluster (`local`, or `workers` set)
    of single-threaded worker processes on 127.0.0.1 without a dashboard."""
    if scheduler in (None, "local"):
        count = workers or os.cpu_count() or 1
        with (
            LocalCluster(
                n_workers=count,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    if workers is not None:
        raise PhishguardError("--workers starts a local cluster; leave it out with an address")
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as error:
        raise PhishguardError(
            f"cannot reach the Dask scheduler at {scheduler} within {CONNECT_TIMEOUT_S} s "
            f"({first_line(error)}); check --scheduler / DASK_SCHEDULER_ADDRESS"
        ) from None
    with client:
        yield client


@contextmanager
def _output_folders(out: str, rejects: str, options: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Where the tasks write: for local folders, hidden ones renamed onto `out` and `rejects`
    only when every part is written; on S3 the prefixes themselves, old parts removed first."""
    if _is_remote(out):
        for target in (out, rejects):
            fs, path = _filesystem(target, options)
            if stale := fs.glob(f"{path}/part-*.parquet"):
                fs.rm(stale)
        yield out, rejects
        return
    targets = [Path(out).resolve(), Path(rejects).resolve()]
    for target in targets:
        if target.exists() and not _is_output_folder(target):
            raise PhishguardError(f"{target}: exists and is not a folder of part-*.parquet files")
    staging = [t.with_name(f".{t.name}.{uuid.uuid4().hex[:8]}.part") for t in targets]
    try:
        for folder in staging:
            folder.mkdir(parents=True)
        yield str(staging[0]), str(staging[1])
        for folder, target in zip(staging, targets, strict=True):
            if target.exists():
                shutil.rmtree(target)
            folder.rename(target)
    finally:
        for folder in staging:
            shutil.rmtree(folder, ignore_errors=True)


def _is_output_folder(path: Path) -> bool:
    return path.is_dir() and all(p.match("part-*.parquet") for p in path.iterdir())


def predict_distributed(
    client: Client,
    source: str,
    out: str,
    rejects: str,
    model_dir: Path,
    partition_rows: int = PARTITION_ROWS,
    progress: bool | None = None,
) -> BatchSummary:
    """Score `source` on the cluster of `client` into the partitioned Parquet folders."""
    options = storage_options()
    bundle.verify(model_dir)
    files, kind = input_files(source, options)
    if out.rstrip("/") in {url.rstrip("/") for url, _ in files} | {source.rstrip("/")}:
        raise PhishguardError(f"{out}: the output must differ from the input")
    if kind == ".parquet":
        partitions = parquet_partitions(files, options, partition_rows)
    else:
        urls, names = [url for url, _ in files], [name for _, name in files]
        counts = client.gather(client.map(csv_rows, urls, names, options=options, pure=False))
        firsts = [1 + sum(counts[:i]) for i in range(len(counts))]
        partitions = [
            Partition(i, url, name, None, first, rows)
            for i, ((url, name), first, rows) in enumerate(zip(files, firsts, counts, strict=True))
        ]
    total = sum(p.rows for p in partitions)
    if total == 0:
        raise PhishguardError(f"{source}: no rows to score (a header but no rows?)")
    plugin = BundlePlugin(model_dir)
    client.register_plugin(plugin)
    scored = rejected = 0
    show = sys.stderr.isatty() if progress is None else progress
    try:
        with (
            _output_folders(out, rejects, options) as (out_at, rejects_at),
            tqdm(
                total=total, unit=" rows", disable=not show, file=sys.stderr, desc="scoring"
            ) as bar,
        ):
            futures = {
                client.submit(
                    score_partition, p, plugin.key, out_at, rejects_at, options, pure=False
                ): p
                for p in partitions
            }
            for future in as_completed(futures):
                counts = future.result()
                scored, rejected = scored + counts[0], rejected + counts[1]
                bar.update(futures[future].rows)
            if scored + rejected != total:
                raise PhishguardError(f"row counts do not add up: {scored} + {rejected} != {total}")
    finally:
        client.unregister_worker_plugin(plugin.name)
    return BatchSummary(rows=total, scored=scored, rejected=rejected)


def predict_command(
    source: str,
    output: str,
    rejects: str | None,
    model: str | None,
    scheduler: str | None,
    workers: int | None,
) -> BatchSummary:
    """`phishguard predict --scheduler/--workers`: score on a Dask cluster."""
    if workers is not None and workers < 1:
        raise PhishguardError(f"--workers must be positive, got {workers}")
    out = output.rstrip("/")
    rejects_at = rejects.rstrip("/") if rejects else f"{out}.rejects"
    model_dir = Path(model) if model else packaged_model_dir()
    logging.getLogger("distributed").setLevel(logging.WARNING)  # not every connection's news
    with dask_client(scheduler, workers) as client:
        summary = predict_distributed(client, source, out, rejects_at, model_dir)
    log.info(
        "scored %d of %d rows into %s; %d rejected into %s",
        summary.scored,
        summary.rows,
        out,
        summary.rejected,
        rejects_at,
    )
    return summary
