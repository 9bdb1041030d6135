"""The input of a distributed `phishguard predict`, cut into partitions with global row numbers.

A source is a file, a glob or a folder of Parquet or CSV parts, local or on S3 (any fsspec URL).
Partitions are fixed before any scoring starts, from the input alone: a Parquet file's row
groups, small ones joined and large ones cut to about `PARTITION_ROWS` rows, numbered from its
metadata; a CSV file is one partition, numbered by a first pass that counts its rows with the
one CSV reader (`csv_rows`, run on the workers). So the same input always gives the same partitions and row numbers, whatever the
cluster. S3 follows the AWS rules the DVC remote follows (`storage_options`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from phishguard import DataSourceError, first_line
from phishguard.contract.csv_reader import read_csv_chunks
from phishguard.contract.schema import FEATURES
from phishguard.io import CHUNK_ROWS
from phishguard.serving.judging import check_parquet_columns

PARTITION_ROWS = 125_000
"""Parquet row groups are joined or cut into partitions of about this many rows (a CSV file is
one): a task of ~1 s on a core, small enough that the last tasks keep every worker busy to the
end and a lost worker costs little, large enough that a task's own cost (the file's footer, two
part files, the scheduler's round trip) stays near 1%."""
KINDS = (".parquet", ".csv")


@dataclass(frozen=True)
class Partition:
    """Rows `first_row` .. `first_row + rows - 1` (global, 1-based): a CSV file, or row groups
    of a Parquet file, or a slice of one row group. `url` is read; `name` is how the user wrote
    it, for messages."""

    index: int
    url: str
    name: str
    row_groups: tuple[int, ...] | None
    first_row: int
    rows: int
    skip: int = 0
    """Rows of `row_groups` before this partition's first: a large row group is cut, and each
    slice decodes its group from the start (cheap next to scoring: 30 small integer columns)."""


def storage_options(environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
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


def filesystem(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    """The fsspec filesystem of `url` and the path in it (`options` for remote URLs only)."""
    return fsspec.core.url_to_fs(url, **(options if "://" in url else {}))


def is_remote(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def input_files(source: str, options: dict[str, Any]) -> tuple[list[tuple[str, str]], str]:
    """The input's parts as (url, name) in sorted order, and their kind (.parquet or .csv)."""
    fs, path = filesystem(source, options)
    protocol = source.split("://", 1)[0] + "://" if is_remote(source) else ""
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
    """Partitions of about `partition_rows`, numbered from the metadata: consecutive small row
    groups joined, a row group of more rows cut into equal slices."""
    partitions: list[Partition] = []
    first = 1

    def add(url: str, name: str, groups: tuple[int, ...], rows: int, skip: int = 0) -> None:
        nonlocal first
        partitions.append(Partition(len(partitions), url, name, groups, first, rows, skip))
        first += rows

    for url, name in files:
        groups: list[int] = []
        rows = 0
        sizes = _row_group_sizes(url, name, options)
        for group, size in enumerate(sizes):
            if size > partition_rows:
                if groups:
                    add(url, name, tuple(groups), rows)
                    groups, rows = [], 0
                step = math.ceil(size / math.ceil(size / partition_rows))  # equal slices
                for skip in range(0, size, step):
                    add(url, name, (group,), min(step, size - skip), skip)
                continue
            groups.append(group)
            rows += size
            if rows >= partition_rows or group == len(sizes) - 1:
                add(url, name, tuple(groups), rows)
                groups, rows = [], 0
    return partitions


def _row_group_sizes(url: str, name: str, options: dict[str, Any]) -> list[int]:
    """The rows of each row group of a Parquet file, from its footer."""
    fs, path = filesystem(url, options)
    try:
        with fs.open(path, "rb") as handle:
            metadata = pq.ParquetFile(handle).metadata
    except (pa.ArrowInvalid, OSError) as error:
        raise DataSourceError(
            f"{name}: not a readable Parquet file ({first_line(error)})"
        ) from None
    return [metadata.row_group(group).num_rows for group in range(metadata.num_row_groups)]


def csv_rows(url: str, name: str, options: dict[str, Any]) -> int:
    """The rows of one CSV file as the CSV reader counts them (a task: the first pass)."""
    fs, path = filesystem(url, options)
    with fs.open(path, "rb") as handle:
        return sum(len(chunk) for chunk in read_csv_chunks(handle, name, CHUNK_ROWS))


def read_partition(
    partition: Partition, options: dict[str, Any]
) -> Iterator[pa.RecordBatch | pd.DataFrame]:
    """The partition's rows as the single-process readers give them, `CHUNK_ROWS` at a time:
    typed Arrow batches of the feature columns (checked first) for Parquet, DataFrames for CSV."""
    fs, path = filesystem(partition.url, options)
    with fs.open(path, "rb") as handle:
        if partition.row_groups is None:
            yield from read_csv_chunks(handle, partition.name, CHUNK_ROWS)
            return
        try:
            parquet = pq.ParquetFile(handle)
            check_parquet_columns(parquet.schema_arrow.names)
            batches = parquet.iter_batches(
                CHUNK_ROWS, row_groups=list(partition.row_groups), columns=list(FEATURES)
            )
            yield from _window(batches, partition.skip, partition.rows)
        except pa.ArrowException as error:
            raise DataSourceError(
                f"{partition.name}: not a readable Parquet file ({first_line(error)})"
            ) from None


def csv_partitions(files: list[tuple[str, str]], counts: list[int]) -> list[Partition]:
    """One partition per CSV file, numbered from the row `counts` of the first pass."""
    partitions, first = [], 1
    for index, ((url, name), rows) in enumerate(zip(files, counts, strict=True)):
        partitions.append(Partition(index, url, name, None, first, rows))
        first += rows
    return partitions


def _window(batches: Iterator[pa.RecordBatch], skip: int, rows: int) -> Iterator[pa.RecordBatch]:
    """Rows `skip` .. `skip + rows - 1` of the batches, which are read no further than that."""
    at = 0
    for batch in batches:
        start, stop = max(skip - at, 0), min(skip + rows - at, len(batch))
        at += len(batch)
        if start < stop:
            yield batch.slice(start, stop - start)
        if at >= skip + rows:
            return
