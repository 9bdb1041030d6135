"""Checks on the files given to `phishguard load`, made before anything is written.

Globs are expanded here (the shell does it too, but a quoted glob reaches us as is), and each
file is opened with the same reader as `ingest` to catch what would stop a load half-way:
an unreadable path, an unknown extension, an empty or binary file, another delimiter, a wrong
header, a header without rows, or a last line cut off mid-row.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable
from pathlib import Path

from phishguard.contract.checks import check_columns
from phishguard.contract.csv_reader import cut_off_problem
from phishguard.contract.problems import SchemaError
from phishguard.data.sources import DataSourceError, iter_chunks
from phishguard.io import CHUNK_ROWS

_TAIL_BYTES = 64 * 1024


def expand_sources(patterns: Iterable[str]) -> list[Path]:
    """Paths named by `patterns` (globs expanded, sorted), each once, in the given order.

    A glob that matches nothing is an error naming it; a plain path is kept as given, so a
    missing file is reported by the reader.
    """
    paths: list[Path] = []
    for pattern in patterns:
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))  # noqa: PTH207 (absolute patterns)
            if not matches:
                raise DataSourceError(f"{pattern}: no file matches this pattern")
            paths.extend(Path(m) for m in matches)
        else:
            paths.append(Path(pattern))
    unique: dict[Path, Path] = {}
    for path in paths:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def check_file(path: Path, chunk_rows: int = CHUNK_ROWS) -> None:
    """Raise `DataSourceError` naming `path` unless it looks loadable.

    Catches, before any write: unreadable paths, unknown extensions, empty or binary files,
    other delimiters, a wrong header, a header without rows, and a cut-off last line.
    """
    chunks = iter_chunks(path, chunk_rows)
    try:
        first = next(chunks, None)
    finally:
        chunks.close()
    if first is None or first.empty:
        header = path.suffix.lower() in {".csv", ".arff"} and first is not None
        raise DataSourceError(f"{path}: {'a header but ' if header else ''}no rows")
    try:
        check_columns([str(c) for c in first.columns])
    except SchemaError as error:
        raise DataSourceError(f"{path}: {error}") from None
    if path.suffix.lower() == ".csv":
        _check_csv_tail(path)
    elif path.suffix.lower() in {".jsonl", ".ndjson"}:
        _check_jsonl_tail(path)


def _last_line(path: Path) -> str:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - _TAIL_BYTES))
        tail = handle.read().decode("utf-8", errors="replace")
    lines = [line for line in tail.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _check_csv_tail(path: Path) -> None:
    """A last line with fewer fields than the header, or cut just after a comma, is a file cut
    off mid-row."""
    problem = cut_off_problem(path)
    if problem:
        raise DataSourceError(f"{path}: {problem}")


def _check_jsonl_tail(path: Path) -> None:
    try:
        json.loads(_last_line(path))
    except json.JSONDecodeError:
        raise DataSourceError(
            f"{path}: the last line is not complete JSON; the file looks cut off"
        ) from None
