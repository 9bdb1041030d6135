"""Bad input to the service, in-process: every kind is a 4xx that names the problem, never a 5xx.

`tests/serving/test_service_asgi.py` covers the basic cases on /predict (unknown, missing,
string and out-of-domain fields, empty list, too many rows, `records` absent or not a list of
objects) and bad rows and columns on /predict_csv; this corpus adds the rest, and runs the JSON
cases on /explain too.
"""

from __future__ import annotations

import json
import logging

import pytest

from phishguard.contract.schema import FEATURES, LABEL
from phishguard.serving import http_errors
from tests.support import synthetic_rows
from tests.support.service import MAX_BODY_BYTES, MAX_ROWS, records

JSON_ROUTES = ("/predict", "/explain")
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module", params=["auth=writes", "auth=all with a key"])
def limited_client(request: pytest.FixtureRequest, limited_client):
    """Every case twice: with the default auth mode, and with every route behind an API key
    and a valid one sent (issue 18): a key changes nothing about how bad input is answered."""
    if request.param == "auth=writes":
        return limited_client
    return request.getfixturevalue("keyed_limited_client")


def one(**change: object) -> dict:
    """A valid record with some fields replaced (a value of `...` removes the field)."""
    record = {**records(1, 60)[0], **change}
    return {k: v for k, v in record.items() if v is not ...}


def body_of(records_: object) -> bytes:
    return json.dumps({"records": records_}).encode()


def assert_error(response, status: int, fragment: str) -> None:
    """`status`, and one JSON object whose "error" text holds `fragment`."""
    assert (response.status_code, fragment in response.text) == (status, True), response.text[:500]
    answer = response.json()
    assert isinstance(answer, dict) and isinstance(answer["error"], str), response.text[:500]


LONG = 123456789  # in a record, replaced by `long_number`'s text in the body


def long_number(records_: list, text: bytes) -> bytes:
    """The body of `records_` with the value `LONG` written as `text` (too long to build)."""
    return body_of(records_).replace(str(LONG).encode(), text)


