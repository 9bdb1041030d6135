"""The one CSV reader: `ingest`, `phishguard load`, `phishguard predict` and `/predict_csv`.

pandas alone takes the surplus leading cells of a row as its index (so every feature gets its
neighbour's value) and pads a short row with missing cells. Here every line is split and
counted before pandas parses it:

- a row whose field count differs from the header's, or with a cell longer than
  `MAX_CELL_CHARS`, keeps its place with every cell missing and the reason in the
  `ROW_PROBLEM` column, so validation quarantines (or rejects) it, naming the row;
- a NUL byte or invalid UTF-8 anywhere, or a bad header, stops the read with one
  `DataSourceError` line naming the file and the line;
- one line is one row (a quoted value cannot hold a line break); blank lines are skipped.

The stream is read in blocks of `BLOCK_BYTES`: memory is bounded by the chunk's rows and one
block, whatever the longest line (a longer line is skipped, not held). Counting commas per line
in C (the csv module only for the rare line with a quote) keeps millions of rows fast.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from phishguard import DataSourceError
from phishguard.contract.checks import column_problems
from phishguard.contract.problems import TooManyRecordsError, columns_message
from phishguard.contract.schema import MAX_CELL_CHARS, ROW_PROBLEM, too_long_problem

BLOCK_BYTES = 1 << 20
# A quoted cell may be as long as a block; beyond that, the line is skipped, not parsed.
csv.field_size_limit(max(csv.field_size_limit(), 2 * BLOCK_BYTES))
_TAIL_BYTES = 64 * 1024


class CsvHeaderError(DataSourceError):
    """The first line is text, but not a header this project can read (see `_header_problem`: duplicated names, another delimiter, a reserved name)."""


@dataclass(frozen=True)
class _LongLine:
    """A line longer than a block: only its start is kept, to name the field that is too long."""

    start: str


def _header_problem(header: str) -> str | None:
    """What is wrong with a CSV header line that pandas would silently work around, or None.

    pandas renames a duplicated column (`SFH.1`) and reads a `;`-delimited file as one column;
    either would later show up as a confusing column error.
    """
    names = _fields(header.rstrip("\r\n"))
    if duplicated := column_problems(names, names):
        return columns_message(duplicated)
    if "," not in header:
        for delimiter in (";", "\t", "|"):
            if delimiter in header:
                return f"the header is {delimiter!r}-delimited; expected comma-separated values"
    if ROW_PROBLEM in names:
        return f"the column name {ROW_PROBLEM!r} is reserved"
    return None


def read_csv_chunks(stream: BinaryIO, name: str, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The rows of the CSV `stream` as DataFrames of text (missing cells NA), `chunk_rows` each.

    Columns are the header's, plus `ROW_PROBLEM` in a chunk holding a row that could not be
    split into them. A header without rows gives one empty frame. `name` names the source in
    the `DataSourceError` (or `CsvHeaderError`) raised for what cannot be read at all.
    """
    batches = _Batches(stream, name)
    names = _header(batches, name)
    rows = _Rows(names)
    yielded = False
    for batch in batches:
        rows.add(batch)
        while len(rows.lines) >= chunk_rows:
            yield rows.take(chunk_rows, name)
            yielded = True
    if rows.lines or not yielded:
        yield rows.take(len(rows.lines), name)


def read_upload(path: Path, max_rows: int) -> pd.DataFrame:
    """The rows of an uploaded CSV file (the service's `/predict_csv`), as `read_csv_chunks`.

    Raises `CsvHeaderError` for a header this project cannot read, `DataSourceError` for a
    file that is not readable CSV text at all, and `TooManyRecordsError` for more than
    `max_rows` rows (at most one row past the limit is read).
    """
    with path.open("rb") as handle:
        table = next(read_csv_chunks(handle, "the upload", max_rows + 1))
    if len(table) > max_rows:
        raise TooManyRecordsError(f"{len(table)} rows in one upload; the limit is {max_rows}")
    return table


