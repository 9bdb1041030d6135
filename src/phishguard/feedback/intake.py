"""Checking verdicts on the way in: rows of a file, or the items of a `POST /feedback`.

A verdict is a record of the 30 features and its label. The features are judged by the one check
engine, with the messages every other entry point gives (`records_matrix`/`judge_records` for
JSON records, `quarantine` for table rows); the label is `label` (`phishing` or `legitimate`)
or `Result` in the UCI coding (-1 phishing, 1 legitimate). An item of a request may name a
logged prediction (`prediction_id`, as /predict answers it) instead of giving the record: the
record is then read back from the prediction log.

All or nothing: when any row or item is wrong, the error names every problem (the first
`MAX_REPORTED_PROBLEMS`) and nothing is stored. A request or file that gives one record both
labels contradicts itself, and is refused naming the items (rows). The result is the table `FeedbackStore.add`
takes: the 30 features and `Result` (int8), and `note`, `source` and `prediction_id` per row.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from phishguard import PhishguardError
from phishguard.contract.checks import check_columns, judge_records
from phishguard.contract.problems import (
    MAX_REPORTED_PROBLEMS,
    RecordError,
    SchemaError,
    TooManyRecordsError,
    record_message,
    rows_error,
)
from phishguard.contract.record_checks import records_matrix
from phishguard.contract.schema import (
    CLASS_NAMES,
    COLUMNS,
    FEATURES,
    LABEL,
    RESULT_LEGITIMATE,
    RESULT_PHISHING,
    clipped,
    feature_vector_ids,
)
from phishguard.data.validate import REASON, ROW, quarantine
from phishguard.feedback.store import NOTE, OPTIONAL_FIELDS, PREDICTION_ID, SOURCE
from phishguard.monitoring.log_reader import logged_features

LABEL_FIELD = "label"
RESULTS = {CLASS_NAMES[1]: RESULT_PHISHING, CLASS_NAMES[0]: RESULT_LEGITIMATE}
"""A verdict's label, as the API and the `label` column write it, in the UCI coding."""
RECORD = "record"
ITEM_FIELDS = (RECORD, PREDICTION_ID, LABEL_FIELD, SOURCE, NOTE)
MAX_SOURCE_CHARS = 64
MAX_NOTE_CHARS = 1_000
NOTHING_STORED = "nothing was stored"
LOG_POLL_S = 0.2
_ITEM = re.compile(r"feedback\[(\d+)\]")


class FeedbackError(PhishguardError, ValueError):
    """Some verdicts are wrong; the message names each, and says nothing was stored."""


def label_of(result: int) -> str:
    """The label of a `Result` in the UCI coding: `phishing` or `legitimate`."""
    return CLASS_NAMES[1] if result == RESULT_PHISHING else CLASS_NAMES[0]


def _check_count(items: Sequence[Any], max_rows: int, what: str, field: str) -> None:
    """Refuse a request body's list `field` of `what` that is empty or over `max_rows`."""
    if len(items) > max_rows:
        raise TooManyRecordsError(
            f"{len(items)} {what} in one request; the limit is {max_rows}; {NOTHING_STORED}"
        )
    if not items:
        raise _refused([f"no {what}: send at least one in `{field}`"])


def _refused(problems: list[str], more: int = 0) -> FeedbackError:
    return FeedbackError(f"{RecordError(problems, more)}; {NOTHING_STORED}")


def _label_problem(value: Any) -> str | None:
    if isinstance(value, str) and value in RESULTS:
        return None
    return f"{LABEL_FIELD}={clipped(repr(value))} is not 'phishing' or 'legitimate'"


def _text_problem(name: str, value: Any, limit: int) -> str | None:
    if value is None or (isinstance(value, str) and len(value) <= limit):
        return None
    if isinstance(value, str):
        return f"{name} has {len(value)} characters; the limit is {limit}"
    return f"{name} must be a string, got {clipped(repr(value))}"