# (name, raw body, content type, status, fragment of the answer)
RAW_CASES = [
    ("invalid JSON", b'{"records": [', "application/json", 400, "Invalid JSON"),
    ("not JSON at all", b"records=1", "application/json", 400, "Invalid JSON"),
    ("trailing junk", body_of([one()]) + b"}}", "application/json", 400, "Invalid JSON"),
    ("text/plain", body_of([one()]), "text/plain", 415, "content type 'text/plain'"),
    (
        "form-encoded",
        b"records=1",
        "application/x-www-form-urlencoded",
        415,
        "'application/x-www-form-urlencoded' is not accepted",
    ),
    ("XML", b"<records/>", "application/xml", 415, "send JSON"),
    ("no content type", body_of([one()]), None, 415, "content type 'none'"),
    ("body not an object", body_of([one()])[12:-1], "application/json", 400, "object"),
    ("JSON null body", b"null", "application/json", 400, "Input should be an object"),
    (
        "very deep nesting",
        b'{"records": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
        "application/json",
        400,
        "recursion limit exceeded",
    ),
    (
        "deep nesting inside a field",
        b'{"records": [{"port": ' + b'{"a":' * 5_000 + b"1" + b"}" * 5_000 + b"}]}",
        "application/json",
        400,
        "recursion limit exceeded",
    ),
    (
        "invalid UTF-8",
        b'{"records": [{"\xff\xfe": 1}]}',
        "application/json",
        400,
        "Invalid JSON",
    ),
    ("lone surrogate escape", b'{"records": [{"\\ud800": 1}]}', "application/json", 400, "JSON"),
    (
        "NaN literal",
        body_of([one(port=1)]).replace(b'"port": 1', b'"port": NaN'),
        "application/json",
        422,
        "record 0: field 'port' must be an integer, got nan",
    ),
    (
        "Infinity literal",
        body_of([one(port=1)]).replace(b'"port": 1', b'"port": -Infinity'),
        "application/json",
        422,
        "record 0: field 'port' must be an integer, got -inf",
    ),
    # The JSON parser refuses integers of over 4,300 digits with a generic 400 ("number out
    # of range"); the request limits middleware names the record and field instead.
    (
        "integer of 5,000 digits",
        long_number([one(port=LONG)], b"9" * 5_000),
        "application/json",
        422,
        "record 0: field 'port' = an integer of 5000 digits is far outside {-1, 1}",
    ),
    (
        "negative integer of 4,301 digits in the second record",
        long_number([one(), one(SFH=LONG)], b"-" + b"1" * 4_301),
        "application/json",
        422,
        "record 1: field 'SFH' = an integer of 4301 digits is far outside {-1, 0, 1}",
    ),
    (
        "long integers in two records",
        long_number([one(Redirect=LONG), one(), one(port=LONG)], b"7" * 6_000),
        "application/json",
        422,
        "record 0: field 'Redirect' = an integer of 6000 digits is far outside {0, 1}; "
        "record 2: field 'port' = an integer of 6000 digits is far outside {-1, 1}",
    ),
    (
        "number with an integer part of 4,301 digits",
        long_number([one(port=LONG)], b"1" * 4_301 + b".5e-3"),
        "application/json",
        422,
        "record 0: field 'port' = a number of 4301 digits is far outside {-1, 1}",
    ),
    (
        "integer of 5,000 digits in an unknown field",
        long_number([one(colour=LONG)], b"9" * 5_000),
        "application/json",
        422,
        "record 0: unknown field 'colour' = an integer of 5000 digits is longer than the 4300",
    ),
    (
        "integer of 4,300 digits (the parser's limit)",
        long_number([one(port=LONG)], b"9" * 4_300),
        "application/json",
        422,
        "record 0: field 'port' = an integer of 14285 bits is far outside {-1, 1}",
    ),
    (
        "5,000 digits in a string",
        long_number([one(port=str(LONG))], b"9" * 5_000),
        "application/json",
        422,
        "record 0: field 'port' must be an integer, got '99999",
    ),
    (
        "integer of 5,000 digits in invalid JSON",
        long_number([one(port=LONG)], b"9" * 5_000)[:-1],
        "application/json",
        400,
        "Invalid JSON",
    ),
]

