"""The service on a full disk, in-process: every route answers one JSON line, never a 500 or
a traceback. /feedback cannot store, so it answers 507 (503 for a disk that cannot be written
at all) and stores nothing; the scoring routes still answer, since the prediction log never
holds up a request (its lost records are counted in /metrics, see docs/operations.md)."""

from __future__ import annotations

import errno
import logging
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from phishguard import StorageError
from phishguard.contract.schema import FEATURES
from phishguard.feedback import store as feedback_store
from tests.support import synthetic_rows
from tests.support.api_keys import TestKeys
from tests.support.service import asgi_app_without_metrics, records, restore_env, set_service_env


def feedback_body(n: int = 3) -> dict:
    return {"feedback": [{"record": record, "label": "phishing"} for record in records(n, 7)]}


@pytest.fixture
def client_on_full_disk(
    package_dir: Path, tmp_path_factory: pytest.TempPathFactory, api_keys: TestKeys, full_disk
) -> Iterator[object]:
    """The service with its feedback store and prediction log on a full disk, and the
    analyst's key on every request."""
    from starlette.testclient import TestClient

    settings = api_keys.environ(
        "writes",
        PHISHGUARD_FEEDBACK_DIR=str(full_disk / "feedback"),
        PHISHGUARD_PREDICTION_LOG=str(full_disk / "predictions"),
    )
    saved = set_service_env(package_dir, tmp_path_factory, **settings)
    from service.service import Phishguard

    try:
        app = asgi_app_without_metrics(Phishguard)
        with TestClient(app, raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {api_keys.analyst}"
            yield client
    finally:
        restore_env(saved)


def assert_one_json_line(response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error, str) and "\n" not in error and "Traceback" not in error
    return error


def test_feedback_on_a_full_disk_is_507_in_one_line_and_stores_nothing(
    client_on_full_disk, full_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        response = client_on_full_disk.post("/feedback", json=feedback_body())
    error = assert_one_json_line(response, 507)
    assert "disk is full" in error and "nothing was stored" in error
    assert str(full_disk) not in error  # the server's paths stay in its log
    logged = [r for r in caplog.records if "/feedback" in r.getMessage()]
    assert logged and all(r.exc_info is None for r in logged)  # one line, no traceback
    assert "verdicts.sqlite3" in logged[-1].getMessage()


def test_the_scoring_routes_still_answer_on_a_full_disk(client_on_full_disk) -> None:
    one = records(2, 8)
    assert client_on_full_disk.post("/predict", json={"records": one}).status_code == 200
    assert client_on_full_disk.post("/explain", json={"records": one}).status_code == 200
    assert client_on_full_disk.post("/metadata", json={}).status_code == 200
    assert client_on_full_disk.get("/readyz").status_code == 200


def test_an_upload_spooled_to_a_full_disk_is_507_in_one_line(
    client_on_full_disk, full_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/predict_csv: the upload goes to a temporary file first (BentoML's, in $TMPDIR)."""
    monkeypatch.setattr(tempfile, "tempdir", str(full_disk))
    table = synthetic_rows(2000, 9).loc[:, list(FEATURES)]
    upload = {"file": ("rows.csv", table.to_csv(index=False).encode(), "text/csv")}
    response = client_on_full_disk.post("/predict_csv", files=upload)
    error = assert_one_json_line(response, 507)
    assert "disk is full" in error


@pytest.mark.parametrize(
    ("message", "status"),
    [("database or disk is full", 507), ("attempt to write a readonly database", 503)],
)
def test_a_store_that_cannot_write_is_a_deliberate_5xx_not_a_500(
    analyst_client, monkeypatch: pytest.MonkeyPatch, message: str, status: int
) -> None:
    """Without root (no tmpfs): SQLite's own errors of a full or read-only disk."""

    def refuse(*args: object, **kwargs: object) -> None:
        error = sqlite3.OperationalError(message)
        error.sqlite_errorname = "SQLITE_FULL" if status == 507 else "SQLITE_READONLY"
        raise error

    monkeypatch.setattr(feedback_store.SqliteFeedbackStore, "add", _raising_add(refuse))
    response = analyst_client.post("/feedback", json=feedback_body())
    assert_one_json_line(response, status)


def _raising_add(refuse):
    def add(self, *args: object, **kwargs: object) -> None:
        with self._storage():
            refuse()

    return add


def test_a_prediction_log_that_refuses_a_record_is_a_507_not_a_500(
    analyst_client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Today the log never raises; should it refuse a record (a `StorageError`, so that an
    answered prediction is always logged), the scoring routes answer in one line."""
    from service.service import PredictionLog

    def refuse(self, *args: object, **kwargs: object) -> None:
        raise StorageError("data/predictions/x.jsonl", errno.ENOSPC)

    monkeypatch.setattr(PredictionLog, "record", refuse)
    body = {"records": records(2, 10)}
    for route in ("/predict", "/explain"):
        error = assert_one_json_line(analyst_client.post(route, json=body), 507)
        assert error.startswith("the prediction log cannot store anything now")
    table = synthetic_rows(3, 11).loc[:, list(FEATURES)]
    upload = {"file": ("rows.csv", table.to_csv(index=False).encode(), "text/csv")}
    assert_one_json_line(analyst_client.post("/predict_csv", files=upload), 507)
