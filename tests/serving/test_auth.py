"""API keys enforced by `phishguard.serving.auth.ApiKeyAuth`: every route × caller in each mode,
constant-time refusal, per-key write limits, revocation without a restart, a corrupt store.

The full matrix runs on a tiny Starlette app (cheap enough for every mode × caller × edge
case), and again on the real service: its write route (/feedback), scoring and open routes.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from pathlib import Path

import bentoml
import mongomock_ng
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from phishguard import PhishguardError
from phishguard.serving import auth
from phishguard.serving.auth import ApiKeyAuth
from phishguard.serving.key_stores import FileKeyStore, open_key_store
from phishguard.serving.keys import KeyStoreError
from tests.support import synthetic_rows
from tests.support.api_keys import TestKeys, bearer, make_keys
from tests.support.service import asgi_app_without_metrics, records, serve_until_refused

MODES = ("off", "writes", "all")
CALLERS = ("no key", "malformed", "wrong key", "unknown id", "revoked key", "scorer", "analyst")
REFUSED = {"no key", "malformed", "wrong key", "unknown id", "revoked key"}
NAMES = {"scorer": "sam", "analyst": "alice"}


def headers_of(caller: str, keys: TestKeys) -> dict[str, str]:
    return {
        "no key": {},
        "malformed": {"Authorization": f"Basic {keys.analyst}"},
        "wrong key": bearer(keys.wrong),
        "unknown id": bearer(keys.unknown),
        "revoked key": bearer(keys.revoked),
        "scorer": bearer(keys.scorer),
        "analyst": bearer(keys.analyst),
    }[caller]


def expected_status(mode: str, kind: str, caller: str) -> int:
    """The contract: writes need an analyst key unless auth is off; in `all` every route that
    is not open needs a key of either role."""
    if mode == "off" or kind == "open" or (mode == "writes" and kind != "write"):
        return 200
    if caller in REFUSED:
        return 401
    return 403 if kind == "write" and caller == "scorer" else 200


def assert_answer(response, status: int, caller: str, protected: bool) -> None:
    assert response.status_code == status, (caller, response.text[:300])
    if status == 401:
        assert response.headers["www-authenticate"].startswith('Bearer realm="phishguard"')
        assert isinstance(response.json()["error"], str)
    if status == 403:
        assert "has the role 'scorer'" in response.json()["error"]


# --- the full matrix on a tiny app with a write route -------------------------------------


async def echo(request: Request) -> JSONResponse:
    return JSONResponse({"api_key_name": getattr(request.state, "api_key_name", None)})


TINY_ROUTES = {
    "/feedback": "write",
    "/predict": "scoring",
    "/added_later": "scoring",  # a route nobody declared: protected in `all`
    "/healthz": "open",
    "/readyz": "open",
    "/metrics": "open",
    "/docs.json": "open",
    "/ui": "open",
}


def tiny_app(keys_or_store, clock=time.monotonic, reload_seconds=1.0, **environ: str):
    store = FileKeyStore(getattr(keys_or_store, "store", keys_or_store))
    options = {"environ": environ, "store": store, "clock": clock, "reload_seconds": reload_seconds}
    routes = [Route(path, echo, methods=["GET", "POST"]) for path in TINY_ROUTES]
    return Starlette(routes=routes, middleware=[Middleware(ApiKeyAuth, **options)])


@pytest.mark.parametrize("mode", MODES)
def test_every_route_and_caller_on_an_app_with_feedback(api_keys, mode) -> None:
    with TestClient(tiny_app(api_keys, PHISHGUARD_AUTH=mode)) as client:
        for path, kind in TINY_ROUTES.items():
            for caller in CALLERS:
                status = expected_status(mode, kind, caller)
                response = client.post(path, json={}, headers=headers_of(caller, api_keys))
                assert_answer(response, status, caller, kind != "open")
                if status == 200:  # the key's name reaches the endpoint only once checked
                    checked = expected_status(mode, kind, "no key") == 401
                    name = NAMES.get(caller) if checked else None
                    assert response.json() == {"api_key_name": name}, (path, caller)


def test_the_default_mode_is_writes(api_keys) -> None:
    with TestClient(tiny_app(api_keys)) as client:
        assert client.post("/feedback", json={}).status_code == 401
        assert client.post("/predict", json={}).status_code == 200


@pytest.mark.parametrize(
    "value",
    ["Bearer", "Bearer ", "bearer", "Token abc", "Bearer pg_short", "Bearer a b", ""],
)
def test_malformed_authorization_is_401(api_keys, value) -> None:
    with TestClient(tiny_app(api_keys, PHISHGUARD_AUTH="writes")) as client:
        response = client.post("/feedback", json={}, headers={"Authorization": value})
    assert_answer(response, 401, value, True)


def test_two_authorization_headers_are_refused(api_keys) -> None:
    with TestClient(tiny_app(api_keys, PHISHGUARD_AUTH="writes")) as client:
        headers = [("authorization", f"Bearer {api_keys.analyst}")] * 2
        response = client.post("/feedback", json={}, headers=headers)
    assert response.status_code == 401


def test_trailing_slash_and_case_of_the_scheme(api_keys) -> None:
    with TestClient(tiny_app(api_keys, PHISHGUARD_AUTH="writes")) as client:
        assert client.post("/feedback/", json={}, follow_redirects=False).status_code == 401
        lower = {"Authorization": f"bearer {api_keys.analyst}"}
        assert client.post("/feedback", json={}, headers=lower).status_code == 200


# --- the real service: scoring and open routes --------------------------------------------


def call_service(client, path: str, headers: dict[str, str]):
    if path in ("/predict", "/explain"):
        return client.post(path, json={"records": records(2, 7)}, headers=headers)
    if path == "/predict_csv":
        upload = synthetic_rows(3, 8).to_csv(index=False).encode()
        return client.post(path, files={"file": ("x.csv", upload, "text/csv")}, headers=headers)
    if path == "/metadata":
        return client.post(path, json={}, headers=headers)
    if path == "/feedback":
        verdict = {"record": records(1, 9)[0], "label": "phishing", "note": "auth matrix"}
        return client.post(path, json={"feedback": [verdict]}, headers=headers)
    return client.get(path, headers=headers)


SERVICE_ROUTES = {
    "/feedback": "write",
    **dict.fromkeys(("/predict", "/explain", "/predict_csv", "/metadata"), "scoring"),
    **dict.fromkeys(("/healthz", "/livez", "/readyz", "/docs.json", "/", "/ui/"), "open"),
}


def test_the_service_in_each_mode(service_in_auth_mode, api_keys) -> None:
    mode, client = service_in_auth_mode
    for path, kind in SERVICE_ROUTES.items():
        for caller in CALLERS:
            status = expected_status(mode, kind, caller)
            response = call_service(client, path, headers_of(caller, api_keys))
            assert_answer(response, status, caller, kind != "open")


def test_the_service_says_when_keys_are_off(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="bentoml.phishguard"):
        ApiKeyAuth(echo, environ={"PHISHGUARD_AUTH": "off"})
    assert any("API keys are off (PHISHGUARD_AUTH=off)" in r.getMessage() for r in caplog.records)


def test_no_analyst_key_is_a_warning(tmp_path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="bentoml.phishguard"):
        ApiKeyAuth(echo, environ={}, store=FileKeyStore(tmp_path / "none.json"))
    assert any("no active analyst API key" in r.getMessage() for r in caplog.records)


def test_bad_settings_are_one_line_errors(api_keys) -> None:
    for environ, fragment in [
        ({"PHISHGUARD_AUTH": "sometimes"}, "PHISHGUARD_AUTH must be one of writes, all, off"),
        ({"PHISHGUARD_WRITE_RATE": "lots"}, "PHISHGUARD_WRITE_RATE must read N/second"),
        ({"PHISHGUARD_WRITE_RATE": "0/minute"}, "PHISHGUARD_WRITE_RATE must read"),
        ({"PHISHGUARD_WRITE_BURST": "-1"}, "PHISHGUARD_WRITE_BURST must be a positive integer"),
    ]:
        with pytest.raises(PhishguardError, match=fragment):
            auth.check_at_start({"PHISHGUARD_KEYS": str(api_keys.store), **environ})


# --- constant time -------------------------------------------------------------------------


def median_reject_times(app, keys: list[str], rounds: int) -> list[float]:
    """Median time for the middleware to refuse each key, measured interleaved."""

    async def measure() -> list[list[float]]:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        times: list[list[float]] = [[] for _ in keys]
        for _ in range(rounds):
            for index, key in enumerate(keys):
                scope = {
                    "type": "http",
                    "method": "POST",
                    "path": "/feedback",
                    "headers": [(b"authorization", f"Bearer {key}".encode())],
                }
                start = time.perf_counter()
                await app(scope, receive, send)
                times[index].append(time.perf_counter() - start)
                assert sent[-2]["status"] == 401
        return times

    return [statistics.median(t) for t in asyncio.run(measure())]


def test_refusing_a_wrong_key_takes_the_same_time_whether_its_id_exists(api_keys) -> None:
    """A key of the right shape costs one key derivation to refuse, whether its id is held,
    revoked or unknown (a dummy entry stands in). No absolute times: medians of interleaved
    runs, compared with a generous tolerance; a malformed key, refused without deriving,
    shows that the measurement does resolve one derivation."""
    app = ApiKeyAuth(
        echo, environ={"PHISHGUARD_AUTH": "writes"}, store=FileKeyStore(api_keys.store)
    )
    logging.getLogger("bentoml.phishguard").disabled = True  # one warning per refusal otherwise
    try:
        wrong, unknown, revoked, malformed = median_reject_times(
            app, [api_keys.wrong, api_keys.unknown, api_keys.revoked, "pg_x"], rounds=300
        )
    finally:
        logging.getLogger("bentoml.phishguard").disabled = False
    assert 0.67 < wrong / unknown < 1.5, (wrong, unknown)
    assert 0.67 < wrong / revoked < 1.5, (wrong, revoked)
    assert malformed < 0.5 * min(wrong, unknown), (malformed, wrong, unknown)


# --- rate limit ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_writes_are_rate_limited_per_key_and_recover(tmp_path) -> None:
    store = FileKeyStore(tmp_path / "api_keys.json")
    first, second = store.add("ann", "analyst"), store.add("bea", "analyst")
    clock = FakeClock()
    app = tiny_app(store.path, clock, PHISHGUARD_AUTH="all", PHISHGUARD_WRITE_RATE="2/minute")
    with TestClient(app) as client:
        ann = [client.post("/feedback", json={}, headers=bearer(first)) for _ in range(3)]
        assert [r.status_code for r in ann] == [200, 200, 429]
        assert ann[2].headers["retry-after"] == "30"  # one write per 30 s
        assert "too many writes with the API key 'ann'" in ann[2].json()["error"]
        # another key has its own bucket; scoring is not a write
        assert client.post("/feedback", json={}, headers=bearer(second)).status_code == 200
        scores = [client.post("/predict", json={}, headers=bearer(first)) for _ in range(5)]
        assert {r.status_code for r in scores} == {200}
        clock.now += 10
        refused = client.post("/feedback", json={}, headers=bearer(first))
        assert (refused.status_code, refused.headers["retry-after"]) == (429, "20")
        clock.now += 20
        assert client.post("/feedback", json={}, headers=bearer(first)).status_code == 200
        assert client.post("/feedback", json={}, headers=bearer(first)).status_code == 429


def test_the_burst_is_configurable(tmp_path) -> None:
    store = FileKeyStore(tmp_path / "api_keys.json")
    key = store.add("ann", "analyst")
    environ = {"PHISHGUARD_WRITE_RATE": "1/hour", "PHISHGUARD_WRITE_BURST": "4"}
    with TestClient(tiny_app(store.path, FakeClock(), **environ)) as client:
        statuses = [client.post("/feedback", headers=bearer(key)).status_code for _ in range(5)]
        assert statuses == [200] * 4 + [429]


# --- revocation and changes without a restart ---------------------------------------------


def test_a_revoked_key_stops_working_within_the_reload_interval(tmp_path) -> None:
    store = FileKeyStore(tmp_path / "api_keys.json")
    key = store.add("ann", "analyst")
    clock = FakeClock()
    with TestClient(tiny_app(store.path, clock, PHISHGUARD_AUTH="writes")) as client:
        assert client.post("/feedback", headers=bearer(key)).status_code == 200
        store.revoke("ann")
        later = store.add("bea", "analyst")
        # the store is looked at no more than once per interval...
        clock.now += auth.RELOAD_SECONDS / 2
        assert client.post("/feedback", headers=bearer(key)).status_code == 200
        # ...and the change is seen once it has passed
        clock.now += auth.RELOAD_SECONDS / 2
        assert client.post("/feedback", headers=bearer(key)).status_code == 401
        assert client.post("/feedback", headers=bearer(later)).status_code == 200


def test_revocation_on_the_real_clock(tmp_path) -> None:
    store = FileKeyStore(tmp_path / "api_keys.json")
    key = store.add("ann", "analyst")
    with TestClient(tiny_app(store.path, PHISHGUARD_AUTH="writes")) as client:
        assert client.post("/feedback", headers=bearer(key)).status_code == 200
        store.revoke("ann")
        revoked_at = time.monotonic()
        while client.post("/feedback", headers=bearer(key)).status_code == 200:
            assert time.monotonic() - revoked_at < auth.RELOAD_SECONDS + 4, "still accepted"
            time.sleep(0.05)


def test_a_store_broken_while_serving_fails_closed_then_recovers(tmp_path, caplog) -> None:
    keys = make_keys(tmp_path)
    good = keys.store.read_bytes()
    clock = FakeClock()
    with TestClient(tiny_app(keys, clock, PHISHGUARD_AUTH="all")) as client:
        assert client.post("/feedback", headers=bearer(keys.analyst)).status_code == 200
        keys.store.write_text("{ half written")
        clock.now += 2
        with caplog.at_level(logging.ERROR, logger="bentoml.phishguard"):
            broken = client.post("/feedback", headers=bearer(keys.analyst))
        assert broken.status_code == 503 and "cannot be read" in broken.json()["error"]
        assert client.post("/healthz").status_code == 200  # open routes stay open
        assert any("corrupt API key store: not JSON" in r.getMessage() for r in caplog.records)
        keys.store.write_bytes(good)
        clock.now += 2
        assert client.post("/feedback", headers=bearer(keys.analyst)).status_code == 200


def test_last_use_is_recorded_without_rewriting_the_store(tmp_path) -> None:
    store = FileKeyStore(tmp_path / "api_keys.json")
    key = store.add("ann", "analyst")
    version = store.version()
    with TestClient(tiny_app(store.path, PHISHGUARD_AUTH="writes")) as client:
        assert client.post("/feedback", headers=bearer(key)).status_code == 200
        deadline = time.monotonic() + 5
        while "ann" not in store.last_used() and time.monotonic() < deadline:
            time.sleep(0.05)  # written by a background thread
    assert "ann" in store.last_used() and store.version() == version


# --- a corrupt store at start -------------------------------------------------------------


def corrupt_store(tmp_path: Path) -> Path:
    path = tmp_path / "api_keys.json"
    path.write_text('{"version": 1, "keys": [{"name": "alice"}]}')
    return path


def test_a_corrupt_store_is_a_clean_start_up_error(tmp_path) -> None:
    path = corrupt_store(tmp_path)
    with pytest.raises(KeyStoreError) as error:
        auth.check_at_start({"PHISHGUARD_KEYS": str(path)})
    assert str(error.value).startswith(f"{path}: corrupt API key store: entry 0 lacks ")
    with pytest.raises(KeyStoreError):
        ApiKeyAuth(echo, environ={"PHISHGUARD_KEYS": str(path)})
    auth.check_at_start({"PHISHGUARD_KEYS": str(path), "PHISHGUARD_AUTH": "off"})  # not read


def test_the_deployment_hook_refuses_a_corrupt_store(service_client, tmp_path, monkeypatch):
    from bentoml.exceptions import BentoMLException

    from service.service import Phishguard

    monkeypatch.setenv("PHISHGUARD_KEYS", str(corrupt_store(tmp_path)))
    with pytest.raises(BentoMLException, match=r"refusing to start: .*corrupt API key store"):
        Phishguard.inner.verify_api_keys()
    monkeypatch.setenv("PHISHGUARD_KEYS", str(tmp_path / "absent.json"))
    Phishguard.inner.verify_api_keys()  # no store yet: starts, every write refused


def test_bentoml_serve_refuses_to_start_on_a_corrupt_store(package_dir, tmp_path) -> None:
    status, text = serve_until_refused(
        tmp_path,
        PHISHGUARD_PACKAGE_DIR=str(package_dir),
        PHISHGUARD_KEYS=str(corrupt_store(tmp_path)),
    )
    named = [line for line in text.splitlines() if "corrupt API key store" in line]
    assert status != 0 and len(named) == 1, text
    assert "refusing to start" in named[0] and "Traceback" not in text, text


def test_the_keyed_clients_of_the_bad_input_and_fuzz_tests_are_behind_keys(
    keyed_limited_client, keyed_service_app, api_keys
) -> None:
    """The bad-input corpus and the fuzzer run again through these: make sure a key is needed."""
    payload = {"records": records(1, 3)}
    assert keyed_limited_client.post("/predict", json=payload).status_code == 200
    refused = keyed_limited_client.post("/predict", json=payload, headers={"Authorization": ""})
    assert refused.status_code == 401
    with TestClient(keyed_service_app) as client:
        assert client.post("/predict", json=payload).status_code == 200
        wrong = client.post("/predict", json=payload, headers=bearer(api_keys.wrong))
        assert wrong.status_code == 401


def test_a_bentoml_endpoint_reads_the_key_name_from_its_context(api_keys) -> None:
    """The audit interface: a BentoML API method with a `ctx: bentoml.Context` parameter gets
    the name of the key that called it (the /feedback endpoint stores it as the submitter)."""

    @bentoml.service
    class Audited:
        @bentoml.api(route="/feedback")
        def feedback(self, ctx: bentoml.Context) -> dict:
            return {"submitter": getattr(ctx.request.state, "api_key_name", None)}

    Audited.add_asgi_middleware(ApiKeyAuth, environ=api_keys.environ("all"))
    with TestClient(asgi_app_without_metrics(Audited)) as client:
        answer = client.post("/feedback", json={}, headers=bearer(api_keys.analyst))
        assert answer.json() == {"submitter": "alice"}
        assert client.post("/feedback", json={}).status_code == 401


def test_keys_in_mongodb_are_enforced_and_revoked_without_restart() -> None:
    store = open_key_store({}, mongomock_ng.MongoClient())
    key = store.add("ann", "analyst")
    clock = FakeClock()
    app = Starlette(
        routes=[Route("/feedback", echo, methods=["POST"])],
        middleware=[Middleware(ApiKeyAuth, environ={}, store=store, clock=clock)],
    )
    with TestClient(app) as client:
        assert client.post("/feedback", headers=bearer(key)).json() == {"api_key_name": "ann"}
        store.revoke("ann")
        clock.now += auth.RELOAD_SECONDS
        assert client.post("/feedback", headers=bearer(key)).status_code == 401