def cut_off_problem(path: Path) -> str | None:
    """Why the CSV at `path` looks cut off (its last line incomplete), or None.

    A last line with fewer fields than the header, or ending in a comma with no line break
    after it (cut just after a comma: the count matches, the last cell is empty), is a cut.
    """
    with path.open("rb") as handle:
        header = handle.readline(_TAIL_BYTES).decode("utf-8-sig", errors="replace")
        size = path.stat().st_size
        handle.seek(max(0, size - _TAIL_BYTES))
        tail = handle.read().decode("utf-8", errors="replace")
    lines = [line for line in tail.splitlines() if line.strip()]
    if not lines or size <= len(header.encode()) or "\0" in tail:  # binary: the reader says so
        return None
    expected, found = len(_fields(header.rstrip("\r\n"))), len(_fields(lines[-1]))
    if found < expected:
        return f"the last line is truncated ({found} of {expected} fields); the file looks cut off"
    if not tail.endswith("\n") and lines[-1].rstrip().endswith(","):
        return (
            "the last line is truncated (it ends in a comma with no line break); "
            "the file looks cut off"
        )
    return None


def _fields(line: str, strict: bool = False) -> list[str]:
    row = next(csv.reader([line], skipinitialspace=True, strict=strict), [])
    return [field.strip() for field in row]


class _Batches:
    """The stream's lines (line breaks removed), one list per block read; every byte is checked
    for NUL and UTF-8. `lines()` hands out the first lines one by one (the header); iterating
    gives the rest, a list at a time."""

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self._blocks = _line_blocks(stream, name)
        self._held: list[str | _LongLine] = []

    def lines(self) -> Iterator[str | _LongLine]:
        while True:
            if self._held:
                yield self._held.pop(0)
                continue
            block = next(self._blocks, None)
            if block is None:
                return
            self._held = block

    def __iter__(self) -> Iterator[list[str | _LongLine]]:
        if self._held:
            yield self._held
            self._held = []
        yield from self._blocks


def _line_blocks(stream: BinaryIO, name: str) -> Iterator[list[str | _LongLine]]:
    pending = b""
    long_start: str | None = None  # the start of a line longer than a block, being skipped
    offset = lines_before = 0
    while block := stream.read(BLOCK_BYTES):
        if (nul := block.find(b"\0")) >= 0:
            line = lines_before + pending.count(b"\n") + block.count(b"\n", 0, nul) + 1
            raise DataSourceError(
                f"{name}: a NUL byte on line {line}; the file is binary, not text"
            )
        batch: list[str | _LongLine] = []
        if long_start is not None:
            end = block.find(b"\n")
            if end < 0:
                offset += len(block)
                continue
            batch.append(_LongLine(long_start))
            offset, lines_before = offset + end + 1, lines_before + 1
            block, long_start = block[end + 1 :], None
        data = pending + block
        cut = data.rfind(b"\n") + 1
        complete, pending = data[:cut], data[cut:]
        if len(pending) > BLOCK_BYTES:
            long_start, pending = pending[:BLOCK_BYTES].decode("utf-8", errors="replace"), b""
        batch.extend(_decode(complete, name, offset).split("\n")[:-1])
        offset += len(complete)
        lines_before += complete.count(b"\n")
        yield batch
    if long_start is not None:
        yield [_LongLine(long_start)]
    elif pending:
        yield [_decode(pending, name, offset)]


def _decode(data: bytes, name: str, offset: int) -> str:
    try:
        text = data.decode("utf-8-sig" if offset == 0 else "utf-8")
    except UnicodeDecodeError as error:
        raise DataSourceError(
            f"{name}: not UTF-8 text ({error.reason} at byte {offset + error.start})"
        ) from None
    return text.replace("\r\n", "\n")


def _header(batches: _Batches, name: str) -> list[str]:
    """The header's column names: the first non-blank line, taken out of `batches`."""
    for line in batches.lines():
        if isinstance(line, _LongLine):
            raise DataSourceError(f"{name}: the first line is over {BLOCK_BYTES} bytes long")
        if line.strip():
            try:
                names = _fields(line, strict=True)
            except csv.Error as error:
                raise DataSourceError(f"{name}: the header is not valid CSV ({error})") from None
            problem = _header_problem(line)
            if problem:
                raise CsvHeaderError(f"{name}: {problem}")
            return names
    raise DataSourceError(f"{name}: the file is empty")


