"""The model bundle: its manifest's input columns drive prediction, and an altered model file
or manifest is refused with one message format."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from phishguard.config.models import model_config
from phishguard.contract.schema import FEATURES, TARGET
from phishguard.modeling import bundle
from phishguard.modeling.features import INPUT_COLUMNS, model_inputs
from phishguard.modeling.train import train_and_save
from phishguard.provenance import IntegrityError, read_json
from tests.support.packaged_model import training_table


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """A 30-input and a 32-input XGBoost bundle, trained on the same featurized table."""
    table = training_table(800, 2)
    found = {}
    for counts in (False, True):
        directory = tmp_path_factory.mktemp(f"bundle-{counts}")
        spec = {"name": "xgboost", "n_estimators": 20, "max_depth": 3, "signal_counts": counts}
        train_and_save(model_config(spec), 7, table, directory)
        found[32 if counts else 30] = directory
    return found


@pytest.mark.parametrize("width", [30, 32])
def test_the_manifest_input_columns_drive_prediction(bundles, width: int) -> None:
    loaded = bundle.load(bundles[width], evaluated=False)
    assert loaded.input_columns == (FEATURES if width == 30 else INPUT_COLUMNS)
    table = training_table(200, 3)
    matrix = table.loc[:, list(FEATURES)].to_numpy(np.float32)
    inputs = model_inputs(matrix, loaded.input_columns)
    assert inputs.shape == (200, width)
    expected = loaded.model.inplace_predict(inputs, validate_features=False)
    np.testing.assert_array_equal(loaded.predict_proba(table), expected)
    # The signal is learnt, so the two bundles are real models, not constants.
    proba = loaded.predict_proba(table)
    assert proba[table[TARGET] == 1].mean() > proba[table[TARGET] == 0].mean() + 0.3


@pytest.mark.parametrize("width", [30, 32])
def test_predictions_do_not_depend_on_column_order(bundles, width: int) -> None:
    loaded = bundle.load(bundles[width], evaluated=False)
    table = training_table(200, 4).loc[:, list(FEATURES)]
    rng = np.random.default_rng(width)
    shuffled = table[list(rng.permutation(table.columns))]
    np.testing.assert_array_equal(loaded.predict_proba(shuffled), loaded.predict_proba(table))


def test_a_manifest_whose_columns_do_not_fit_the_model_is_refused(bundles, tmp_path) -> None:
    copy = Path(shutil.copytree(bundles[30], tmp_path / "copy"))
    manifest = read_json(copy / bundle.MANIFEST_FILE)
    bundle.seal(copy, {**manifest, "input_columns": list(INPUT_COLUMNS)})
    with pytest.raises(bundle.PackageError, match="the model takes 30 inputs but input_columns"):
        bundle.load(copy, evaluated=False)
    bundle.seal(copy, {**manifest, "input_columns": list(FEATURES[::-1])})
    with pytest.raises(bundle.PackageError, match="input columns must be the 30 features"):
        bundle.verify(copy, evaluated=False)


@pytest.mark.parametrize("name", ["model.ubj", bundle.MANIFEST_FILE])
def test_an_altered_file_is_refused_with_one_message(bundles, tmp_path, name: str) -> None:
    copy = Path(shutil.copytree(bundles[32], tmp_path / "copy"))
    with (copy / name).open("ab") as handle:
        handle.write(b" ")
    with pytest.raises(IntegrityError) as refused:
        bundle.load(copy, evaluated=False)
    message = str(refused.value)
    assert (
        message.startswith(f"{copy / name}: sha256 ") and "does not match the packaged" in message
    )


def test_a_trained_bundle_is_not_a_servable_package(bundles) -> None:
    with pytest.raises(
        bundle.PackageError, match=r"not a package manifest \(KeyError: 'threshold'"
    ):
        bundle.verify(bundles[30])
