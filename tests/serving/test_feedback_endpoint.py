"""`POST /feedback` through the service's ASGI app, in-process: counts, ids, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from phishguard.contract.schema import FEATURES, LABEL
from phishguard.data.load import content_ids
from phishguard.feedback.store import open_store
from phishguard.monitoring.log_reader import read_log
from tests.support import synthetic_rows
from tests.support.api_keys import TestKeys
from tests.support.service import (
    asgi_app_without_metrics,
    records,
    restore_env,
    set_service_env,
)


def verdicts() -> pd.DataFrame:
    """What the store holds now (the suite's store: $PHISHGUARD_FEEDBACK_DIR)."""
    store = open_store()
    try:
        return store.verdicts()
    finally:
        store.close()


def items(n: int, seed: int, **extra: str) -> list[dict]:
    rows = synthetic_rows(n, seed)
    return [
        {
            "record": {name: int(row[name]) for name in FEATURES},
            "label": "phishing" if row[LABEL] == -1 else "legitimate",
            **extra,
        }
        for _, row in rows.iterrows()
    ]


@pytest.fixture
def unchanged() -> Iterator[None]:
    """Asserts that the test stored nothing."""
    before = verdicts()
    yield
    pd.testing.assert_frame_equal(verdicts(), before)


def test_verdicts_are_accepted_once(analyst_client) -> None:
    body = {"feedback": items(5, seed=101, note="seen in triage")}
    first = analyst_client.post("/feedback", json=body)
    assert first.status_code == 200, first.text
    answer = first.json()
    assert (answer["accepted"], answer["already_present"]) == (5, 0)
    expected_ids = content_ids(synthetic_rows(5, 101))
    assert [v["verdict_id"] for v in answer["verdicts"]] == expected_ids
    assert [v["label"] for v in answer["verdicts"]] == [i["label"] for i in body["feedback"]]
    assert {v["status"] for v in answer["verdicts"]} == {"accepted"}
    again = analyst_client.post("/feedback", json=body).json()
    assert (again["accepted"], again["already_present"]) == (0, 5)
    assert {v["status"] for v in again["verdicts"]} == {"already_present"}
    kept = verdicts().set_index("verdict_id").loc[expected_ids]
    assert set(kept["source"]) == {"api"} and set(kept["note"]) == {"seen in triage"}
    assert set(kept["submitter"]) == {"alice"}  # the analyst key's name, never the key


def test_a_source_per_item_is_kept(analyst_client) -> None:
    body = {"feedback": items(1, seed=102, source="ui")}
    assert analyst_client.post("/feedback", json=body).json()["accepted"] == 1
    verdict_id = content_ids(synthetic_rows(1, 102))[0]
    assert verdicts().set_index("verdict_id").at[verdict_id, "source"] == "ui"


def test_a_prediction_id_from_predict_round_trips(analyst_client) -> None:
    scored = analyst_client.post("/predict", json={"records": records(3, 103)}).json()["results"]
    ids = [result["prediction_id"] for result in scored]
    assert len(set(ids)) == 3 and all(i.endswith(f"-{n}") for n, i in enumerate(ids))
    body = {"feedback": [{"prediction_id": ids[2], "label": "phishing"}]}
    response = analyst_client.post("/feedback", json=body)
    assert response.status_code == 200, response.text
    verdict = response.json()["verdicts"][0]
    row = synthetic_rows(3, 103).iloc[[2]].assign(**{LABEL: -1})
    assert verdict["verdict_id"] == content_ids(row)[0]
    assert verdicts().set_index("verdict_id").at[verdict["verdict_id"], "prediction_id"] == ids[2]


def test_explain_and_csv_results_carry_prediction_ids(analyst_client) -> None:
    explained = analyst_client.post("/explain", json={"records": records(2, 104)}).json()
    assert [r["prediction_id"][-2:] for r in explained["results"]] == ["-0", "-1"]
    csv = synthetic_rows(2, 104).drop(columns=LABEL).to_csv(index=False)
    uploaded = analyst_client.post("/predict_csv", files={"file": ("x.csv", csv, "text/csv")})
    assert [r["prediction_id"][-2:] for r in uploaded.json()["results"]] == ["-0", "-1"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda i: i[1].update(label="spam"), "feedback[1].label='spam' is not 'phishing'"),
        (lambda i: i[0].update(colour="red"), "feedback[0]: unknown field 'colour'"),
        (lambda i: i[2]["record"].pop("SFH"), "feedback[2].record: missing field 'SFH'"),
        (
            lambda i: i[2]["record"].update(port=3),
            "feedback[2].record: field 'port' = 3 is not in {-1, 1}",
        ),
        (
            lambda i: i[0].update(prediction_id="nope-0"),
            "feedback[0]: give exactly one of `record` and `prediction_id`",
        ),
        (
            lambda i: i.append({"prediction_id": "unknown-7", "label": "phishing"}),
            "feedback[3].prediction_id: unknown prediction 'unknown-7'",
        ),
    ],
)
def test_bad_feedback_is_a_422_naming_it_with_nothing_stored(
    analyst_client, unchanged, change, message
) -> None:
    body = items(3, seed=105)
    change(body)
    response = analyst_client.post("/feedback", json={"feedback": body})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert message in error and error.endswith("nothing was stored")