# (name, records, status, fragment)
RECORD_CASES = [
    ("records null", None, 400, "records"),
    ("records an object", one(), 400, "records"),
    ("records a number", 7, 400, "records"),
    ("records a list of lists", [[1, 2]], 400, '"loc":["records",0]'),
    ("a record null", [one(), None], 400, '"loc":["records",1]'),
    ("empty list", [], 422, "no records"),
    (
        "null field",
        [one(), one(SFH=None)],
        422,
        "record 1: field 'SFH' must be an integer, got None",
    ),
    ("extra field", [one(colour=1)], 422, "record 0: unknown field 'colour'"),
    ("missing field", [one(Iframe=...)], 422, "record 0: missing field 'Iframe'"),
    ("empty record", [{}], 422, "record 0: missing field 'having_IP_Address'"),
    (
        "label sent as a feature",
        [one(**{LABEL: 1})],
        422,
        "record 0: unknown field 'Result'",
    ),
    ("string number", [one(port="1")], 422, "record 0: field 'port' must be an integer, got '1'"),
    ("boolean", [one(port=True)], 422, "record 0: field 'port' must be an integer, got True"),
    ("float 0.5", [one(SFH=0.5)], 422, "record 0: field 'SFH' must be an integer, got 0.5"),
    ("float 1.0", [one(SFH=1.0)], 422, "record 0: field 'SFH' must be an integer, got 1.0"),
    ("list value", [one(SFH=[1])], 422, "record 0: field 'SFH' must be an integer, got [1]"),
    ("object value", [one(SFH={"v": 1})], 422, "record 0: field 'SFH' must be an integer"),
    ("2 in a ternary feature", [one(SFH=2)], 422, "record 0: field 'SFH' = 2 is not in {-1, 0, 1}"),
    ("-2", [one(SFH=-2)], 422, "record 0: field 'SFH' = -2 is not in {-1, 0, 1}"),
    ("0 in a binary feature", [one(port=0)], 422, "record 0: field 'port' = 0 is not in {-1, 1}"),
    ("-1 for Redirect", [one(Redirect=-1)], 422, "field 'Redirect' = -1 is not in {0, 1}"),
    (
        "huge integer",
        [one(), one(port=10**30)],
        422,
        f"record 1: field 'port' = {10**30} is far outside {{-1, 1}}",
    ),
    ("huge negative integer", [one(SFH=-(10**19))], 422, "record 0: field 'SFH' = -1000"),
    ("int64 edge", [one(SFH=2**63)], 422, f"record 0: field 'SFH' = {2**63} is far outside"),
    ("int64 max", [one(SFH=2**63 - 1)], 422, f"record 0: field 'SFH' = {2**63 - 1} is not in"),
    ("integer of 600 bits", [one(SFH=3**380)], 422, "field 'SFH' = an integer of 603 bits"),
    ("unicode junk key", [one(**{"\u202eLRM\u200b😀\x00": 1})], 422, "record 0: unknown field"),
    ("unicode junk value", [one(port="１")], 422, "field 'port' must be an integer, got '１'"),
    (
        "misspelled field",
        [one(popUpWidnow=..., popUpWindow=1)],
        422,
        "unknown field 'popUpWindow' (misspelled 'popUpWidnow'?)",
    ),
]


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [case[1:] for case in RAW_CASES],
    ids=[case[0] for case in RAW_CASES],
)
def test_raw_bodies(limited_client, route, body, content_type, status, fragment) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = limited_client.post(route, content=body, headers=headers)
    assert_error(response, status, fragment)


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize(
    ("batch", "status", "fragment"),
    [case[1:] for case in RECORD_CASES],
    ids=[case[0] for case in RECORD_CASES],
)
def test_bad_records(limited_client, route, batch, status, fragment) -> None:
    response = limited_client.post(route, json={"records": batch})
    assert_error(response, status, fragment)


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_records_missing(limited_client, route) -> None:
    response = limited_client.post(route, json={"rows": [one()]})
    assert response.status_code == 400
    assert '"loc":["records"]' in response.text and "Field required" in response.text


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_too_many_rows_is_413_naming_the_limit(limited_client, route) -> None:
    body = body_of(records(MAX_ROWS + 1, 61))
    assert len(body) < MAX_BODY_BYTES  # the row limit, not the body limit, answers
    response = limited_client.post(route, content=body, headers=JSON)
    assert response.status_code == 413
    assert f"{MAX_ROWS + 1} records in one request; the limit is {MAX_ROWS}" in response.text


@pytest.mark.parametrize("route", [*JSON_ROUTES, "/predict_csv", "/metadata"])
def test_body_over_the_limit_is_413_before_parsing(limited_client, route) -> None:
    body = b'{"records": [' + b"1," * MAX_BODY_BYTES + b"1]}"
    response = limited_client.post(route, content=body, headers=JSON)
    assert response.status_code == 413
    assert f"over the limit of {MAX_BODY_BYTES} bytes (PHISHGUARD_MAX_BODY_BYTES)" in response.text