def verdicts_from_items(
    items: Sequence[Any],
    max_rows: int,
    prediction_log: Path | None,
    log_delay_s: float = 0.0,
) -> pd.DataFrame:
    """The verdicts of a `POST /feedback` body's `feedback` list, checked.

    Raises `TooManyRecordsError` over `max_rows` items, and `FeedbackError` naming each bad
    item as `feedback[i].field`. A `prediction_id` is looked up in the prediction log at
    `prediction_log` (None: the log is off); one not found is looked for once more after
    up to `log_delay_s` (polling), the time another process's log writer may take to write it.
    """
    _check_count(items, max_rows, "verdicts", "feedback")
    problems: list[str] = []
    records: list[Any] = []
    record_items: list[int] = []
    wanted: dict[str, int] = {}
    for index, item in enumerate(items):
        where = f"feedback[{index}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: expected an object with `record` or `prediction_id`")
            continue
        unknown = [name for name in item if name not in ITEM_FIELDS]
        problems += [f"{where}: unknown field {clipped(repr(name))}" for name in unknown[:3]]
        given = [name for name in (RECORD, PREDICTION_ID) if name in item]
        if len(given) != 1:
            problems.append(f"{where}: give exactly one of `record` and `prediction_id`")
        elif RECORD in item:
            records.append(item[RECORD])
            record_items.append(index)
        elif not isinstance(item[PREDICTION_ID], str):
            problems.append(f"{where}.{PREDICTION_ID}: must be a string")
        else:
            wanted.setdefault(item[PREDICTION_ID], index)
        if LABEL_FIELD not in item:
            problems.append(f"{where}: missing field 'label' (phishing or legitimate)")
        elif problem := _label_problem(item[LABEL_FIELD]):
            problems.append(f"{where}.{problem}")
        for name, limit in ((SOURCE, MAX_SOURCE_CHARS), (NOTE, MAX_NOTE_CHARS)):
            if problem := _text_problem(name, item.get(name), limit):
                problems.append(f"{where}.{problem}")
    if records:
        problems += _record_problems(records, record_items)
    logged = _logged_features(set(wanted), prediction_log) if wanted else {}
    deadline = time.monotonic() + log_delay_s
    while len(logged) < len(wanted) and prediction_log is not None and time.monotonic() < deadline:
        time.sleep(LOG_POLL_S)
        logged = _logged_features(set(wanted), prediction_log)
    problems += [
        f"feedback[{index}].{PREDICTION_ID}: unknown prediction {clipped(repr(pid))} "
        "(not in the prediction log)"
        for pid, index in wanted.items()
        if pid not in logged
    ]
    if problems:
        problems.sort(key=_item_index)  # stable: an item's problems keep their order
        more = max(0, len(problems) - MAX_REPORTED_PROBLEMS)
        raise _refused(problems[:MAX_REPORTED_PROBLEMS], more)
    matrix = records_matrix(records, max_rows) if records else np.empty((0, len(FEATURES)))
    by_item = dict(zip(record_items, matrix.astype(np.int8), strict=True))
    rows = [
        by_item[index] if RECORD in item else logged[item[PREDICTION_ID]]
        for index, item in enumerate(items)
    ]
    table = pd.DataFrame(np.array(rows, dtype=np.int8), columns=list(FEATURES))
    table[LABEL] = np.array([RESULTS[item[LABEL_FIELD]] for item in items], dtype=np.int8)
    if contradictions := _contradictions(table, "feedback[{}]", 0):
        raise _refused(contradictions[:MAX_REPORTED_PROBLEMS])
    for name in OPTIONAL_FIELDS:
        table[name] = pd.Series([item.get(name) for item in items], dtype=object)
    return table


def _contradictions(table: pd.DataFrame, name: str, first: int) -> list[str]:
    """One problem per record given both labels in `table`, naming its items (`name` formats
    an item's position counted from `first`)."""
    vectors = feature_vector_ids(table)
    labels = pd.DataFrame({"vector": vectors, LABEL: table[LABEL].to_numpy()})
    both = labels.groupby("vector")[LABEL].nunique()
    problems = []
    for vector in both.index[both > 1]:
        where = ", ".join(name.format(i + first) for i in np.flatnonzero(vectors == vector))
        problems.append(
            f"{where}: the same record labelled both phishing and legitimate in one request; "
            "send one label per record"
        )
    return sorted(problems, key=_item_index)


DECISION_FIELDS = ("verdict_id", "decision")


def reviews_from_items(items: Sequence[Any], max_rows: int) -> dict[str, str]:
    """The decisions of a `POST /feedback/review` body's `reviews` list (verdict id → approve
    or reject), checked: `FeedbackError` names each bad item as `reviews[i].field`."""
    _check_count(items, max_rows, "reviews", "reviews")
    problems: list[str] = []
    decided: dict[str, list[str]] = {"approve": [], "reject": []}
    for index, item in enumerate(items):
        where = f"reviews[{index}]"
        if not isinstance(item, Mapping) or sorted(item) != sorted(DECISION_FIELDS):
            problems.append(f"{where}: expected an object of `verdict_id` and `decision` only")
        elif not isinstance(item["verdict_id"], str):
            problems.append(f"{where}.verdict_id: must be a string")
        elif item["decision"] not in decided:
            value = clipped(repr(item["decision"]))
            problems.append(f"{where}.decision={value} is not 'approve' or 'reject'")
        else:
            decided[item["decision"]].append(item["verdict_id"])
    both = set(decided["approve"]) & set(decided["reject"])
    problems += [f"verdict {clipped(v)} is both approved and rejected" for v in sorted(both)]
    if problems:
        more = max(0, len(problems) - MAX_REPORTED_PROBLEMS)
        raise _refused(problems[:MAX_REPORTED_PROBLEMS], more)
    return {i: decision for decision, ids in decided.items() for i in ids}


