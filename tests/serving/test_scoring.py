"""The shared scoring core: batch validation of records, the model loader, the package."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phishguard.contract.record_checks import (
    RecordError,
    TooManyRecordsError,
    frame_matrix,
    records_matrix,
)
from phishguard.contract.schema import FEATURES, LABEL
from phishguard.data.validate import quarantine
from phishguard.modeling.bundle import MANIFEST_FILE as PACKAGE_FILE
from phishguard.modeling.bundle import PackageError, package_version
from phishguard.modeling.features import INPUT_COLUMNS, featurize, table_inputs
from phishguard.provenance import IntegrityError
from phishguard.serving.scoring import ExplanationUnavailableError, load_scorer
from tests.support import synthetic_rows
from tests.support.packaged_model import THRESHOLD, write_package
from tests.support.service import records


def test_records_matrix_matches_the_canonical_order() -> None:
    batch = records(20, 1)
    matrix = records_matrix(batch, 100)
    expected = synthetic_rows(20, 1).loc[:, list(FEATURES)].to_numpy(dtype=np.float32)
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, expected)


def test_key_order_does_not_matter(scorer) -> None:
    batch = records(30, 2)
    shuffled = [dict(reversed(list(r.items()))) for r in batch]
    assert list(shuffled[0]) != list(batch[0])
    np.testing.assert_array_equal(
        scorer.probability(records_matrix(batch, 100)),
        scorer.probability(records_matrix(shuffled, 100)),
    )


def test_identical_records_get_identical_scores(scorer) -> None:
    one = records(1, 3)[0]
    results = scorer.results(records_matrix([one, dict(one), one], 10))
    assert results[0] == results[1] == results[2]


def bad(record_change: dict, drop: str | None = None) -> list[dict]:
    batch = records(3, 4)
    if drop:
        del batch[2][drop]
    batch[2].update(record_change)
    return batch


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        (bad({}, drop="SFH"), "record 2: missing field 'SFH'"),
        (bad({"colour": 1}), "record 2: unknown field 'colour'"),
        (
            bad({"URL_Lenght": 1}, drop="URL_Length"),
            "record 2: unknown field 'URL_Lenght' (misspelled 'URL_Length'?)",
        ),
        (bad({"SFH": 2}), "record 2: field 'SFH' = 2 is not in {-1, 0, 1}"),
        (bad({"Redirect": -1}), "record 2: field 'Redirect' = -1 is not in {0, 1}"),
        (bad({"port": 0}), "record 2: field 'port' = 0 is not in {-1, 1}"),
        (bad({"port": "1"}), "record 2: field 'port' must be an integer, got '1'"),
        (bad({"port": True}), "record 2: field 'port' must be an integer, got True"),
        (bad({"port": 1.0}), "record 2: field 'port' must be an integer, got 1.0"),
        (bad({"port": None}), "record 2: field 'port' must be an integer, got None"),
        ([*records(1, 5), 7], "record 1: expected an object of the 30 features"),
        ([], "no records"),
    ],
)
def test_bad_records_name_the_record_and_field(batch: list, expected: str) -> None:
    with pytest.raises(RecordError) as caught:
        records_matrix(batch, 100)
    assert expected in str(caught.value)


def test_huge_values_are_rejected_not_crashed() -> None:
    with pytest.raises(RecordError, match="outside"):
        records_matrix(bad({"port": 10**30}), 100)


def test_row_limit() -> None:
    with pytest.raises(TooManyRecordsError, match="11 records in one request; the limit is 10"):
        records_matrix(records(11, 6), 10)


def test_scorer_agrees_with_xgboosts_own_classifier(package_dir: Path, scorer) -> None:
    from xgboost import XGBClassifier

    model = XGBClassifier()
    model.load_model(package_dir / scorer.metadata["model_file"])
    table = synthetic_rows(300, 8)
    inputs = table_inputs(featurize(table), scorer.bundle.input_columns)
    expected = model.predict_proba(inputs)[:, 1]
    np.testing.assert_array_equal(scorer.bundle.predict_proba(table), expected)
    actual = scorer.probability(table.loc[:, list(FEATURES)].to_numpy(dtype=np.float32))
    np.testing.assert_array_equal(actual, expected)
    results = scorer.results(table.loc[:, list(FEATURES)].to_numpy(dtype=np.float32))
    assert [r["is_phishing"] for r in results] == list(expected >= THRESHOLD)
    assert {r["label"] for r in results} <= {"phishing", "legitimate"}


def test_explain_contributions_add_up_to_the_score(scorer) -> None:
    matrix = records_matrix(records(5, 9), 10)
    contributions = scorer.contributions(matrix)
    margin = contributions.sum(axis=1)
    np.testing.assert_allclose(1 / (1 + np.exp(-margin)), scorer.probability(matrix), rtol=1e-4)
    reasons = scorer.explain(matrix, top=3)
    assert all(len(r) == 3 for r in reasons)
    first = reasons[0]
    assert (
        abs(first[0]["contribution"])
        >= abs(first[1]["contribution"])
        >= abs(first[2]["contribution"])
    )
    assert first[0]["feature"] in FEATURES


def test_a_tampered_model_is_refused(package_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(package_dir, tmp_path / "copy"))
    with (copy / "model.ubj").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(IntegrityError, match="does not match"):
        load_scorer(copy)


def test_a_missing_package_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=PACKAGE_FILE):
        load_scorer(tmp_path)


def test_package_version_is_content_derived(scorer) -> None:
    manifest = dict(scorer.metadata)
    assert package_version(manifest) == package_version(dict(manifest))
    manifest["threshold"] = 0.1
    assert package_version(manifest) != package_version(scorer.metadata)


@pytest.mark.parametrize(
    ("spec", "counts", "explains"),
    [
        (
            {
                "name": "xgboost",
                "n_estimators": 30,
                "max_depth": 3,
                "n_jobs": 1,
                "signal_counts": True,
            },
            True,
            True,
        ),
        ({"name": "random_forest", "n_estimators": 20, "n_jobs": 1}, False, False),
        ({"name": "logistic_regression", "C": 1.0, "signal_counts": True}, True, False),
    ],
)
def test_every_zoo_model_is_served_like_the_pipeline_scores_it(
    tmp_path, spec, counts, explains
) -> None:
    directory = write_package(tmp_path, spec=spec)
    served = load_scorer(directory)
    assert served.bundle.input_columns == (INPUT_COLUMNS if counts else FEATURES)
    table = synthetic_rows(300, 5)
    matrix = table.loc[:, list(FEATURES)].to_numpy(dtype=np.float32)
    # Scoring computes the inputs from the 30 features as the featurize stage wrote them.
    featurized = table_inputs(featurize(table), served.bundle.input_columns)
    if explains:
        expected = served.bundle.model.inplace_predict(featurized, validate_features=False)
    else:
        expected = served.bundle.model.predict_proba(featurized)[:, 1]
    np.testing.assert_array_equal(served.probability(matrix), expected)
    if explains:
        reasons = served.explain(matrix[:3], top=32)
        assert {r["feature"] for r in reasons[0]} == {
            *FEATURES,
            "n_phishing_signals",
            "n_suspicious_signals",
        }
    else:
        with pytest.raises(ExplanationUnavailableError, match="explanations need an XGBoost model"):
            served.explain(matrix[:3])


def test_fast_table_path_agrees_with_quarantine() -> None:
    table = synthetic_rows(200, 10).drop(columns=LABEL).astype(str)
    fast = frame_matrix(table)
    slow = quarantine(table, FEATURES).valid.to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize("value", ["x", "", "1.5", "2", "True"])
def test_fast_table_path_defers_anything_unclean(value: str) -> None:
    table = synthetic_rows(5, 11).drop(columns=LABEL).astype(str)
    table.loc[3, "SFH"] = value
    assert frame_matrix(table) is None
    assert quarantine(table, FEATURES).quarantined["row"].tolist() == [4]


def test_fast_table_path_refuses_bools() -> None:
    table = synthetic_rows(4, 12).drop(columns=LABEL)
    table["port"] = pd.Series([True, False, True, True])
    assert frame_matrix(table) is None


def test_results_json_is_the_json_of_results(scorer) -> None:
    import json

    for n in (1, 57):
        matrix = records_matrix(records(n, 40), 100)
        assert json.loads(scorer.results_json(matrix)) == {"results": scorer.results(matrix)}
        with_ids = json.loads(scorer.results_json(matrix, request_id="r7"))
        assert with_ids == {"results": scorer.results(matrix, request_id="r7")}
        assert [r["prediction_id"] for r in with_ids["results"]] == [f"r7-{i}" for i in range(n)]
