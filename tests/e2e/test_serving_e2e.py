"""End to end on the real pipeline: the package stage, a real `bentoml serve` on loopback,
the pipeline's own predictions for the test split, the web page in headless chromium, and an
offline `bentoml build`."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from phishguard.contract.schema import FEATURES
from phishguard.modeling import bundle
from tests.support import free_port, run_tool
from tests.support.browser import chromium
from tests.support.service import start_bentoml, stop

pytestmark = pytest.mark.e2e


def package_folder(workdir: Path) -> Path:
    store = workdir / "models" / "bentoml" / "models" / "phishguard"
    return store / (store / "latest").read_text().strip()


def test_package_stage_output(pipeline_clone: Path) -> None:
    manifest = json.loads((package_folder(pipeline_clone) / "package.json").read_text())
    trained = json.loads((pipeline_clone / "models" / "model" / "package.json").read_text())
    operating = json.loads((pipeline_clone / "models" / "operating_point.json").read_text())
    metrics = json.loads((pipeline_clone / "reports" / "metrics.json").read_text())
    assert manifest["model_sha256"] == trained["model_sha256"]
    assert manifest["threshold"] == operating["threshold"]
    assert manifest["metrics"] == metrics
    assert manifest["features"] == list(FEATURES)
    assert manifest["train_data_sha256"] == trained["train_data_sha256"]
    # Nothing that changes with each commit is hashed: /metadata reads the revision from git.
    assert "git_revision" not in manifest and "git_revision" not in trained
    repro = run_tool(["dvc", "repro"], pipeline_clone)
    assert "Stage 'package' didn't change, skipping" in repro.stdout
    assert "Data and pipelines are up to date" in run_tool(["dvc", "status"], pipeline_clone).stdout


@pytest.fixture(scope="module")
def live_server(pipeline_clone: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "bentoml.log"
    server = start_bentoml(pipeline_clone, port, log)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


def call(url: str, body: object) -> tuple[int, str]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_served_predictions_are_the_pipelines(live_server: str, pipeline_clone: Path) -> None:
    test = pd.read_parquet(pipeline_clone / "data" / "processed" / "test.parquet")
    trained = bundle.load(pipeline_clone / "models" / "model", evaluated=False)
    expected = trained.predict_proba(test)
    threshold = json.loads((pipeline_clone / "models" / "operating_point.json").read_text())[
        "threshold"
    ]
    records = [
        {k: int(v) for k, v in row.items()}
        for row in test.loc[:, list(FEATURES)].to_dict("records")
    ]
    status, text = call(f"{live_server}/predict", {"records": records})
    assert status == 200
    served = json.loads(text)["results"]
    assert len(served) == len(test) > 1000
    np.testing.assert_array_equal(
        np.array([r["phishing_probability"] for r in served], dtype=np.float32), expected
    )
    assert [r["is_phishing"] for r in served] == (expected >= threshold).tolist()


def test_live_endpoints_and_errors(live_server: str) -> None:
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(f"{live_server}{path}", timeout=10) as response:
            assert response.status == 200
    with urllib.request.urlopen(f"{live_server}/metrics", timeout=10) as response:
        assert "bentoml_service_request_total" in response.read().decode()
    status, text = call(f"{live_server}/predict", {"records": [{"URL_Length": 1}]})
    assert status == 422 and "record 0: missing field 'having_IP_Address'" in text
    status, _ = call(f"{live_server}/predict", {"records": 3})
    assert status == 400
    status, text = call(f"{live_server}/metadata", {})
    assert status == 200 and json.loads(text)["features"] == list(FEATURES)


def test_web_page_in_chromium(live_server: str, pipeline_clone: Path, tmp_path: Path) -> None:
    test = pd.read_parquet(pipeline_clone / "data" / "processed" / "test.parquet")
    sample = test.loc[:4, list(FEATURES)].assign(Result=1)  # Result must be ignored
    csv_text = sample.to_csv(index=False)
    records = [
        {k: int(v) for k, v in r.items()} for r in sample.drop(columns="Result").to_dict("records")
    ]
    _, text = call(f"{live_server}/predict", {"records": records})
    expected = [f"{r['phishing_probability']:.4f}" for r in json.loads(text)["results"]]

    with chromium() as browser:
        page = browser.new_page(accept_downloads=True)
        page.goto(f"{live_server}/ui/")
        page.wait_for_function("document.querySelector('#meta').textContent.includes('threshold')")
        page.fill("#records", csv_text)
        page.click("#score")
        page.wait_for_selector("#results tbody tr")
        rows = page.locator("#results tbody tr")
        assert rows.count() == 5
        shown = [rows.nth(i).locator("td").nth(1).inner_text() for i in range(5)]
        assert shown == expected
        assert rows.nth(0).locator("td").nth(2).inner_text() in {"phishing", "legitimate"}
        assert "=" in rows.nth(0).locator("td").nth(3).inner_text()  # top reasons
        # One verdict button per label on every row; sending one first asks for the API key.
        assert rows.locator("button.verdict").all_inner_texts() == ["phishing", "legitimate"] * 5
        rows.nth(0).locator("button.verdict-phishing").click()
        page.wait_for_selector("#key-form", state="visible")
        page.click("#key-cancel")
        with page.expect_download() as download:
            page.click("#download")
        saved = tmp_path / "results.csv"
        download.value.save_as(saved)
        assert len(pd.read_csv(saved)) == 5

        page.click("#example")  # the example from the served schema scores too
        page.wait_for_function("document.querySelector('#records').value.startsWith('[')")
        page.click("#score")
        page.wait_for_function("document.querySelectorAll('#results tbody tr').length === 2")

        upload = tmp_path / "upload.csv"
        upload.write_text(csv_text.replace(",1\n", ",7\n", 1).replace("Result", "SFH_x"))
        page.set_input_files("#file", str(upload))
        page.click("#score")
        page.wait_for_function("document.querySelector('#error').textContent.length > 0")
        assert "HTTP 422" in page.inner_text("#error")
        assert "SFH_x" in page.inner_text("#error")


def test_bento_builds_offline(pipeline_clone: Path, tmp_path: Path) -> None:
    workdir = Path(shutil.copytree(pipeline_clone, tmp_path / "clone", symlinks=True))
    done = run_tool(
        ["bentoml", "build", "--output", "tag"],
        workdir,
        BENTOML_HOME=str(workdir / "models" / "bentoml"),
    )
    assert "__tag__:phishguard:" in done.stdout
    bentos = [
        p
        for p in (workdir / "models" / "bentoml" / "bentos" / "phishguard").iterdir()
        if p.is_dir()
    ]
    assert bentos and (bentos[0] / "src" / "service" / "service.py").is_file()
    assert not (bentos[0] / "src" / "models").exists()  # .bentoignore kept the store out