def _item_index(problem: str) -> float:
    """The item a problem names (`feedback[3]…` → 3); a summary line goes last."""
    found = _ITEM.match(problem)
    return int(found.group(1)) if found else float("inf")


def _record_problems(records: list[Any], items: list[int]) -> list[str]:
    """The check engine's problems of the `record`s, each named by its item."""
    if not all(isinstance(record, Mapping) for record in records):
        bad = [
            i for i, record in zip(items, records, strict=True) if not isinstance(record, Mapping)
        ]
        return [f"feedback[{i}].record: expected an object of the 30 features" for i in bad]
    try:
        records_matrix(records, len(records))
    except RecordError:
        pass
    else:
        return []
    found, more = judge_records(records)
    named = []
    for problem in found:
        text = record_message(problem).removeprefix(f"record {problem.row}: ")
        named.append(f"feedback[{items[problem.row]}].record: {text}")
    if more:
        named.append(f"… and {more} more problems in the records")
    return named


def _logged_features(ids: set[str], directory: Path | None) -> dict[str, np.ndarray]:
    """The 30 features of each logged prediction among `ids` (absent: not logged)."""
    if directory is None or not directory.is_dir():
        return {}
    return logged_features(directory, ids)


def verdicts_from_table(table: pd.DataFrame) -> pd.DataFrame:
    """The verdicts of a file's rows, checked: the 30 features and `label` or `Result`, and
    optionally `note` and `source`. Raises `SchemaError` for wrong columns and
    `FeedbackError` naming each bad row (`row N: reason`, from 1 as in the file)."""
    labels = [name for name in (LABEL_FIELD, LABEL) if name in table.columns]
    if len(labels) != 1:
        raise SchemaError(
            "schema error: a feedback file needs exactly one label column: `label` (phishing or "
            f"legitimate) or `{LABEL}` (UCI coding: -1 phishing, 1 legitimate)"
        )
    extra = [name for name in (NOTE, SOURCE) if name in table.columns]
    table = table.reset_index(drop=True)
    features = table.drop(columns=[*labels, *extra])
    check_columns(list(map(str, features.columns)), FEATURES)
    if len(table) == 0:
        raise _refused(["no rows: the file has a header but no data rows"])
    reasons: dict[int, list[str]] = {}
    if labels == [LABEL_FIELD]:
        text = table[LABEL_FIELD].map(lambda v: v.strip() if isinstance(v, str) else v)
        for row in np.flatnonzero(~text.isin(list(RESULTS)).to_numpy()):
            reasons.setdefault(int(row), []).append(str(_label_problem(table.at[row, LABEL_FIELD])))
        results = text.map(RESULTS).fillna(RESULT_PHISHING)  # a bad label's row is refused
        features = features.assign(**{LABEL: results.astype(np.int8)})
    else:
        features = features.assign(**{LABEL: table[LABEL]})
    for name, limit in ((SOURCE, MAX_SOURCE_CHARS), (NOTE, MAX_NOTE_CHARS)):
        if name in table.columns:
            for row, value in enumerate(table[name].tolist()):
                value = None if pd.isna(value) else value
                if problem := _text_problem(name, value, limit):
                    reasons.setdefault(row, []).append(problem)
    checked = quarantine(features, COLUMNS)
    for row, why in zip(checked.quarantined[ROW], checked.quarantined[REASON], strict=True):
        reasons.setdefault(int(row) - 1, []).insert(0, str(why))
    if reasons:
        shown = sorted(reasons.items())
        error = rows_error((row + 1, "; ".join(why)) for row, why in shown)
        raise FeedbackError(f"{error}; {NOTHING_STORED}")
    verdicts = checked.valid
    if contradictions := _contradictions(verdicts, "row {}", 1):
        raise FeedbackError(f"{'; '.join(contradictions)}; {NOTHING_STORED}")
    for name in OPTIONAL_FIELDS:
        values = table[name].tolist() if name in table.columns else [None] * len(table)
        verdicts[name] = pd.Series([None if pd.isna(v) else v for v in values], dtype=object)
    return verdicts
