"""What the service relies on from BentoML, pinned to the installed version, and the contract it
shows: a BentoML upgrade that changes how errors are shaped or logged fails here, loudly,
before it changes what clients get (`phishguard.serving.http_errors` is the adapter)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from http import HTTPStatus

import bentoml
import pytest
from bentoml.exceptions import BentoMLException
from starlette.testclient import TestClient

from phishguard.contract.schema import DOMAINS, FEATURES
from phishguard.serving import http_errors
from phishguard.serving.http_models import ExplainedResults, Metadata, Results
from tests.support.service import asgi_app_without_metrics, records


def test_bentoml_is_the_minor_version_the_adapter_was_written_for() -> None:
    assert bentoml.__version__.split(".")[:2] == ["1", "4"], (
        f"BentoML {bentoml.__version__}: re-check the shapes pinned in this module and "
        "phishguard.serving.http_errors, then update the version here"
    )


@bentoml.service(name="bentoml_contract_probe")
class Probe:
    @bentoml.api
    def raises(self) -> dict:
        raise BentoMLException("bad input", error_code=HTTPStatus.UNPROCESSABLE_ENTITY)

    @bentoml.api
    def typed(self, n: int) -> dict:
        return {"n": n}


@pytest.fixture(scope="module")
def probe() -> Iterator[TestClient]:
    with TestClient(asgi_app_without_metrics(Probe), raise_server_exceptions=False) as client:
        yield client


def test_a_raised_4xx_is_a_one_element_list_logged_with_its_traceback(probe, caplog) -> None:
    """Why the endpoints return `http_errors.client_error` instead of raising."""
    with caplog.at_level(logging.INFO, logger=http_errors.BENTOML_ERROR_LOGGER):
        response = probe.post("/raises", json={})
    assert (response.status_code, response.json()) == (422, [{"error": "bad input"}])
    logged = [r for r in caplog.records if r.name == http_errors.BENTOML_ERROR_LOGGER]
    assert [(r.levelname, r.getMessage()) for r in logged] == [
        ("ERROR", "Exception on /raises [POST]")
    ]
    assert isinstance(logged[0].exc_info[1], BentoMLException)


def test_a_validation_error_is_400_with_pydantic_details(probe) -> None:
    """The shape the service keeps for input that does not fit its types (clients and the
    bad-input corpus match `"loc":[...]`)."""
    response = probe.post("/typed", json={"n": "x"})
    assert response.status_code == 400
    answer = response.json()
    assert set(answer) == {"error", "detail"}
    assert answer["error"].startswith("1 validation error for ")
    assert [(d["loc"], d["type"]) for d in answer["detail"]] == [(["n"], "int_parsing")]
    invalid = probe.post("/typed", content=b"{", headers={"content-type": "application/json"})
    assert invalid.status_code == 400 and "Invalid JSON" in invalid.text


def test_docs_show_every_field_and_its_allowed_values(service_client) -> None:
    spec = service_client.get("/docs.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    record = schema["properties"]["records"]["items"]
    assert list(record["properties"]) == list(FEATURES)
    assert {name: tuple(field["enum"]) for name, field in record["properties"].items()} == dict(
        DOMAINS.items() - {("Result", DOMAINS["Result"])}
    )
    assert record["required"] == list(FEATURES) and record["additionalProperties"] is False


def test_answers_are_the_declared_models(service_client) -> None:
    batch = {"records": records(3, 70)}
    predicted = Results.model_validate_json(service_client.post("/predict", json=batch).content)
    explained = ExplainedResults.model_validate_json(
        service_client.post("/explain", json=batch).content
    )
    assert len(predicted.results) == len(explained.results) == 3
    assert [r.phishing_probability for r in predicted.results] == [
        r.phishing_probability for r in explained.results
    ]
    Metadata.model_validate_json(service_client.post("/metadata", json={}).content)
