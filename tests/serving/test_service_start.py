"""`bentoml serve` before the pipeline has packaged a model says what to do (issue 29), instead
of BentoML's "could not be found locally ... No cloud context"."""

from __future__ import annotations

from tests.support.service import serve_until_refused


def test_bentoml_serve_without_a_package_says_to_run_make_pipeline(tmp_path) -> None:
    status, text = serve_until_refused(tmp_path)  # an empty store: what a fresh clone has
    assert status != 0, text
    assert "no packaged model phishguard:latest" in text and "run `make pipeline` first" in text
    assert "cloud context" not in text and "Traceback" not in text, text
