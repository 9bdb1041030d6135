"""`phishguard drift` on bad logs (invalid UTF-8, damaged lines, probabilities outside [0, 1])
and its default reference scores (issue 27, items 3, 10 and 11)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phishguard import paths
from phishguard.cli import main
from phishguard.contract.schema import FEATURES
from phishguard.monitoring.prediction_log import PredictionLog

MODEL = {"model_version": "v1", "model_sha256": "ab" * 32}


def _log(directory: Path, make_rows, probabilities: list[np.ndarray]) -> None:
    log = PredictionLog(directory)
    for i, proba in enumerate(probabilities):
        rows = make_rows(len(proba), seed=20 + i).loc[:, list(FEATURES)]
        log.record(rows, proba, 0.5, source="api", request_id=f"r{i}", **MODEL)
    log.close()


@pytest.fixture
def reference(tmp_path: Path, make_rows) -> list[str]:
    make_rows(3000, seed=1).to_parquet(tmp_path / "reference.parquet")
    rng = np.random.default_rng(0)
    pd.DataFrame({"probability": rng.uniform(size=3000)}).to_parquet(tmp_path / "oof.parquet")
    return [
        "--reference",
        str(tmp_path / "reference.parquet"),
        "--reference-scores",
        str(tmp_path / "oof.parquet"),
    ]


def _drift(capsys, *args: str) -> tuple[dict, str]:
    main(["drift", *args, "--json"])
    report = json.loads(capsys.readouterr().out)
    main(["drift", *args])
    return report, capsys.readouterr().out


def test_a_log_file_of_invalid_utf8_is_counted_and_reported_in_one_line(
    tmp_path: Path, make_rows, reference, capsys
):
    rng = np.random.default_rng(1)
    _log(tmp_path / "log", make_rows, [rng.uniform(size=300) for _ in range(2)])
    garbage = b"\xff\xfe\x80 not text\n" * 40 + b'{"time": "2026-\xc3\x28"}\n'
    (tmp_path / "log" / "predictions-20260101-h-9-cccccc.jsonl").write_bytes(garbage)
    report, text = _drift(capsys, str(tmp_path / "log"), *reference)
    assert report["n_current"] == 600 and report["n_damaged_lines"] == 41
    assert report["n_invalid"] == 41
    assert "41 invalid rows left out: 41 damaged log lines" in text.splitlines()[0]
    assert "Traceback" not in capsys.readouterr().err


def test_a_log_of_nothing_but_damaged_lines_is_one_line_error(tmp_path: Path, capsys):
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "predictions-20260101-h-9-cccccc.jsonl").write_bytes(b"\xff\xfe\n" * 3)
    with pytest.raises(SystemExit) as exit_:
        main(["drift", str(tmp_path / "log")])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no records (3 damaged lines skipped)" in err


def test_a_glued_line_in_the_middle_does_not_refuse_the_log(
    tmp_path: Path, make_rows, reference, capsys
):
    """A fragment left by an old writer on a full disk, the next record glued onto it."""
    _log(tmp_path / "log", make_rows, [np.full(50, 0.3)])
    (path,) = (tmp_path / "log").glob("predictions-*.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:10], lines[10][:300], *lines[11:]]))
    main(["drift", str(tmp_path / "log"), *reference, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["n_current"] == 48 and report["n_damaged_lines"] == 1


def test_probabilities_outside_0_1_are_invalid_and_never_scored(
    tmp_path: Path, make_rows, reference, capsys
):
    """5.0 and -3.0 (a damaged or forged record) are left out and counted; PSI is computed
    on the 600 real probabilities only, which match the reference."""
    rng = np.random.default_rng(2)
    good = [rng.uniform(size=300) for _ in range(2)]
    _log(tmp_path / "log", make_rows, [*good, np.full(60, 5.0), np.full(40, -3.0)])
    report, text = _drift(capsys, str(tmp_path / "log"), *reference)
    assert report["n_current"] == 600 and report["n_invalid_probabilities"] == 100
    assert report["n_invalid"] == 100
    assert report["prediction"]["judged"] and report["prediction"]["psi"] < 0.1
    assert not report["prediction"]["drift"]
    assert "100 probabilities not in [0, 1]" in text.splitlines()[0]


def test_reference_scores_outside_0_1_are_a_one_line_error(tmp_path: Path, make_rows, capsys):
    _log(tmp_path / "log", make_rows, [np.full(10, 0.5)])
    make_rows(100, seed=1).to_parquet(tmp_path / "reference.parquet")
    pd.DataFrame({"probability": [0.2, 5.0]}).to_csv(tmp_path / "oof.csv", index=False)
    with pytest.raises(SystemExit):
        main(
            [
                "drift",
                str(tmp_path / "log"),
                "--reference",
                str(tmp_path / "reference.parquet"),
                "--reference-scores",
                str(tmp_path / "oof.csv"),
            ]
        )
    assert "1 value(s) of column probability outside [0, 1]" in capsys.readouterr().err


def test_drift_uses_the_training_reference_scores_when_they_exist(
    tmp_path: Path, make_rows, monkeypatch, capsys
):
    make_rows(3000, seed=1).to_parquet(tmp_path / "train.parquet")
    pd.DataFrame({"probability": np.linspace(0, 1, 3000)}).to_parquet(tmp_path / "scores.parquet")
    monkeypatch.setattr(paths, "TRAIN_TABLE", tmp_path / "train.parquet")
    monkeypatch.setattr(paths, "REFERENCE_SCORES", tmp_path / "scores.parquet")
    _log(tmp_path / "log", make_rows, [np.linspace(0, 1, 300)])
    main(["drift", str(tmp_path / "log"), "--json"])
    assert json.loads(capsys.readouterr().out)["prediction"]["judged"] is True
    monkeypatch.setattr(paths, "REFERENCE_SCORES", tmp_path / "absent.parquet")
    main(["drift", str(tmp_path / "log"), "--json"])
    assert "no reference scores" in json.loads(capsys.readouterr().out)["prediction"]["note"]
