"""The package: every file the service trusts is covered by its checksums, every trusted value
is range-checked, and the package stage replaces the served package only once the new one is
complete (issue 15: a bad retrain deleted it; a threshold of 1.01 was accepted)."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phishguard import PhishguardError
from phishguard.config.models import model_config
from phishguard.modeling import bundle
from phishguard.modeling import package as packaging
from phishguard.modeling.bundle import CHECKSUM_FILE, PackageError, verify
from phishguard.modeling.bundle import MANIFEST_FILE as PACKAGE_FILE
from phishguard.modeling.train import train_and_save
from phishguard.provenance import IntegrityError, file_sha256, read_json, write_json
from tests.support import REPO, run_tool, tool_env
from tests.support.packaged_model import labelled_rows, training_table

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def copy_of(package_dir: Path, destination: Path) -> Path:
    if destination.exists():
        shutil.rmtree(destination)
    return Path(shutil.copytree(package_dir, destination))


def edit_manifest(directory: Path, change, reseal: bool) -> None:
    manifest = read_json(directory / PACKAGE_FILE)
    files = sorted([manifest["model_file"], PACKAGE_FILE])
    change(manifest)
    write_json(directory / PACKAGE_FILE, manifest)
    if reseal:  # as someone who knows the format would: the checksums agree again
        lines = [f"{file_sha256(directory / name)}  {name}\n" for name in files]
        (directory / CHECKSUM_FILE).write_text("".join(lines))


def test_the_checksums_cover_the_model_and_the_manifest(package_dir: Path) -> None:
    listed = (package_dir / CHECKSUM_FILE).read_text().splitlines()
    assert sorted(line.split("  ")[1] for line in listed) == sorted(["model.ubj", PACKAGE_FILE])
    assert verify(package_dir)["threshold"] == read_json(package_dir / PACKAGE_FILE)["threshold"]


@SETTINGS
@given(
    name=st.sampled_from(["model.ubj", PACKAGE_FILE]),
    where=st.floats(0, 1, exclude_max=True),
    flip=st.integers(1, 255),
)
def test_any_edit_of_a_trusted_file_is_refused(package_dir, tmp_path, name, where, flip) -> None:
    copy = copy_of(package_dir, tmp_path / "package")
    data = bytearray((copy / name).read_bytes())
    data[int(where * len(data))] ^= flip
    (copy / name).write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=f"{name}: sha256 .* does not match the packaged"):
        verify(copy)


def test_a_threshold_edited_to_1_01_is_refused(package_dir: Path, tmp_path: Path) -> None:
    copy = copy_of(package_dir, tmp_path / "package")
    edit_manifest(copy, lambda m: m.update(threshold=1.01), reseal=False)
    with pytest.raises(IntegrityError, match=r"package\.json: sha256"):
        verify(copy)


outside_unit = st.one_of(
    st.floats(allow_nan=True).filter(lambda v: math.isnan(v) or not 0 < v < 1),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
)


@SETTINGS
@given(threshold=outside_unit)
def test_a_threshold_outside_0_1_is_refused_even_resealed(package_dir, tmp_path, threshold):
    copy = copy_of(package_dir, tmp_path / "package")

    def change(manifest: dict) -> None:
        manifest["threshold"] = manifest["operating_point"]["threshold"] = threshold

    edit_manifest(copy, change, reseal=True)
    with pytest.raises(PackageError, match=r"package.json: threshold .* is outside \(0, 1\)"):
        verify(copy)


@SETTINGS
@given(
    key=st.sampled_from(["roc_auc", "accuracy"]),
    value=st.one_of(
        st.floats(allow_nan=True).filter(lambda v: math.isnan(v) or not 0 <= v <= 1),
        st.booleans(),
    ),
)
def test_every_trusted_number_is_range_checked(package_dir, tmp_path, key, value) -> None:
    copy = copy_of(package_dir, tmp_path / "package")
    edit_manifest(copy, lambda m: m["metrics"]["test"].update({key: value}), reseal=True)
    with pytest.raises(PackageError, match=f"metrics.test.{key} = .* is not a number in"):
        verify(copy)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda m: m.update(features=m["features"][::-1]), "feature order differs"),
        (lambda m: m["label_mapping"].update(phishing=1), "label mapping differs"),
        (lambda m: m.update(model_file="../../etc/passwd"), "model_file '../../etc/passwd'"),
        (lambda m: m.update(model_sha256="0" * 64), "model_sha256"),
        (lambda m: m.update(train_rows=-3), "train_rows -3"),
        (lambda m: m["metrics"]["test"].update(n=2.5), "metrics.test.n = 2.5"),
        (lambda m: m.pop("threshold"), "not a package manifest (KeyError"),
    ],
)
def test_other_trusted_values_are_checked(package_dir, tmp_path, change, fragment) -> None:
    copy = copy_of(package_dir, tmp_path / "package")
    edit_manifest(copy, change, reseal=True)
    with pytest.raises(PackageError) as refused:
        verify(copy)
    assert fragment in str(refused.value) and "\n" not in str(refused.value)


def test_a_package_without_checksums_is_refused(package_dir: Path, tmp_path: Path) -> None:
    copy = copy_of(package_dir, tmp_path / "package")
    (copy / CHECKSUM_FILE).unlink()
    with pytest.raises(PackageError, match=f"{CHECKSUM_FILE}: missing; re-run the package stage"):
        verify(copy)


def test_phishguard_predict_refuses_an_edited_package_in_one_line(
    package_dir: Path, tmp_path: Path
) -> None:
    copy = copy_of(package_dir, tmp_path / "package")
    edit_manifest(copy, lambda m: m.update(threshold=1.01), reseal=False)
    rows = tmp_path / "rows.csv"
    labelled_rows(5, 1).to_csv(rows, index=False)
    result = subprocess.run(
        ["phishguard", "predict", str(rows), "-o", str(tmp_path / "out.csv"), "--model", str(copy)],
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "package.json: sha256" in result.stderr and "Traceback" not in result.stderr


# --- the package stage: build, verify, then switch ------------------------------------------


def stage_inputs(folder: Path, threshold: float, trees: int = 10) -> dict[str, Path]:
    """What the package stage reads: train's model folder, evaluate's operating point and
    metrics (a small model on synthetic rows)."""
    model_dir = folder / "model"
    spec = {"name": "xgboost", "n_estimators": trees, "max_depth": 3, "n_jobs": 1}
    train_and_save(model_config(spec), 7, training_table(400, 0), model_dir)
    write_json(folder / "operating_point.json", {"threshold": threshold, "target_fpr": 0.02})
    write_json(folder / "metrics.json", {"test": {"roc_auc": 0.97, "accuracy": 0.93}})
    return {
        "model_dir": model_dir,
        "operating_point": folder / "operating_point.json",
        "metrics": folder / "metrics.json",
    }


def store_files(home: Path) -> dict[str, str]:
    """Every file of the package store, with its sha256."""
    store = home / "models"
    return {
        str(path.relative_to(store)): file_sha256(path)
        for path in sorted(store.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, Path]:
    """A BentoML home with one package in it (the served one); (home, its folder)."""
    home = tmp_path / "bentoml"
    folder = packaging.package_model(**stage_inputs(tmp_path / "first", 0.6), bentoml_home=home)
    return home, folder


def test_repackaging_switches_to_the_new_package_then_drops_the_old(served, tmp_path) -> None:
    home, first = served
    second = packaging.package_model(**stage_inputs(tmp_path / "second", 0.7), bentoml_home=home)
    store = home / "models" / "phishguard"
    assert (store / "latest").read_text() == second.name != first.name
    assert not first.exists() and verify(second)["threshold"] == 0.7
    assert not list(home.glob(".staging-*"))  # nothing left behind
    again = packaging.package_model(**stage_inputs(tmp_path / "second", 0.7), bentoml_home=home)
    assert again == second and verify(again)["threshold"] == 0.7


def fail_to_seal(directory: Path, manifest: dict) -> None:
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("failure", ["threshold out of range", "disk full", "no model file"])
def test_a_failed_packaging_leaves_the_served_package_whole(
    served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    home, first = served
    before = store_files(home)
    inputs = stage_inputs(tmp_path / "bad", 1.01 if failure == "threshold out of range" else 0.7)
    if failure == "disk full":
        monkeypatch.setattr(bundle, "seal", fail_to_seal)
    if failure == "no model file":
        (inputs["model_dir"] / "model.ubj").unlink()
    with pytest.raises((PhishguardError, OSError)):
        packaging.package_model(**inputs, bentoml_home=home)
    assert store_files(home) == before
    assert not list(home.glob(".staging-*"))
    assert verify(first)["threshold"] == 0.6


def test_the_package_stage_fails_in_one_line_and_keeps_the_package(tmp_path: Path) -> None:
    """Through the stage script: a threshold of 1.01 is refused, the served package stays."""
    workdir = tmp_path / "work"
    for name in ("stages", "src"):
        shutil.copytree(REPO / name, workdir / name, ignore=shutil.ignore_patterns("__pycache__"))
    home = workdir / "models" / "bentoml"
    packaging.package_model(**stage_inputs(workdir / "good", 0.6), bentoml_home=home)
    before = store_files(home)
    inputs = stage_inputs(tmp_path / "inputs", 1.01)
    shutil.copytree(inputs["model_dir"], workdir / "models" / "model")
    shutil.copy(inputs["operating_point"], workdir / "models" / "operating_point.json")
    (workdir / "reports").mkdir()
    shutil.copy(inputs["metrics"], workdir / "reports" / "metrics.json")
    (workdir / "reports" / "split.json").write_text("{}")  # no verdicts: no trust counts
    shutil.copy(REPO / "params.yaml", workdir / "params.yaml")  # the `promotion` margins
    (workdir / "data" / "processed").mkdir(parents=True)  # the gate's splits (synthetic rows)
    for name in ("test.parquet", "feedback_holdout.parquet"):
        training_table(50, 1).to_parquet(workdir / "data" / "processed" / name, index=False)
    result = subprocess.run(
        ["python", "stages/package.py"],
        cwd=workdir,
        env=tool_env(workdir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "threshold 1.01 is outside (0, 1)" in result.stderr and "Traceback" not in result.stderr
    assert store_files(home) == before


def test_serving_finds_the_package_through_bentomls_public_api(served, tmp_path) -> None:
    home, folder = served
    script = (
        "from phishguard.serving.scoring import packaged_model_dir; print(packaged_model_dir())"
    )
    found = run_tool(["python", "-c", script], REPO, BENTOML_HOME=str(home))
    assert Path(found.stdout.strip()) == folder
    empty = run_tool(["python", "-c", script], REPO, check=False, BENTOML_HOME=str(tmp_path / "no"))
    assert f"no packaged model in {tmp_path / 'no'}; run `make pipeline`" in empty.stderr