def test_empty_too_many_and_malformed_bodies_are_refused(analyst_client, unchanged) -> None:
    empty = analyst_client.post("/feedback", json={"feedback": []})
    assert empty.status_code == 422 and "no verdicts" in empty.json()["error"]
    many = analyst_client.post("/feedback", json={"feedback": items(501, seed=106)})
    assert many.status_code == 413
    assert "501 verdicts in one request; the limit is 500" in many.json()["error"]
    for body in ({"feedback": "x"}, {"verdicts": items(1, seed=106)}, {}):
        assert analyst_client.post("/feedback", json=body).status_code == 400


def test_a_50_mb_body_is_refused_before_it_is_read(analyst_client, unchanged) -> None:
    note = "x" * (50 * 1024 * 1024)
    response = analyst_client.post(
        "/feedback",
        content=b'{"feedback": [{"label": "phishing", "note": "' + note.encode() + b'"}]}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413 and "error" in response.json()


@pytest.fixture(scope="module")
def keyed_client(
    package_dir, tmp_path_factory, api_keys: TestKeys
) -> Iterator[tuple[object, Path]]:
    """The service in-process with every route behind a key (PHISHGUARD_AUTH=all), sending
    the analyst `alice`'s key; and its prediction-log folder."""
    log_dir = tmp_path_factory.mktemp("keyed_predictions")
    settings = api_keys.environ("all", PHISHGUARD_PREDICTION_LOG=str(log_dir))
    saved = set_service_env(package_dir, tmp_path_factory, **settings)
    from starlette.testclient import TestClient

    from service.service import Phishguard

    try:
        with TestClient(asgi_app_without_metrics(Phishguard)) as client:
            restore_env(saved)
            client.headers["Authorization"] = f"Bearer {api_keys.analyst}"
            yield client, log_dir
    finally:
        restore_env(saved)


def test_the_key_name_is_the_submitter_and_the_caller(keyed_client) -> None:
    client, log_dir = keyed_client
    scored = client.post("/predict", json={"records": records(2, 107)}).json()["results"]
    body = {"feedback": [{"prediction_id": scored[1]["prediction_id"], "label": "legitimate"}]}
    answer = client.post("/feedback", json=body).json()
    verdict_id = answer["verdicts"][0]["verdict_id"]
    assert verdicts().set_index("verdict_id").at[verdict_id, "submitter"] == "alice"
    logged = read_log(log_dir)
    ours = logged["prediction_id"].isin([result["prediction_id"] for result in scored])
    assert ours.sum() == 2 and set(logged.loc[ours, "caller"]) == {"alice"}


# --- issue 27: trust (self-contradiction, champion's view, reviewer role, verdict rate) ---


def assertions() -> pd.DataFrame:
    """The store's verdicts once per submitter, with the champion's score and any review."""
    store = open_store()
    try:
        return store.assertions()
    finally:
        store.close()


def test_a_request_that_contradicts_itself_is_a_422_naming_the_items(
    analyst_client, unchanged
) -> None:
    body = items(3, seed=131)
    body.append(
        {**body[0], "label": "legitimate" if body[0]["label"] == "phishing" else "phishing"}
    )
    answer = analyst_client.post("/feedback", json={"feedback": body})
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert "feedback[0], feedback[3]" in error and "both phishing and legitimate" in error
    assert "feedback[1]" not in error and "nothing was stored" in error


def test_each_verdict_keeps_the_served_model_s_view(analyst_client, scorer) -> None:
    body = {"feedback": items(4, seed=132)}
    answer = analyst_client.post("/feedback", json=body).json()
    ids = [v["verdict_id"] for v in answer["verdicts"]]
    kept = assertions().set_index("verdict_id").loc[ids, "champion_phishing"].to_numpy()
    matrix = synthetic_rows(4, 132).loc[:, list(FEATURES)].to_numpy(dtype="float32")
    assert kept == pytest.approx(scorer.probability(matrix).astype(float), abs=1e-6)


def test_an_analyst_key_cannot_review(analyst_client) -> None:
    answer = analyst_client.post(
        "/feedback/review", json={"reviews": [{"verdict_id": "x", "decision": "approve"}]}
    )
    assert answer.status_code == 403, answer.text
    assert "'reviewer'" in answer.json()["error"] or "needs reviewer" in answer.json()["error"]


def test_a_reviewer_approves_and_rejects_stored_verdicts(analyst_client, api_keys) -> None:
    ids = [
        v["verdict_id"]
        for v in analyst_client.post("/feedback", json={"feedback": items(2, seed=133)}).json()[
            "verdicts"
        ]
    ]
    reviewer = {"Authorization": f"Bearer {api_keys.reviewer}"}
    decisions = [
        {"verdict_id": ids[0], "decision": "approve"},
        {"verdict_id": ids[1], "decision": "reject"},
    ]
    answer = analyst_client.post("/feedback/review", json={"reviews": decisions}, headers=reviewer)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"approved": 1, "rejected": 1}
    reviews = assertions().drop_duplicates("verdict_id").set_index("verdict_id")["review"]
    assert (reviews[ids[0]], reviews[ids[1]]) == ("approved", "rejected")
    unknown = [{"verdict_id": "no-such-verdict", "decision": "approve"}, decisions[0]]
    refused = analyst_client.post("/feedback/review", json={"reviews": unknown}, headers=reviewer)
    assert refused.status_code == 422 and "'no-such-verdict'" in refused.json()["error"]
    bad = [{"verdict_id": ids[0], "decision": "maybe"}]
    refused = analyst_client.post("/feedback/review", json={"reviews": bad}, headers=reviewer)
    assert refused.status_code == 422 and "reviews[0].decision" in refused.json()["error"]


def test_verdicts_not_only_requests_are_rate_limited_per_key(verdict_limited_client) -> None:
    first = verdict_limited_client.post("/feedback", json={"feedback": items(3, seed=134)})
    assert first.status_code == 200, first.text
    again = verdict_limited_client.post("/feedback", json={"feedback": items(3, seed=135)})
    assert again.status_code == 429, again.text
    error = again.json()["error"]
    assert "too many verdicts from the API key 'alice'" in error
    assert "PHISHGUARD_VERDICT_RATE" in error and "nothing was stored" in error
    assert int(again.headers["retry-after"]) >= 1
    at_once = verdict_limited_client.post("/feedback", json={"feedback": items(6, seed=136)})
    assert at_once.status_code == 429 and "may send at once" in at_once.json()["error"]