class _Rows:
    """Lines waiting to become a chunk. A line that cannot be split into the header's columns
    is replaced by an all-empty one, its reason kept by position."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.expected = len(names) - 1  # the commas of a well-formed line
        self.lines: list[str] = []
        self.problems: dict[int, str] = {}

    def add(self, batch: list[str | _LongLine]) -> None:
        text = "\n".join(line for line in batch if type(line) is str)
        if self.expected == 0:  # one column: a blank line has the right count of commas
            batch = [line for line in batch if type(line) is not str or line.strip()]
        # Only the suspects go through the csv module: a wrong comma count (a blank line too),
        # a quote, a line long enough to hold a cell over the cap, or one too long to hold.
        expected, longest = self.expected, MAX_CELL_CHARS + self.expected
        suspects = {
            i
            for i, line in enumerate(batch)
            if type(line) is not str or line.count(",") != expected
        }
        if '"' in text:
            suspects.update(i for i, line in enumerate(batch) if type(line) is str and '"' in line)
        if max(map(len, text.split("\n"))) > longest:
            suspects.update(
                i for i, line in enumerate(batch) if type(line) is str and len(line) > longest
            )
        blank = set()
        for index in sorted(suspects):
            line = batch[index]
            if type(line) is str and not line.strip():
                blank.add(index)
                continue
            batch[index], reason = self._split(line)
            if reason:
                self.problems[len(self.lines) + index - len(blank)] = reason
        if blank:
            batch = [line for index, line in enumerate(batch) if index not in blank]
        self.lines.extend(batch)  # type: ignore[arg-type]  (each _LongLine was replaced)

    def _split(self, line: str | _LongLine) -> tuple[str, str | None]:
        """`line` as pandas reads it like the csv module does, or an all-empty line and why."""
        empty = "," * self.expected
        text = line.start if isinstance(line, _LongLine) else line
        try:
            fields = (
                next(csv.reader([text], skipinitialspace=True, strict=True), [])
                if '"' in text
                else text.split(",")
            )
        except csv.Error as error:
            if isinstance(line, str):
                return empty, f"is not valid CSV ({error})"
            fields = next(csv.reader([text], skipinitialspace=True), [])
        for column, field in enumerate(fields):
            cut = isinstance(line, _LongLine) and column == len(fields) - 1
            if len(field) > MAX_CELL_CHARS or cut:
                shown = repr(self.names[column]) if column < len(self.names) else column + 1
                size = f"more than {BLOCK_BYTES}" if cut else str(len(field))
                return empty, too_long_problem(str(shown), size)
        if len(fields) != len(self.names):
            return empty, f"has {len(fields)} fields but the header has {len(self.names)}"
        # Re-quoted one way, so that no quote can join lines or move a cell in pandas' parse.
        return ",".join('"' + field.replace('"', '""') + '"' for field in fields), None

    def take(self, count: int, name: str) -> pd.DataFrame:
        lines, self.lines = self.lines[:count], self.lines[count:]
        problems = {i: r for i, r in self.problems.items() if i < count}
        self.problems = {i - count: r for i, r in self.problems.items() if i >= count}
        if not lines:
            return pd.DataFrame({column: pd.Series(dtype=str) for column in self.names})
        table = pd.read_csv(
            io.StringIO("\n".join(lines) + "\n"),
            header=None,
            names=self.names,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skipinitialspace=True,
            index_col=False,
            skip_blank_lines=False,
        )
        if len(table) != len(lines):  # cannot happen: every line was split and counted above
            raise DataSourceError(f"{name}: {len(lines)} lines parsed into {len(table)} rows")
        if problems:
            reasons = pd.Series(pd.NA, index=table.index, dtype="string")
            reasons.iloc[list(problems)] = list(problems.values())
            table[ROW_PROBLEM] = reasons
        return table