def test_chunked_body_over_the_limit_is_413(limited_client) -> None:
    def chunks():
        yield b'{"records": ['
        for _ in range(MAX_BODY_BYTES // 1000 + 2):
            yield b"1," * 500
        yield b"1]}"

    response = limited_client.post("/predict", content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert "more than" in response.text and "PHISHGUARD_MAX_BODY_BYTES" in response.text


def test_chunked_body_with_a_long_integer_names_record_and_field(limited_client) -> None:
    body = long_number([one(), one(SFH=LONG)], b"8" * 5_000)
    chunks = iter([body[:3_000], body[3_000:6_000], body[6_000:]])
    response = limited_client.post("/predict", content=chunks, headers=JSON)
    assert response.status_code == 422
    assert "record 1: field 'SFH' = an integer of 5000 digits is far outside" in response.text


def test_chunked_body_under_the_limit_is_scored(limited_client) -> None:
    body = body_of(records(3, 62))
    response = limited_client.post("/predict", content=iter([body[:10], body[10:]]), headers=JSON)
    assert response.status_code == 200
    assert len(response.json()["results"]) == 3


def test_json_with_a_charset_is_accepted(limited_client) -> None:
    response = limited_client.post(
        "/predict",
        content=body_of([one()]),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


def test_explain_top_must_be_an_integer(limited_client) -> None:
    response = limited_client.post("/explain", json={"records": [one()], "top": "all"})
    assert response.status_code == 400 and '"loc":["top"]' in response.text
    extreme = limited_client.post("/explain", json={"records": [one()], "top": 10**30})
    assert extreme.status_code == 200  # clamped to the 30 features
    assert len(extreme.json()["results"][0]["reasons"]) == len(FEATURES)


def test_explain_top_too_long_to_parse_is_400_naming_it(limited_client) -> None:
    body = json.dumps({"records": [one()], "top": LONG}).encode()
    response = limited_client.post(
        "/explain", content=body.replace(str(LONG).encode(), b"9" * 5_000), headers=JSON
    )
    assert response.status_code == 400
    assert "field 'top' = an integer of 5000 digits is longer than the 4300" in response.text


def test_wrong_method_is_405(limited_client) -> None:
    assert limited_client.get("/predict").status_code == 405


def csv_file(text: bytes) -> dict:
    return {"file": ("sites.csv", text, "text/csv")}


def header(*names: str) -> bytes:
    return (",".join(names) + "\n").encode()


CSV_CASES = [
    ("empty file", b"", 400, "not a readable CSV: the upload: the file is empty"),
    (
        "broken header (unclosed quote)",
        b'having_IP_Address,"URL_Length\n1,1\n',
        400,
        "not a readable CSV",
    ),
    ("binary junk", b"\x89PNG\r\n\x1a\n\x00\xff" * 50, 400, "not a readable CSV"),
    ("UTF-16", header(*FEATURES).decode().encode("utf-16"), 400, "not a readable CSV"),
    (
        "duplicated column",
        header(*FEATURES, "SFH") + b"1," * 30 + b"1\n",
        422,
        "duplicated column(s) SFH",
    ),
    ("missing column", header(*FEATURES[1:]) + b"1," * 28 + b"1\n", 422, "having_IP_Address"),
    (
        "semicolons",
        header(*FEATURES).replace(b",", b";") + b"1;" * 29 + b"1\n",
        422,
        "the header is ';'-delimited; expected comma-separated values",
    ),
    (
        "a cell appended to every row",
        header(*FEATURES) + b"1," * 30 + b"1\n" + b"-1," * 30 + b"-1\n",
        422,
        "row 1: has 31 fields but the header has 30; row 2: has 31 fields",
    ),
    (
        "a cell missing from a row",
        header(*FEATURES) + b"1," * 29 + b"1\n" + b"1," * 28 + b"1\n" + b"1," * 29 + b"1\n",
        422,
        "row 2: has 29 fields but the header has 30",
    ),
    (
        "rows of 10,000 cells",
        header(*FEATURES) + (b"1," * 9_999 + b"1\n") * 3,
        422,
        "row 3: has 10000 fields but the header has 30",
    ),
    (
        "a cell of 1,000,000 characters",
        header(*FEATURES)
        + b"1," * 29
        + b"1\n"
        + b"1," * 10
        + b"7" * 1_000_000
        + b",1" * 19
        + b"\n",
        422,
        "row 2: field 'port' has 1000000 characters; the limit is 64",
    ),
    (
        "NUL bytes after valid rows",
        header(*FEATURES) + (b"1," * 29 + b"1\n") * 400 + b"\0" * 100_000,
        400,
        "a NUL byte on line 402",
    ),
    (
        "blank and text cells",
        header(*FEATURES) + b"," * 29 + b"\n" + b"x," * 29 + b"x\n",
        422,
        "row 1: ",
    ),
]


@pytest.mark.parametrize(
    ("text", "status", "fragment"),
    [case[1:] for case in CSV_CASES],
    ids=[case[0] for case in CSV_CASES],
)
def test_bad_csv_uploads(limited_client, text, status, fragment) -> None:
    response = limited_client.post("/predict_csv", files=csv_file(text))
    assert_error(response, status, fragment)


@pytest.mark.parametrize("route", JSON_ROUTES)
def test_a_huge_string_value_is_422_naming_record_and_field_in_a_short_answer(
    limited_client, route
) -> None:
    records_ = [one(), one(), one(SFH="=" * 900_000)]
    response = limited_client.post(route, content=body_of(records_), headers=JSON)
    assert_error(response, 422, "record 2: field 'SFH' must be an integer, got '====")
    assert "(a string of 900000 characters)" in response.text
    assert len(response.content) < 1_000


def test_csv_with_too_many_rows_is_413(limited_client) -> None:
    table = synthetic_rows(MAX_ROWS + 1, 63)
    response = limited_client.post(
        "/predict_csv", files=csv_file(table.to_csv(index=False).encode())
    )
    assert response.status_code == 413
    assert f"{MAX_ROWS + 1} rows in one upload; the limit is {MAX_ROWS}" in response.text


def test_csv_upload_without_the_file_field(limited_client) -> None:
    response = limited_client.post("/predict_csv", files={"upload": ("a.csv", b"x", "text/csv")})
    assert response.status_code == 400 and '"loc":["file"]' in response.text


@pytest.mark.parametrize(
    "text", [header(*FEATURES), header(*FEATURES, LABEL), header(*FEATURES) + b"\n\n"]
)
def test_csv_header_only_is_422_like_an_empty_list(limited_client, text) -> None:
    response = limited_client.post("/predict_csv", files=csv_file(text))
    assert response.status_code == 422
    assert "no rows: the CSV has a header but no data rows" in response.text


@pytest.mark.parametrize(
    ("content_type", "body", "fragment"),
    [
        # Found by the schemathesis run: BentoML's own parser turned this into a 500.
        (
            "multipart/form-data; boundary=0d37f771f3609e9baf6be26654101f5f",
            b"--0d37f771f3609e9baf6be26654101f5f\r\nTrue--0d37f771f3609e9baf6be26654101f5f--\r\n",
            "malformed multipart/form-data body",
        ),
        ("multipart/form-data", b"--x\r\n\r\n--x--\r\n", "the content type has no boundary"),
    ],
)
def test_malformed_multipart_is_400(limited_client, content_type, body, fragment) -> None:
    response = limited_client.post(
        "/predict_csv", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 400
    assert fragment in response.text


def test_bad_input_is_logged_as_one_line_without_a_traceback(limited_client, caplog) -> None:
    """The service's own 4xx (`http_errors.client_error`) and BentoML's 400 for input that does
    not fit the types (its `log_exception`, quietened by `http_errors`) alike."""
    loggers = (http_errors.LOG.name, http_errors.BENTOML_ERROR_LOGGER)
    with caplog.at_level(logging.INFO):
        limited_client.post("/predict", content=body_of([one(port=5)]), headers=JSON)
        limited_client.post("/predict", content=b'{"x": 1}', headers=JSON)
    records = [r for r in caplog.records if r.name in loggers]
    assert [(r.levelname, r.exc_info) for r in records] == [("WARNING", None)] * 2
    assert "HTTP 422: record 0: field 'port' = 5 is not in {-1, 1}" in records[0].getMessage()
    assert (
        "Bad input to /predict [POST]: HTTP 400: 1 validation error(s)" in records[1].getMessage()
    )
