"""Stage scripts fail with one clear line on bad input (run in a scratch directory)."""

import sys
from pathlib import Path

import yaml

from phishguard.data.landing import LANDING_STEM
from tests.support import REPO, run_tool, synthetic_rows


def scratch(tmp_path: Path) -> Path:
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    return tmp_path


def run_stage(name: str, cwd: Path):
    return run_tool([sys.executable, str(REPO / "stages" / f"{name}.py")], cwd, check=False)


def assert_one_clear_line(result, stage: str, *fragments: str) -> None:
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines[-1].startswith(f"{stage}: error: ")
    for fragment in fragments:
        assert fragment in lines[-1]


def test_ingest_without_landed_data_says_what_to_do(tmp_path):
    result = run_stage("ingest", scratch(tmp_path))
    assert_one_clear_line(result, "ingest", "make data", "PHISHING_DATA")


def test_ingest_of_junk_names_the_file(tmp_path):
    work = scratch(tmp_path)
    (work / "data" / "landing").mkdir(parents=True)
    (work / "data" / "landing" / f"{LANDING_STEM}.csv").write_bytes(b"\x00\x01\x02junk")
    assert_one_clear_line(run_stage("ingest", work), "ingest", f"{LANDING_STEM}.csv", "binary")


def landed(work: Path, rows) -> Path:
    (work / "data" / "landing").mkdir(parents=True, exist_ok=True)
    rows.to_csv(work / "data" / "landing" / f"{LANDING_STEM}.csv", index=False)
    return work


def test_validate_fails_over_the_quarantine_limit_but_keeps_the_rows(tmp_path):
    rows = synthetic_rows(200).astype(object)
    rows.loc[:4, "SFH"] = 7  # 5 of 200 = 2.5% > 1%
    work = landed(scratch(tmp_path), rows)
    assert run_stage("ingest", work).returncode == 0
    result = run_stage("validate", work)
    assert_one_clear_line(result, "validate", "5 of 200 rows (2.50%) quarantined", "limit of 1.00%")
    quarantine = (work / "data/quarantine/quarantine.csv").read_text().splitlines()
    assert len(quarantine) == 1 + 5
    assert "SFH=7 not in {-1, 0, 1}" in quarantine[1]


def test_validate_names_a_misspelled_column(tmp_path):
    work = landed(scratch(tmp_path), synthetic_rows(20).rename(columns={"Iframe": "IFrame"}))
    assert run_stage("ingest", work).returncode == 0
    assert_one_clear_line(
        run_stage("validate", work), "validate", "missing column Iframe", "'IFrame'"
    )


def test_unknown_param_key_is_an_error(tmp_path):
    work = landed(scratch(tmp_path), synthetic_rows(20))
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["validate"]["max_quarantine_fraktion"] = 0.5
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    run_stage("ingest", work)
    assert_one_clear_line(
        run_stage("validate", work), "validate", "unknown key(s) max_quarantine_fraktion"
    )


def test_unknown_model_hyperparameter_is_an_error(tmp_path):
    work = landed(scratch(tmp_path), synthetic_rows(300))
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["model"]["max_dept"] = 3
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("ingest", "validate", "featurize"):
        assert run_stage(stage, work).returncode == 0, stage
    assert_one_clear_line(
        run_stage("train", work), "train", "not a hyperparameter of xgboost", "max_dept"
    )


def test_fetch_with_no_reachable_source_names_the_variable(tmp_path):
    work = scratch(tmp_path)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["data"]["url"] = "http://127.0.0.1:9/Training%20Dataset.arff"
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_tool(["phishguard", "fetch"], work, check=False, PHISHING_DATA="")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "unreachable" in line and "PHISHING_DATA" in line


def test_ingest_refuses_a_row_drop_over_the_limit_unless_allowed(tmp_path):
    work = landed(scratch(tmp_path), synthetic_rows(100, 3))
    assert run_stage("ingest", work).returncode == 0  # the first ingest sets the baseline
    landed(work, synthetic_rows(94, 3))  # 6% fewer rows than the last ingest
    before = (work / "reports" / "ingest.json").read_text()
    result = run_stage("ingest", work)
    assert_one_clear_line(result, "ingest", "94 rows, 6.0% fewer than the 100", "max_row_drop")
    assert (work / "reports" / "ingest.json").read_text() == before  # the baseline stays
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["ingest"]["max_row_drop"] = 0.1
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    assert run_stage("ingest", work).returncode == 0
    assert '"rows": 94' in (work / "reports" / "ingest.json").read_text()


def test_ingest_within_the_row_drop_limit_passes(tmp_path):
    work = landed(scratch(tmp_path), synthetic_rows(100, 3))
    assert run_stage("ingest", work).returncode == 0
    assert run_stage("ingest", landed(work, synthetic_rows(95, 3))).returncode == 0


def test_ingest_max_row_drop_out_of_range_is_named(tmp_path):
    work = landed(scratch(tmp_path), synthetic_rows(10, 3))
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["ingest"]["max_row_drop"] = 5
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    assert_one_clear_line(run_stage("ingest", work), "ingest", "max_row_drop must be in [0, 1]")
