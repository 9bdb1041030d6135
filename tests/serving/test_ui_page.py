"""The analyst's /ui page in headless Chromium, against a real `bentoml serve` of the small
package: the example, scoring, the results table, verdicts with the API key, and errors.

/feedback is answered by playwright (`page.route`), so these tests pin what the page sends and
how it shows each answer of the HTTP contract, whatever the store behind the route does.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from phishguard.contract.schema import DOMAINS, FEATURES
from tests.support import free_port
from tests.support.browser import chromium
from tests.support.service import records, serve_package, stop

KEY = "pg-test-key-0123456789abcdef"
KEY_STORAGE = "phishguard.apiKey"
VERDICT_ID = "ab12cd34ef56" + "0" * 52


@pytest.fixture(scope="module")
def base_url(package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    server = serve_package(package_dir, tmp_path_factory.mktemp("ui_service"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser, base_url: str) -> Iterator[object]:
    """A fresh tab (its own session storage) on /ui, the model metadata loaded."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base_url}/ui/")
    page.wait_for_function("document.querySelector('#meta').textContent.includes('threshold')")
    try:
        yield page
    finally:
        context.close()


def post(url: str, body: object) -> dict:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def score(page, text: str) -> list[dict]:
    """Paste `text`, score it, and return what the table shows, one dict per row."""
    page.fill("#records", text)
    page.click("#score")
    page.wait_for_selector("#results tbody tr")
    return page.eval_on_selector_all(
        "#results tbody tr",
        """rows => rows.map(tr => {
            const td = tr.querySelectorAll('td');
            return {row: td[0].textContent, probability: td[1].textContent,
                    label: td[2].textContent, reasons: td[3].textContent};
        })""",
    )


def explain_answers(prediction_ids: bool):
    """A route handler passing /explain to the server and giving each result a prediction id,
    or taking it away (the id is another branch's; both cases are the page's to handle)."""

    def handle(route) -> None:
        response = route.fetch()
        body = response.json()
        for i, result in enumerate(body["results"]):
            result.pop("prediction_id", None)
            if prediction_ids:
                result["prediction_id"] = f"req42-{i}"
        route.fulfill(response=response, json=body)

    return handle


class Feedback:
    """Answers /feedback as the contract says, recording each request it gets."""

    def __init__(self, status: int = 200, body: object = None, headers: dict | None = None):
        self.status, self.body, self.headers = status, body, headers or {}
        self.requests: list[tuple[dict, dict]] = []

    def __call__(self, route) -> None:
        request = route.request
        self.requests.append((request.post_data_json, request.headers))
        body = self.body
        if body is None:
            items = request.post_data_json["feedback"]
            verdicts = [
                {"verdict_id": VERDICT_ID, "label": item["label"], "status": "accepted"}
                for item in items
            ]
            body = {"accepted": len(items), "already_present": 0, "verdicts": verdicts}
        route.fulfill(status=self.status, json=body, headers=self.headers)


def example_records(page) -> list[dict]:
    page.fill("#records", "")
    page.click("#example")
    page.wait_for_function("document.querySelector('#records').value.length > 0")
    return json.loads(page.input_value("#records"))


def verdict(page, row: int, label: str) -> None:
    page.click(f"#results tbody tr:nth-child({row + 1}) button.verdict-{label}")


def stored_cell(page, row: int):
    return page.locator(f"#results tbody tr:nth-child({row + 1}) td.stored")


def enter_key(page, key: str = KEY) -> None:
    page.wait_for_selector("#key-form", state="visible")
    assert page.evaluate("document.activeElement.id") == "key-input"  # keyboard goes there
    page.fill("#key-input", key)
    page.press("#key-input", "Enter")


def test_the_example_is_valid_and_scores_as_predict(page, base_url: str) -> None:
    example = example_records(page)
    assert len(example) == 2
    for record in example:
        assert list(record) == list(FEATURES)
        assert all(record[name] in DOMAINS[name] for name in FEATURES)
    assert example[0] != example[1]

    shown = score(page, json.dumps(example))
    expected = post(f"{base_url}/predict", {"records": example})["results"]
    assert [r["probability"] for r in shown] == [
        f"{r['phishing_probability']:.4f}" for r in expected
    ]
    assert [r["label"] for r in shown] == [r["label"] for r in expected]
    assert [r["row"] for r in shown] == ["0", "1"]
    for row in shown:  # top=3: three reasons, each `feature=value (±contribution)`
        reasons = row["reasons"].split("; ")
        assert len(reasons) == 3
        assert all(reason.split("=")[0] in FEATURES for reason in reasons)


def test_csv_upload_scores_every_row(page, base_url: str, tmp_path: Path) -> None:
    sent = records(4, seed=11)
    upload = tmp_path / "rows.csv"
    header = [*FEATURES, "Result"]
    lines = [",".join(header)] + [",".join(str(r[f]) for f in FEATURES) + ",1" for r in sent]
    upload.write_text("\n".join(lines) + "\n")
    page.set_input_files("#file", str(upload))
    page.click("#score")
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length === 4")
    expected = post(f"{base_url}/predict", {"records": sent})["results"]
    shown = page.locator("#results tbody tr td:nth-child(2)").all_inner_texts()
    assert shown == [f"{r['phishing_probability']:.4f}" for r in expected]


