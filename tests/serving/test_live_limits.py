"""Limits that only a real server shows: the event loop stays free while a request is checked
and scored (health checks answer within 1 s), and request heads over the header limit are
refused as they arrive, over raw sockets. `bentoml serve` of a full-size model (600 trees),
default limits; `tests/hardening/test_header_limits.py` covers the header protocol in-process.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phishguard.contract.record_checks import DEFAULT_MAX_EXPLAIN_ROWS, DEFAULT_MAX_ROWS
from phishguard.contract.schema import FEATURES
from phishguard.serving.header_limits import DEFAULT_MAX_HEADER_BYTES
from phishguard.serving.request_limits import DEFAULT_MAX_BODY_BYTES
from tests.support import synthetic_rows
from tests.support.service import records

pytestmark = pytest.mark.e2e
HEALTH_LIMIT_S = 1.0
TIMEOUT_S = 30  # the service's traffic timeout


BOUNDARY = "phishguard-live-test"


def post(port: int, route: str, body: bytes) -> tuple[int, float, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    content_type = (
        f"multipart/form-data; boundary={BOUNDARY}"
        if route == "/predict_csv"
        else "application/json"
    )
    connection.request("POST", route, body, {"content-type": content_type})
    response = connection.getresponse()
    text = response.read().decode()
    return response.status, time.perf_counter() - start, text


def slowest_health_check(port: int, busy: Callable[[], bool]) -> float:
    """Poll /readyz and /healthz while `busy()`; the slowest answer in seconds."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    slowest, polls = 0.0, 0
    while busy() or polls < 2:
        for route in ("/readyz", "/healthz"):
            start = time.perf_counter()
            connection.request("GET", route)
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            slowest = max(slowest, time.perf_counter() - start)
        polls += 1
        time.sleep(0.02)
    return slowest


def misspelled_keys_body(size: int) -> bytes:
    """One record of distinct keys, each close to a feature name, `size` bytes in all: the
    most parsing work and misspelling guesses one body under the limit can ask for."""
    keys, total, i = [], 20, 0
    while total < size:
        keys.append(f'"{FEATURES[i % len(FEATURES)][:-1]}{i}":1')
        total += len(keys[-1]) + 1
        i += 1
    return ('{"records":[{' + ",".join(keys[:-1]) + "}]}").encode()


def csv_upload(rows: int) -> bytes:
    """A multipart upload of a CSV file of `rows` valid rows."""
    table = synthetic_rows(rows, 4).loc[:, list(FEATURES)].to_csv(index=False)
    return (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="rows.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\n{table}\r\n--{BOUNDARY}--\r\n"
    ).encode()


HEAVY = {
    "explain at its row limit": (
        "/explain",
        lambda: json.dumps({"records": records(DEFAULT_MAX_EXPLAIN_ROWS, 1), "top": 32}).encode(),
        200,
    ),
    "predict at its row limit": (
        "/predict",
        lambda: json.dumps({"records": records(DEFAULT_MAX_ROWS, 2)}).encode(),
        200,
    ),
    "CSV upload at the row limit": (
        "/predict_csv",
        lambda: csv_upload(DEFAULT_MAX_ROWS),
        200,
    ),
    "misspelled keys up to the body limit": (
        "/predict",
        lambda: misspelled_keys_body(DEFAULT_MAX_BODY_BYTES - 1024),
        422,
    ),
}


@pytest.mark.parametrize("case", list(HEAVY))
def test_health_checks_answer_within_a_second_during_the_heaviest_requests(
    live_service: int, case: str
) -> None:
    route, make_body, status = HEAVY[case]
    body = make_body()
    assert len(body) < DEFAULT_MAX_BODY_BYTES
    answers: list[tuple[int, float, str]] = []
    worker = threading.Thread(target=lambda: answers.append(post(live_service, route, body)))
    worker.start()
    slowest = slowest_health_check(live_service, worker.is_alive)
    worker.join()
    answer_status, took, text = answers[0]
    print(f"\n{case}: {len(body)} bytes, answered in {took:.2f} s, slowest health {slowest:.3f} s")
    assert (answer_status, text[:80]) == (status, text[:80])
    assert took < TIMEOUT_S, f"{case}: {took:.1f} s"
    assert slowest < HEALTH_LIMIT_S, f"/readyz took {slowest:.2f} s during {case} ({took:.1f} s)"
    if status == 422:
        assert "(misspelled 'having_IP_Address'?)" in text and "… and " in text
        assert len(text) < 4000


def test_explain_over_its_row_limit_is_413_naming_the_limit(live_service: int) -> None:
    body = json.dumps({"records": records(DEFAULT_MAX_EXPLAIN_ROWS + 1, 3)}).encode()
    status, _, text = post(live_service, "/explain", body)
    assert status == 413
    assert f"the limit is {DEFAULT_MAX_EXPLAIN_ROWS}" in json.loads(text)["error"]


