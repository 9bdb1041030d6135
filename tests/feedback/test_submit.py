"""`phishguard feedback FILE` and the checks of verdicts (`phishguard.feedback.intake`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phishguard import cli
from phishguard.contract.problems import SchemaError
from phishguard.contract.schema import COLUMNS, FEATURES, LABEL
from phishguard.data.load import content_ids
from phishguard.feedback.intake import FeedbackError, verdicts_from_items, verdicts_from_table
from phishguard.feedback.store import FEEDBACK_DIR_ENV, open_store
from tests.support import synthetic_rows


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "store"
    monkeypatch.setenv(FEEDBACK_DIR_ENV, str(folder))
    return folder


def stored(folder: Path) -> pd.DataFrame:
    store = open_store({FEEDBACK_DIR_ENV: str(folder)})
    try:
        return store.verdicts()
    finally:
        store.close()


def labelled(n: int, seed: int) -> pd.DataFrame:
    """`n` verdict rows with a `label` column instead of `Result`."""
    rows = synthetic_rows(n, seed)
    names = np.where(rows[LABEL] == -1, "phishing", "legitimate")
    return rows.drop(columns=LABEL).assign(label=names)


def write(table: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        table.to_json(path, orient="records", lines=True)
    else:
        table.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("label", ["label", "Result"])
def test_cli_stores_every_row_once(suffix, label, tmp_path, store_dir, capsys) -> None:
    rows = synthetic_rows(12, seed=21)
    table = rows if label == "Result" else labelled(12, seed=21)
    path = write(table, tmp_path / f"verdicts{suffix}")
    cli.main(["feedback", str(path), "--json", "--submitter", "alice"])
    assert json.loads(capsys.readouterr().out) == {"accepted": 12, "already_present": 0}
    cli.main(["feedback", str(path), "--json"])
    assert json.loads(capsys.readouterr().out) == {"accepted": 0, "already_present": 12}
    kept = stored(store_dir)
    assert sorted(kept["verdict_id"]) == sorted(content_ids(rows))
    assert set(kept["source"]) == {"cli"} and set(kept["submitter"]) == {"alice"}


def test_cli_prints_one_line_without_json(tmp_path, store_dir, capsys) -> None:
    path = write(synthetic_rows(3, seed=22), tmp_path / "v.csv")
    cli.main(["feedback", str(path), "--source", "triage"])
    out = capsys.readouterr().out.strip()
    assert out.startswith("3 verdicts: 3 accepted into ") and out.endswith(", 0 already present")
    assert set(stored(store_dir)["source"]) == {"triage"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.assign(label=t["label"].where(t.index != 2, "maybe")), "row 3: label='maybe'"),
        (lambda t: t.assign(port=t["port"].where(t.index != 0, 5)), "row 1: port=5 not in {-1, 1}"),
        (
            lambda t: t.assign(SFH=t["SFH"].astype(object).where(t.index != 4, "x")),
            "row 5: SFH='x'",
        ),
    ],
)
def test_a_bad_row_stops_the_cli_with_nothing_stored(
    change, message, tmp_path, store_dir, capsys
) -> None:
    path = write(change(labelled(6, seed=23)), tmp_path / "bad.csv")
    with pytest.raises(SystemExit) as stopped:
        cli.main(["feedback", str(path)])
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert message in err and "nothing was stored" in err and len(err.strip().splitlines()) == 1
    assert not store_dir.exists() or stored(store_dir).empty


def test_an_overlong_source_is_refused(tmp_path, store_dir, capsys) -> None:
    path = write(synthetic_rows(2, seed=31), tmp_path / "v.csv")
    with pytest.raises(SystemExit):
        cli.main(["feedback", str(path), "--source", "s" * 65])
    assert "--source must have 1 to 64 characters" in capsys.readouterr().err
    assert not store_dir.exists()


def test_wrong_columns_are_one_schema_line(tmp_path, store_dir, capsys) -> None:
    both = synthetic_rows(2, seed=24).assign(label="phishing")
    misspelled = labelled(2, seed=24).rename(columns={"port": "Port"})
    for table, expected in ((both, "exactly one label column"), (misspelled, "Port")):
        with pytest.raises(SystemExit):
            cli.main(["feedback", str(write(table, tmp_path / "cols.csv"))])
        assert expected in capsys.readouterr().err
    assert not store_dir.exists() or stored(store_dir).empty


def test_table_rows_keep_their_order_and_notes() -> None:
    table = labelled(4, seed=25).assign(note=["a", None, "b", None])
    verdicts = verdicts_from_table(table.astype(str).replace({"None": None}))
    assert list(verdicts.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert verdicts["note"].tolist() == ["a", None, "b", None]
    expected = synthetic_rows(4, seed=25)[list(COLUMNS)].to_numpy()
    np.testing.assert_array_equal(verdicts[list(COLUMNS)].to_numpy(), expected)


def test_result_outside_the_uci_coding_is_refused() -> None:
    rows = synthetic_rows(3, seed=26).assign(Result=[1, 0, -1])
    with pytest.raises(FeedbackError, match=r"row 2: Result=0 not in \{-1, 1\}"):
        verdicts_from_table(rows)
    with pytest.raises(SchemaError):
        verdicts_from_table(rows.drop(columns=LABEL))


def _items(n: int, seed: int) -> list[dict]:
    rows = synthetic_rows(n, seed)
    return [
        {
            "record": {k: int(row[k]) for k in FEATURES},
            "label": "phishing" if row[LABEL] == -1 else "legitimate",
        }
        for _, row in rows.iterrows()
    ]


def test_items_become_verdicts_in_order() -> None:
    items = _items(3, seed=27)
    items[1] |= {"note": "n", "source": "ui"}
    verdicts = verdicts_from_items(items, 10, None)
    np.testing.assert_array_equal(
        verdicts[list(COLUMNS)].to_numpy(), synthetic_rows(3, 27)[list(COLUMNS)].to_numpy()
    )
    assert verdicts["note"].tolist() == [None, "n", None]
    assert verdicts["source"].tolist() == [None, "ui", None]


def test_every_bad_item_is_named_with_the_engine_s_messages() -> None:
    items = _items(6, seed=28)
    items[0]["label"] = "phish"
    items[1]["record"]["port"] = 5
    items[2] = {"prediction_id": "feed-0", "label": "legitimate"}
    items[3]["colour"] = "red"
    items[4]["note"] = "x" * 2_000
    items[5]["record"]["Port"] = items[5]["record"].pop("port")
    with pytest.raises(FeedbackError) as refused:
        verdicts_from_items(items, 10, None)
    text = str(refused.value)
    assert text.endswith("; nothing was stored")
    for expected in (
        "feedback[0].label='phish' is not 'phishing' or 'legitimate'",
        "feedback[2].prediction_id: unknown prediction 'feed-0' (not in the prediction log)",
        "feedback[3]: unknown field 'colour'",
        "feedback[4].note has 2000 characters; the limit is 1000",
        "feedback[5].record: unknown field 'Port' (misspelled 'port'?)",
    ):
        assert expected in text
    # The record problems as /predict words them (columns before values, as the engine does):
    with pytest.raises(FeedbackError, match=r"feedback\[1\].record: field 'port' = 5 is not in"):
        verdicts_from_items([_items(1, seed=30)[0], items[1]], 10, None)


def test_empty_and_too_many_items_are_refused() -> None:
    with pytest.raises(FeedbackError, match="no verdicts"):
        verdicts_from_items([], 10, None)
    with pytest.raises(Exception, match="11 verdicts in one request; the limit is 10"):
        verdicts_from_items(_items(11, seed=29), 10, None)


def test_a_file_that_labels_one_record_both_ways_is_refused_naming_its_rows() -> None:
    """Issue 27: P and L for one record in one submission contradicts itself."""
    rows = synthetic_rows(4, seed=19)
    twin = rows.iloc[[1]].assign(**{LABEL: -rows.iloc[1][LABEL]})
    with pytest.raises(FeedbackError, match=r"row 2, row 5: the same record labelled both"):
        verdicts_from_table(pd.concat([rows, twin], ignore_index=True))
