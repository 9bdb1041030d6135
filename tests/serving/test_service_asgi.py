"""The BentoML service through its ASGI app, in-process (no sockets)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from phishguard.contract.schema import FEATURES
from tests.support import synthetic_rows
from tests.support.packaged_model import THRESHOLD
from tests.support.service import records


def post(client, route: str, body: dict):
    return client.post(route, json=body)


def test_predict_scores_every_record_in_order(service_client, scorer) -> None:
    batch = records(25, 20)
    response = post(service_client, "/predict", {"records": batch})
    assert response.status_code == 200
    results = response.json()["results"]
    expected = scorer.probability(
        synthetic_rows(25, 20).loc[:, list(FEATURES)].to_numpy(dtype=np.float32)
    )
    assert [r["phishing_probability"] for r in results] == expected.tolist()
    assert [r["is_phishing"] for r in results] == (expected >= THRESHOLD).tolist()
    assert [r["label"] for r in results] == [
        "phishing" if p >= THRESHOLD else "legitimate" for p in expected
    ]


def test_column_order_and_duplicates(service_client) -> None:
    one = records(1, 21)[0]
    reordered = dict(sorted(one.items()))
    results = post(service_client, "/predict", {"records": [one, reordered, one]}).json()
    ids = [result.pop("prediction_id") for result in results["results"]]
    assert results["results"][0] == results["results"][1] == results["results"][2]
    request_id = ids[0].rsplit("-", 1)[0]
    assert ids == [f"{request_id}-{i}" for i in range(3)]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"records": [{**records(1, 22)[0], "extra": 1}]}, 422, "record 0: unknown field 'extra'"),
        (
            {"records": [*records(2, 22), {**records(1, 22)[0], "SFH": 5}]},
            422,
            "record 2: field 'SFH' = 5",
        ),
        (
            {"records": [{k: v for k, v in records(1, 22)[0].items() if k != "port"}]},
            422,
            "record 0: missing field 'port'",
        ),
        (
            {"records": [{**records(1, 22)[0], "port": "one"}]},
            422,
            "field 'port' must be an integer",
        ),
        ({"records": []}, 422, "no records"),
        ({"records": records(501, 23)}, 413, "the limit is 500"),
        ({"rows": []}, 400, "records"),
        ({"records": "nope"}, 400, "records"),
        ({"records": [1, 2]}, 400, "records"),
    ],
)
def test_bad_payloads_are_4xx_naming_the_problem(service_client, body, status, fragment) -> None:
    response = post(service_client, "/predict", body)
    assert response.status_code == status
    assert fragment in response.text


def test_invalid_json_is_4xx(service_client) -> None:
    response = service_client.post(
        "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500


def test_explain_gives_scores_and_top_reasons(service_client) -> None:
    batch = records(3, 24)
    explained = post(service_client, "/explain", {"records": batch, "top": 4}).json()["results"]
    predicted = post(service_client, "/predict", {"records": batch}).json()["results"]
    for full, plain, record in zip(explained, predicted, batch, strict=True):
        assert full["phishing_probability"] == plain["phishing_probability"]
        assert len(full["reasons"]) == 4
        for reason in full["reasons"]:
            assert reason["value"] == record[reason["feature"]]


def csv_upload(table: pd.DataFrame) -> dict:
    return {"file": ("sites.csv", table.to_csv(index=False).encode(), "text/csv")}


def test_predict_csv_ignores_result_and_matches_predict(service_client) -> None:
    table = synthetic_rows(10, 25)  # includes the Result column
    assert "Result" in table
    response = service_client.post("/predict_csv", files=csv_upload(table))
    assert response.status_code == 200
    from_csv = response.json()["results"]
    batch = [{k: int(v) for k, v in r.items() if k != "Result"} for r in table.to_dict("records")]
    from_json = post(service_client, "/predict", {"records": batch}).json()["results"]
    assert [r["phishing_probability"] for r in from_csv] == pytest.approx(
        [r["phishing_probability"] for r in from_json], abs=1e-7
    )


def test_predict_csv_can_answer_csv(service_client) -> None:
    response = service_client.post(
        "/predict_csv", files=csv_upload(synthetic_rows(4, 26)), data={"output": "csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.StringIO(response.text))
    assert list(table.columns) == ["row", "phishing_probability", "is_phishing", "label"]
    assert table["row"].tolist() == [1, 2, 3, 4]


def test_predict_csv_bad_rows_and_columns_are_4xx(service_client) -> None:
    table = synthetic_rows(4, 27).astype(str)
    table.loc[2, "SFH"] = "7"
    response = service_client.post("/predict_csv", files=csv_upload(table))
    assert response.status_code == 422
    assert "row 3: SFH=7 not in {-1, 0, 1}" in response.text
    renamed = synthetic_rows(2, 27).rename(columns={"URL_Length": "URL_Lenght"})
    response = service_client.post("/predict_csv", files=csv_upload(renamed))
    assert response.status_code == 422
    assert "URL_Lenght" in response.text


def test_metadata(service_client, scorer) -> None:
    info = post(service_client, "/metadata", {}).json()
    assert info["threshold"] == THRESHOLD
    assert info["model_sha256"] == scorer.metadata["model_sha256"]
    assert info["features"] == list(FEATURES)
    assert info["label_mapping"]["phishing"] == -1
    assert info["max_rows_per_request"] == 500
    assert info["train_data_sha256"] and info["metrics"]["test"]["roc_auc"] == 0.97


def test_health_and_page(service_client) -> None:
    # /metrics needs the Prometheus set-up of `bentoml serve`: checked in the e2e test.
    assert service_client.get("/healthz").status_code == 200
    assert service_client.get("/readyz").status_code == 200
    page = service_client.get("/ui/")
    assert page.status_code == 200
    assert "<textarea" in page.text and "../explain" in page.text