def test_a_verdict_asks_for_the_key_once_and_sends_the_prediction_id(page) -> None:
    page.route("**/explain", explain_answers(prediction_ids=True))
    feedback = Feedback()
    page.route("**/feedback", feedback)
    score(page, json.dumps(example_records(page)))

    page.focus("#results tbody tr:nth-child(1) button.verdict-phishing")  # by keyboard only
    page.keyboard.press("Enter")
    assert page.is_visible("#key-form") and feedback.requests == []  # no key, nothing sent
    enter_key(page)
    stored_cell(page, 0).filter(has_text="accepted").wait_for()
    focused = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == "mark row 0 as phishing"  # the keyboard is back where it was
    assert stored_cell(page, 0).inner_text() == "phishing: accepted · verdict ab12cd34ef56"
    body, headers = feedback.requests[0]
    assert body == {"feedback": [{"prediction_id": "req42-0", "label": "phishing", "source": "ui"}]}
    assert headers["authorization"] == f"Bearer {KEY}"
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") == KEY
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    assert (
        page.get_attribute("#results tbody tr:nth-child(1) button.verdict-phishing", "aria-pressed")
        == "true"
    )

    verdict(page, 1, "legitimate")  # the key is kept for the tab: no second question
    stored_cell(page, 1).filter(has_text="accepted").wait_for()
    assert page.is_hidden("#key-form")
    body, headers = feedback.requests[1]
    assert body["feedback"][0]["prediction_id"] == "req42-1"
    assert headers["authorization"] == f"Bearer {KEY}"

    page.click("#forget-key")
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") is None
    verdict(page, 1, "phishing")
    page.wait_for_selector("#key-form", state="visible")
    assert len(feedback.requests) == 2


def test_without_a_prediction_id_the_verdict_carries_the_record(page) -> None:
    page.route("**/explain", explain_answers(prediction_ids=False))
    feedback = Feedback(
        body={
            "accepted": 0,
            "already_present": 1,
            "verdicts": [
                {"verdict_id": VERDICT_ID, "label": "legitimate", "status": "already_present"}
            ],
        }
    )
    page.route("**/feedback", feedback)
    example = example_records(page)
    score(page, json.dumps(example))
    verdict(page, 1, "legitimate")
    enter_key(page)
    stored_cell(page, 1).filter(has_text="already present").wait_for()
    body, _ = feedback.requests[0]
    assert body == {"feedback": [{"record": example[1], "label": "legitimate", "source": "ui"}]}


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_brings_the_key_form_back(page, status: int) -> None:
    refused = Feedback(status=status, body={"error": f"refused with {status}"})
    page.route("**/feedback", refused)
    score(page, json.dumps(example_records(page)))
    verdict(page, 0, "phishing")
    enter_key(page, "a-wrong-key")
    page.wait_for_selector("#key-form", state="visible")
    reason = page.inner_text("#key-reason")
    assert f"HTTP {status}" in reason and f"refused with {status}" in reason
    stored = page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')")
    assert stored == (None if status == 401 else "a-wrong-key")

    page.unroute("**/feedback")
    accepted = Feedback()
    page.route("**/feedback", accepted)
    enter_key(page)  # the verdict waiting for a key is sent again with the new one
    stored_cell(page, 0).filter(has_text="accepted").wait_for()
    assert accepted.requests[0][1]["authorization"] == f"Bearer {KEY}"


def test_422_and_429_answers_are_shown(page) -> None:
    message = "feedback[0].label: 'maybe' is not one of 'phishing', 'legitimate'"
    page.route("**/feedback", Feedback(status=422, body={"error": message}))
    score(page, json.dumps(example_records(page)))
    verdict(page, 0, "phishing")
    enter_key(page)
    page.wait_for_function("document.querySelector('#error').textContent.length > 0")
    assert page.inner_text("#error") == f"row 0: HTTP 422: {message}"
    assert f"HTTP 422: {message}" in stored_cell(page, 0).inner_text()
    assert page.is_hidden("#key-form")

    page.unroute("**/feedback")
    page.route(
        "**/feedback",
        Feedback(status=429, body={"error": "rate limit"}, headers={"Retry-After": "17"}),
    )
    verdict(page, 1, "legitimate")
    stored_cell(page, 1).filter(has_text="429").wait_for()
    assert "too many requests, retry in 17 s" in stored_cell(page, 1).inner_text()


def test_a_bad_record_gets_the_servers_422(page) -> None:
    bad = {**records(1, seed=3)[0], "SFH": 7}
    page.fill("#records", json.dumps([bad]))
    page.click("#score")
    page.wait_for_function("document.querySelector('#error').textContent.length > 0")
    error = page.inner_text("#error")
    assert error.startswith("HTTP 422: ") and "SFH" in error
    assert page.is_hidden("#results")


def test_server_strings_are_shown_as_text(page) -> None:
    hostile = "<script>window.pwned = 1</script><img src=x onerror='window.pwned = 2'>"
    record = {**records(1, seed=4)[0], hostile: 1}
    page.fill("#records", json.dumps([record]))
    page.click("#score")
    page.wait_for_function("document.querySelector('#error').textContent.length > 0")
    assert "<script>window.pwned = 1</script>" in page.inner_text("#error")
    assert page.eval_on_selector("#error", "e => e.children.length") == 0

    page.route(
        "**/feedback",
        Feedback(body={"verdicts": [{"verdict_id": "<b>x</b>", "status": hostile}]}),
    )
    score(page, json.dumps(example_records(page)))
    verdict(page, 0, "phishing")
    enter_key(page)
    stored_cell(page, 0).filter(has_text="<script>").wait_for()
    assert stored_cell(page, 0).evaluate("td => td.children.length") == 0
    assert page.evaluate("window.pwned") is None
