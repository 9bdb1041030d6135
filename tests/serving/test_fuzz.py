"""Schemathesis against the service's own OpenAPI document, in-process: valid and invalid
requests generated for every operation, and not one may get a server error (5xx).

Bounded: `FUZZ_EXAMPLES` examples per operation and mode (default 30), no shrinking; well
under a minute on 2 cores. `FUZZ_EXAMPLES=300 pytest tests/hardening/test_fuzz.py -s` digs
deeper; `-s` prints the totals.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)


@pytest.fixture(scope="module", params=["auth=writes", "auth=all with a key"])
def service_app(request: pytest.FixtureRequest, service_app):
    """The service with the default auth mode, and with every route behind an API key and a
    valid one added to each request (issue 18): still not one server error."""
    if request.param == "auth=writes":
        return service_app
    return request.getfixturevalue("keyed_service_app")


def operations(app: object) -> list:
    schema = schemathesis.openapi.from_asgi("/docs.json", app)
    found = [result.ok() for result in schema.get_all_operations()]
    return [op for op in found if op.method.upper() == "POST"]


def test_the_schema_documents_every_scoring_route(service_app) -> None:
    paths = {op.path for op in operations(service_app)}
    assert {"/predict", "/explain", "/predict_csv", "/metadata"} <= paths


@pytest.mark.parametrize("mode", MODES, ids=lambda m: m.value)
def test_no_server_errors(service_app, mode: GenerationMode) -> None:
    statuses: Counter[int] = Counter()
    server_errors = []
    for operation in operations(service_app):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            phases=["explicit", "generate"],  # no shrinking: bounded time
            suppress_health_check=list(HealthCheck),
        )
        def call(case) -> None:
            response = case.call()
            statuses[response.status_code] += 1
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except AssertionError as error:  # collect them all, report at the end
                server_errors.append(f"{case.method} {case.path}: {error}")

        call()
    total = sum(statuses.values())
    print(f"\nfuzzing ({mode.value}): {total} requests, by status {dict(sorted(statuses.items()))}")
    assert total >= EXAMPLES
    assert not [status for status in statuses if status >= 500], statuses
    assert not server_errors, "\n".join(server_errors[:5])
