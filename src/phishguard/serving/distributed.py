"""Batch scoring on a Dask cluster: `phishguard predict IN -o OUT --scheduler ADDRESS | --workers N`.

The input (a file, a glob, a folder of Parquet or CSV parts, local or `s3://`) is cut into
partitions whose global row numbers are fixed before any scoring starts: Parquet row groups,
joined or sliced, from the files' metadata; CSV files by a first counting pass with the one CSV
reader. Each partition is scored on a worker by `batch.score_chunks`, the same checks and the
same model as single-process `phishguard predict`, and written as `OUT/part-NNNNN.parquet` (row,
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

import glob
import hashlib
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import CancelledError
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import dask
import pyarrow as pa
import pyarrow.parquet as pq
from distributed import Client, Future, WorkerPlugin, as_completed
from distributed.comm import CommClosedError
from distributed.scheduler import KilledWorker
from tqdm import tqdm

from phishguard import DataSourceError, PhishguardError, first_line
from phishguard.contract.problems import SchemaError
from phishguard.contract.schema import FEATURES
from phishguard.dask_cluster import LOCAL, SCHEDULER_VARIABLE, connect, local_cluster
from phishguard.data.validate import REASON, ROW
from phishguard.io import ensure_folder, locked_folder, remove_stale_parts
from phishguard.modeling import bundle
from phishguard.serving.batch import BatchSummary, score_chunks, scores_schema
from phishguard.serving.partitions import (
    PARTITION_ROWS,
    Partition,
    csv_partitions,
    csv_rows,
    filesystem,
    input_files,
    is_remote,
    parquet_partitions,
    read_partition,
    storage_options,
)
from phishguard.serving.scoring import Scorer, load_scorer, packaged_model_dir

log = logging.getLogger(__name__)

DASK_CONFIG_DIR = Path(__file__).with_name("dask_config")
"""Dask settings for batch scoring: used by `--workers N`, documented for `dask worker`."""
REJECTS_SCHEMA = pa.schema(
    [(ROW, pa.int64()), *((name, pa.string()) for name in FEATURES), (REASON, pa.string())]
)

_SCORERS: dict[tuple[str, str], Scorer] = {}
"""Per worker process: the loaded bundles, by (the client's bundle path, checksum-file sha256)."""


def score_partition(
    partition: Partition, key: tuple[str, str], out: str, rejects: str, options: dict[str, Any]
) -> tuple[int, int]:
    """Score one partition into its part files (a task); return (scored, rejected) counts."""
    scorer = _SCORERS.get(key)
    if scorer is None:  # the plugin's set-up failed here; its error is in the worker's log
        raise bundle.PackageError(f"{key[0]}: the model bundle did not load on this worker")
    name = f"part-{partition.index:05d}.parquet"
    out_fs, out_path = filesystem(f"{out}/{name}", options)
    rej_fs, rej_path = filesystem(f"{rejects}/{name}", options)
    rows = scored = rejected = 0
    with (
        out_fs.open(out_path, "wb") as out_file,
        rej_fs.open(rej_path, "wb") as rej_file,
        pq.ParquetWriter(out_file, scores_schema(scorer)) as scored_writer,
        pq.ParquetWriter(rej_file, REJECTS_SCHEMA) as rejects_writer,
    ):
        chunks = score_chunks(scorer, read_partition(partition, options), partition.first_row)
        try:
            for chunk in chunks:
                scored_writer.write_table(chunk.scores)
                if chunk.rejects is not None:
                    text = chunk.rejects.astype({name: "string" for name in FEATURES})
                    rejects_writer.write_table(pa.Table.from_pandas(text, REJECTS_SCHEMA, False))
                    rejected += len(chunk.rejects)
                rows, scored = rows + chunk.rows, scored + len(chunk.scores)
        except SchemaError as error:
            raise SchemaError(f"{partition.name}: {error}") from None
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


def batch_config() -> dict[str, Any]:
    """The settings of `DASK_CONFIG_DIR` as dotted keys, for `dask.config.set` (which would
    replace a whole section given as a nested dict)."""
    return dict(_dotted(dask.config.collect(paths=[str(DASK_CONFIG_DIR)], env={})))


def _dotted(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _dotted(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


@contextmanager
def dask_client(scheduler: str | None, workers: int | None) -> Iterator[Client]:
    """A client of the cluster at `scheduler`, or of a `local_cluster` of `workers` (`local`,
    or `workers` set) with the batch settings of `DASK_CONFIG_DIR`.

    The local workers run in this process (`processes=False`, in-process transport). The model
    is loaded once and shared, and the scoring releases the GIL (XGBoost's predict, Arrow,
    numpy), so N workers use N cores without starting N Python processes that each import the
    libraries and load the model again (`make bench-scale`).
    Isolation between workers is what a real cluster (`dask worker` processes) is for."""
    if scheduler in (None, LOCAL):
        count = workers or os.cpu_count() or 1
        with (
            dask.config.set(batch_config()),
            local_cluster(count, processes=False) as cluster,
            Client(cluster) as client,
        ):
            yield client
        return
    if workers is not None:
        raise PhishguardError("--workers starts a local cluster; leave it out with an address")
    with connect(scheduler, f"check --scheduler / ${SCHEDULER_VARIABLE}") as client:
        yield client


@contextmanager
def _output_folders(out: str, rejects: str, options: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Where the tasks write: for local folders, hidden ones renamed onto `out` and `rejects`
    only when every part is written; on S3 the prefixes themselves, old parts removed first."""
    if is_remote(out):
        for target in (out, rejects):
            fs, path = filesystem(target, options)
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
        with ExitStack() as locks:
            for folder, target in zip(staging, targets, strict=True):
                ensure_folder(folder, target)  # a parent that is a file, a full disk: one line
                locks.enter_context(locked_folder(folder))  # not stale while we write it
            yield str(staging[0]), str(staging[1])
            for folder, target in zip(staging, targets, strict=True):
                if target.exists():
                    shutil.rmtree(target)
                folder.rename(target)
        for target in targets:  # what a run killed half-way left behind
            remove_stale_parts(target.parent, f".{glob.escape(target.name)}.*.part")
    finally:
        for folder in staging:
            shutil.rmtree(folder, ignore_errors=True)


def _where(url: str) -> str:
    """`url` comparable with another: a local path resolved, a remote URL without its last /."""
    return url.rstrip("/") if is_remote(url) else str(Path(url).resolve())


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
    inputs = {_where(url) for url, _ in files} | {_where(source)}
    if _where(out) in inputs or _where(rejects) in inputs or _where(out) == _where(rejects):
        raise PhishguardError(
            f"{out}: the output and the rejects must differ from each other and from the input"
        )
    if kind == ".parquet":
        partitions = parquet_partitions(files, options, partition_rows)
    else:
        urls, names = [url for url, _ in files], [name for _, name in files]
        counts = client.gather(client.map(csv_rows, urls, names, options=options, pure=False))
        partitions = csv_partitions(files, counts)
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
                counts = _result(future, futures[future])
                scored, rejected = scored + counts[0], rejected + counts[1]
                bar.update(futures[future].rows)
            if scored + rejected != total:
                raise PhishguardError(f"row counts do not add up: {scored} + {rejected} != {total}")
    finally:
        with suppress(OSError, TimeoutError, CancelledError):  # the cluster may be gone
            client.unregister_worker_plugin(plugin.name)
    return BatchSummary(rows=total, scored=scored, rejected=rejected)


def _result(future: Future, partition: Partition) -> tuple[int, int]:
    """A task's counts; the cluster's own failures as one line (the task's errors as raised)."""
    try:
        return future.result()
    except KilledWorker:
        raise PhishguardError(
            f"{partition.name}: the workers scoring rows {partition.first_row}.. died repeatedly "
            "(out of memory?); give them more memory or write smaller Parquet row groups"
        ) from None
    except (CancelledError, CommClosedError) as error:
        raise PhishguardError(
            f"lost the Dask scheduler during the run ({first_line(error) or type(error).__name__})"
        ) from None


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
