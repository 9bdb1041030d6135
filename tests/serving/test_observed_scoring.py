"""What the service sees (issue 12): every scored record in the prediction log and the live
signals of /metrics, under a real `bentoml serve` started by the test."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from phishguard.contract.schema import FEATURES
from phishguard.modeling.features import value_shares
from phishguard.monitoring.log_reader import read_log
from phishguard.serving.live_metrics import LiveMetrics
from tests.support import REPO, free_port, run_tool, synthetic_rows
from tests.support.service import records, serve_package, stop


def test_the_drift_gauge_is_near_zero_for_like_data_and_large_for_a_shifted_feature() -> None:
    reference = synthetic_rows(20_000, seed=1)
    live = LiveMetrics(value_shares(reference), window=2_000)
    like = synthetic_rows(3_000, seed=2).loc[:, list(FEATURES)].to_numpy()
    live.record(like, np.full(len(like), 0.2), 0.5)
    assert live.filled == 2_000  # the window keeps the last 2,000 records only
    assert max(live.psi().values()) < 0.02
    shifted = synthetic_rows(1_500, seed=3)
    shifted["SSLfinal_State"] = -1
    live.record(shifted.loc[:, list(FEATURES)].to_numpy(), np.full(1_500, 0.9), 0.5)
    psi = live.psi()
    assert psi["SSLfinal_State"] > 0.5
    assert max(v for k, v in psi.items() if k != "SSLfinal_State") < 0.05


def test_the_window_counts_stay_exact_as_records_are_evicted() -> None:
    live = LiveMetrics(value_shares(synthetic_rows(100, seed=0)), window=50)
    batches = [synthetic_rows(n, seed=n).loc[:, list(FEATURES)].to_numpy() for n in (7, 30, 41)]
    for batch in batches:
        live.record(batch, np.zeros(len(batch)), 0.5)
    last = np.concatenate(batches)[-50:]
    expected = (last[:, :, None] == np.array([-1, 0, 1])).sum(axis=0)
    assert (live.counts == expected).all()


def _post(port: int, route: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{route}", data=body, headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _multipart(csv_text: str) -> tuple[bytes, str]:
    boundary = "phishguard-test-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="up.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{csv_text}\r\n--{boundary}--\r\n"
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _metric_total(text: str, name: str) -> float:
    return sum(float(m) for m in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


@pytest.mark.e2e
def test_the_service_logs_exactly_what_it_scored_and_drift_reads_it(
    package_dir: Path, tmp_path: Path
) -> None:
    log_dir, port = tmp_path / "predictions", free_port()
    server = serve_package(package_dir, tmp_path, port, PHISHGUARD_PREDICTION_LOG=str(log_dir))
    answered = []
    try:
        for n, seed in ((1, 1), (7, 2), (600, 3)):
            sent = records(n, seed)
            status, body = _post(
                port, "/predict", json.dumps({"records": sent}).encode(), "application/json"
            )
            assert status == 200
            answered += [
                (record, result["phishing_probability"])
                for record, result in zip(sent, json.loads(body)["results"], strict=True)
            ]
        bad = [*records(2, 4), {"SFH": 7}]
        assert (
            _post(port, "/predict", json.dumps({"records": bad}).encode(), "application/json")[0]
            == 422
        )
        explained = records(2, 5)
        assert (
            _post(
                port, "/explain", json.dumps({"records": explained}).encode(), "application/json"
            )[0]
            == 200
        )
        upload = synthetic_rows(5, seed=6).loc[:, list(FEATURES)]
        assert _post(port, "/predict_csv", *_multipart(upload.to_csv(index=False)))[0] == 200
        broken = upload.astype(str)
        broken.loc[2, "port"] = "9"
        assert _post(port, "/predict_csv", *_multipart(broken.to_csv(index=False)))[0] == 422
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
    finally:
        stop(server)  # SIGTERM: a graceful stop flushes the queued records

    assert _metric_total(metrics, "phishguard_predictions_total") == 615
    assert _metric_total(metrics, "phishguard_phishing_probability_count") == 615
    assert 'phishguard_feature_drift_psi{feature="SSLfinal_State"' in metrics
    logged = read_log(log_dir)
    assert len(logged) == 608 + 2 + 5  # the 422s are not scored, so not logged
    assert logged["source"].value_counts().to_dict() == {"api": 610, "csv": 5}
    assert logged["request_id"].nunique() == 5
    predicted = logged[logged["request_id"].isin(logged["request_id"].unique()[:3])]
    assert np.array_equal(
        predicted.loc[:, list(FEATURES)].to_numpy(),
        np.array([[record[name] for name in FEATURES] for record, _ in answered]),
    )
    assert np.allclose(predicted["probability"], [p for _, p in answered])
    assert set(logged["model_sha256"]) == {_package_sha(package_dir)}

    reference = tmp_path / "reference.parquet"  # a checkout without pipeline outputs has none
    synthetic_rows(2_000, seed=7).to_parquet(reference, index=False)
    command = ["phishguard", "drift", str(log_dir), "--reference", str(reference), "--json"]
    done = run_tool(command, REPO)
    report = json.loads(done.stdout)
    assert report["n_current"] == 615 and len(report["features"]) == len(FEATURES)


def _package_sha(package_dir: Path) -> str:
    return json.loads((package_dir / "package.json").read_text())["model_sha256"]


def _serve_into_an_unwritable_log(package_dir: Path, tmp_path: Path) -> tuple[object, int]:
    """`bentoml serve` whose prediction-log directory is a file; the server and its port."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the log directory should be")
    port = free_port()
    return serve_package(package_dir, tmp_path, port, PHISHGUARD_PREDICTION_LOG=str(blocked)), port


@pytest.mark.e2e
def test_an_unwritable_log_never_fails_a_request(package_dir: Path, tmp_path: Path) -> None:
    server, port = _serve_into_an_unwritable_log(package_dir, tmp_path)
    try:
        for seed in range(20):
            body = json.dumps({"records": records(3, seed)}).encode()
            assert _post(port, "/predict", body, "application/json")[0] == 200
        metrics = ""
        for _ in range(20):  # the gauge is refreshed at most once a second
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                metrics = r.read().decode()
            if "phishguard_prediction_log_dropped{" in metrics:
                break
            time.sleep(0.3)
            one = json.dumps({"records": records(1, 99)}).encode()
            assert _post(port, "/predict", one, "application/json")[0] == 200
    finally:
        stop(server)
    log = (tmp_path / "bentoml.log").read_text()
    assert log.count("prediction log") >= 1  # one warning naming the problem
    dropped = r'phishguard_prediction_log_dropped\{cause="write_error"[^}]*\} [1-9]'
    assert re.search(dropped, metrics)


@pytest.mark.e2e
def test_the_dropped_gauge_counts_every_lost_record_at_scrape_time(
    package_dir: Path, tmp_path: Path
) -> None:
    """Five requests of 3 records into an unwritable log, then one scrape and no more scoring:
    the gauge says 15, already (issue 27, item 11: it used to move only at the next call)."""
    server, port = _serve_into_an_unwritable_log(package_dir, tmp_path)
    try:
        for seed in range(5):
            body = json.dumps({"records": records(3, seed)}).encode()
            assert _post(port, "/predict", body, "application/json")[0] == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
    finally:
        stop(server)
    dropped = r'phishguard_prediction_log_dropped\{cause="write_error"[^}]*\} 15\.0'
    assert re.search(dropped, metrics), [m for m in metrics.splitlines() if "dropped" in m]