def raw_request(port: int, head: bytes, chunk: int = 64 * 1024) -> tuple[bytes, int]:
    """Send a request head over a raw socket, `chunk` bytes at a time, stopping if the server
    closes; return the status line of the answer and the bytes the server took."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        sent = 0
        try:
            while sent < len(head):
                sent += connection.send(head[sent : sent + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            answer = connection.recv(4096)
        except ConnectionResetError:
            answer = b""
    return answer.split(b"\r\n", 1)[0], sent


def head_with(headers: list[tuple[str, str]], path: str = "/readyz") -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


REFUSED = b"HTTP/1.1 431 Request Header Fields Too Large"
# More than loopback socket buffers hold: a client can send this much only if it is read.
BUFFERED = 8 * 1024 * 1024
HEADS = {
    "one header just under the limit": (
        head_with([("X-Pad", "a" * (DEFAULT_MAX_HEADER_BYTES - 200))]),
        b"HTTP/1.1 200 OK",
    ),
    "one 10 MB header": (head_with([("X-Pad", "a" * 10_000_000)]), REFUSED),
    "a 10 MB header name": (head_with([("X" * 10_000_000, "1")]), REFUSED),
    "a 1 MB URL": (head_with([], path="/readyz?" + "q" * 1_000_000), REFUSED),
    "2,000 headers of 100 bytes": (
        head_with([(f"X-H{i}", "a" * 100) for i in range(2000)]),
        REFUSED,
    ),
    "a head that never ends": (b"GET /readyz HTTP/1.1\r\nX-Pad: " + b"a" * 5_000_000, REFUSED),
}


@pytest.mark.parametrize("case", list(HEADS))
def test_request_heads_over_the_limit_are_refused_as_they_arrive(live_service: int, case: str):
    head, expected = HEADS[case]
    status_line, taken = raw_request(live_service, head)
    assert status_line == expected
    if len(head) > BUFFERED:  # refused early: the server stopped reading the head
        assert taken < BUFFERED, taken


def test_four_64_mb_headers_do_not_stall_health_checks(live_service: int) -> None:
    head = head_with([("X-Pad", "a" * 64_000_000)])
    answers: list[bytes] = []
    senders = [
        threading.Thread(target=lambda: answers.append(raw_request(live_service, head)[0]))
        for _ in range(4)
    ]
    for sender in senders:
        sender.start()
    slowest = slowest_health_check(live_service, lambda: any(s.is_alive() for s in senders))
    for sender in senders:
        sender.join()
    print(f"\nfour 64 MB headers: slowest health check {slowest:.3f} s")
    assert answers == [REFUSED] * 4
    assert slowest < HEALTH_LIMIT_S


# --- fuzzing against the live server: generated heads and bodies ---------------------------

LIVE = settings(max_examples=25, deadline=None, derandomize=True, database=None)
header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,30}", fullmatch=True)


@LIVE
@given(
    headers=st.lists(
        st.tuples(header_names, st.integers(0, 3 * DEFAULT_MAX_HEADER_BYTES)), max_size=6
    ),
    chunk=st.sampled_from([1024, 64 * 1024, 1024 * 1024]),
)
def test_generated_heads_are_served_or_refused_with_431(live_service: int, headers, chunk):
    head = head_with([(name, "v" * size) for name, size in headers])
    status_line, _ = raw_request(live_service, head, chunk)
    expected = REFUSED if len(head) > DEFAULT_MAX_HEADER_BYTES else b"HTTP/1.1 200 OK"
    assert status_line == expected, len(head)


@LIVE
@given(
    records_count=st.integers(1, 2000),
    keys_per_record=st.integers(1, 300),
    misspelled=st.booleans(),
)
def test_generated_bad_bodies_never_hold_the_health_checks(
    live_service: int, records_count: int, keys_per_record: int, misspelled: bool
) -> None:
    """Bodies of many unknown or misspelled keys: a 4xx naming them, while /readyz and
    /healthz keep answering within a second."""
    names = [
        f"{FEATURES[i % len(FEATURES)][:-1] if misspelled else 'k'}{i}"
        for i in range(keys_per_record)
    ]
    record = "{" + ",".join(f'"{name}":1' for name in names) + "}"
    body = ('{"records":[' + ",".join([record] * records_count) + "]}").encode()
    answers: list[tuple[int, float, str]] = []
    worker = threading.Thread(target=lambda: answers.append(post(live_service, "/predict", body)))
    worker.start()
    slowest = slowest_health_check(live_service, worker.is_alive)
    worker.join()
    status, _, text = answers[0]
    assert status in (413, 422), text[:300]
    assert slowest < HEALTH_LIMIT_S
