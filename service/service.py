"""The phishguard BentoML service: JSON, CSV and explanation endpoints, metadata and a web page.

Start it with `make serve` (127.0.0.1, port 3000 unless PORT is set). The model is the
package stage's output (`phishguard:latest` in the repo-local store, or the folder named by
PHISHGUARD_PACKAGE_DIR), sha256-verified before any worker starts (`bentoml serve` exits on a
mismatch) and loaded once per worker. Validation and scoring are `phishguard.contract.record_checks` and `phishguard.serving.scoring`, shared
with the batch CLI. BentoML adds /healthz, /readyz, /metrics.

Environment: PHISHGUARD_WORKERS (default 1), PHISHGUARD_MAX_ROWS (default 10,000 per request),
PHISHGUARD_MAX_EXPLAIN_ROWS (default 1,000 per /explain request).
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal

import bentoml
from bentoml.exceptions import BentoMLException
from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

try:
    import phishguard  # noqa: F401  (installed in the dev environment)
except ImportError:  # inside a built bento the package's source is bundled beside service/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from phishguard import PhishguardError
from phishguard.contract.record_checks import (
    RecordError,
    TooManyRecordsError,
    max_explain_rows_from_env,
    max_rows_from_env,
    records_matrix,
)
from phishguard.modeling.bundle import verify
from phishguard.serving.scoring import ExplanationUnavailableError, Scorer, load_scorer

PACKAGE_DIR_ENV = "PHISHGUARD_PACKAGE_DIR"
# /predict requests of at most this many records are scored on the event loop (see predict).
INLINE_RECORDS = 1_000
PAGE = Path(__file__).with_name("ui.html")
METADATA_KEYS = (
    "model_name",
    "model_sha256",
    "threshold",
    "features",
    "label_mapping",
    "train_data_sha256",
    "git_revision",
    "metrics",
    "operating_point",
    "schema_version",
)


class Result(BaseModel):
    """One scored record (documents the response; the JSON is written by `_json`)."""

    phishing_probability: float
    is_phishing: bool
    label: Literal["phishing", "legitimate"]


class Reason(BaseModel):
    feature: str
    value: int
    contribution: float


class ExplainedResult(Result):
    reasons: list[Reason]


class Results(BaseModel):
    results: list[Result]


class ExplainedResults(BaseModel):
    results: list[ExplainedResult]


def _page(_: Request) -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


ui = Starlette(routes=[Route("/", _page)])


def _package_dir() -> Path:
    configured = os.environ.get(PACKAGE_DIR_ENV, "").strip()
    if configured:
        return Path(configured)
    return Path(bentoml.models.get("phishguard:latest").path)


def _client_error(error: PhishguardError) -> BentoMLException:
    """A 4xx BentoML error whose JSON body carries the message (record index and field)."""
    status = (
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE
        if isinstance(error, TooManyRecordsError)
        else HTTPStatus.UNPROCESSABLE_ENTITY
    )
    return BentoMLException(str(error), error_code=status)


class _ClientErrorsInOneLine(logging.Filter):
    """BentoML logs every failed request with its traceback. For bad input (a 4xx, which the
    answer already explains) one warning line is enough: no stack, so a flood of bad requests
    cannot flood the log, and a real 5xx keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):
            status, text = HTTPStatus.BAD_REQUEST, f"{error.error_count()} validation error(s)"
        elif isinstance(error, BentoMLException) and error.error_code < 500:
            status, text = error.error_code, str(error)
        else:
            return True
        shown = text.splitlines()[0] if text else type(error).__name__
        where = record.getMessage().replace("Exception on", "Bad input to", 1)
        record.msg, record.args = "%s: HTTP %d: %s", (where, status, shown[:300])
        record.exc_info = record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


# The logger of BentoML's `log_exception`, which every endpoint error goes through.
logging.getLogger("bentoml._internal.server.http_app").addFilter(_ClientErrorsInOneLine())


def _json(document: Any) -> Response:
    # Serialised here rather than by BentoML's output model: for 1,000-row responses the
    # generic path cost more than the prediction.
    return Response(json.dumps(document, separators=(",", ":")), media_type="application/json")


@bentoml.asgi_app(ui, path="/ui")
@bentoml.service(
    name="phishguard",
    workers=int(os.environ.get("PHISHGUARD_WORKERS", "1")),
    threads=1,
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
    # No trace exporter is configured, yet the OpenTelemetry middleware still builds span
    # attributes for every request (~7% of a worker's time): skip it on the scoring routes.
    tracing={"excluded_urls": ["/predict", "/explain"]},
)
class Phishguard:
    """Phishing-website scoring with the packaged, evaluated XGBoost model."""

    @bentoml.on_deployment
    def verify_packaged_model() -> None:
        """Verify the package once, before `bentoml serve` starts any worker: the sha256 of
        every file it trusts (model and manifest) and the range of every trusted value.

        A worker whose start-up fails is restarted forever, so a server with an altered model
        would never become ready yet never exit. Failing here stops `bentoml serve` with exit
        status 1 and one line naming the file and the problem. Each worker checks again as it
        loads the model.
        """
        try:
            verify(_package_dir())
        except PhishguardError as error:
            raise BentoMLException(f"refusing to start: {error}") from None

    def __init__(self) -> None:
        self.scorer: Scorer = load_scorer(_package_dir(), nthread=1)
        self.max_rows = max_rows_from_env()
        self.max_explain_rows = min(max_explain_rows_from_env(), self.max_rows)
        # One thread, like BentoML's own pool: scoring stays single-threaded per worker.
        self.scoring_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
        # Everything imported so far lives as long as the worker: move it out of the garbage
        # collector's reach, or each full collection walks it (the 100–250 ms latency tail).
        gc.collect()
        gc.freeze()

    def _matrix(self, records: list[dict[str, Any]], max_rows: int) -> Any:
        try:
            return records_matrix(records, max_rows)
        except (RecordError, TooManyRecordsError) as error:
            raise _client_error(error) from None

    # Scoring must not hold the event loop for long, or health checks and other requests wait
    # behind a big batch. Handing every request to a thread costs a small one more than its own
    # work, though (single record, 600 trees, `make bench-serve`: p50 0.74 ms on the loop
    # against 1.35 ms through BentoML's thread pool). So a request of at most INLINE_RECORDS
    # records (≲ 20 ms of validation and predict) is scored on the loop, and a bigger one in
    # the worker's own scoring thread. /explain (~3 ms a record) and the CSV upload always use
    # a thread (plain functions, which BentoML runs in its one-thread pool, `threads=1`).
    @bentoml.api(route="/predict")
    async def predict(self, records: list[dict[str, Any]]) -> Results:
        """Score records of the 30 features: probability, decision at the threshold, label."""
        if len(records) <= INLINE_RECORDS:
            text = self._predict_json(records)
        else:
            loop = asyncio.get_running_loop()
            text = await loop.run_in_executor(self.scoring_thread, self._predict_json, records)
        return Response(text, media_type="application/json")

    def _predict_json(self, records: list[dict[str, Any]]) -> str:
        return self.scorer.results_json(self._matrix(records, self.max_rows))

    @bentoml.api(route="/explain")
    def explain(self, records: list[dict[str, Any]], top: int = 5) -> ExplainedResults:
        """Scores plus the `top` features that moved each score most (XGBoost contributions).

        At most `PHISHGUARD_MAX_EXPLAIN_ROWS` records (default 1,000): contributions cost about
        3 ms a record with 600 trees, so a full request stays well inside the 30 s timeout.
        """
        matrix = self._matrix(records, self.max_explain_rows)
        try:
            reasons = self.scorer.explain(matrix, top=max(1, min(top, 32)))
        except ExplanationUnavailableError as error:
            raise _client_error(error) from None
        results = self.scorer.results(matrix)
        for result, why in zip(results, reasons, strict=True):
            result["reasons"] = why
        return _json({"results": results})

    @bentoml.api(route="/predict_csv")
    def predict_csv(
        self,
        file: Path,
        output: Literal["json", "csv"] = "json",
    ) -> Results:
        """Score an uploaded CSV (header = the 30 features; a `Result` column is ignored)."""
        from phishguard.contract.csv_reader import CsvHeaderError, read_csv_chunks
        from phishguard.data.sources import DataSourceError
        from phishguard.serving.batch import score_table

        try:  # at most one row over the limit is read: enough to refuse the upload
            with Path(file).open("rb") as handle:
                table = next(read_csv_chunks(handle, "the upload", self.max_rows + 1))
        except CsvHeaderError as error:
            raise _client_error(RecordError([str(error)])) from None
        except DataSourceError as error:
            raise BentoMLException(
                f"not a readable CSV: {error}", error_code=HTTPStatus.BAD_REQUEST
            ) from None
        if len(table) > self.max_rows:
            raise _client_error(
                TooManyRecordsError(
                    f"{len(table)} rows in one upload; the limit is {self.max_rows}"
                )
            )
        try:
            scores = score_table(self.scorer, table)
        except PhishguardError as error:
            raise _client_error(error) from None
        if table.empty:  # as an empty list of records (the columns are checked first)
            raise _client_error(
                RecordError(["no rows: the CSV has a header but no data rows; send at least one"])
            )
        if rejected := scores.rejects_error():
            raise _client_error(rejected)
        if output == "csv":
            buffer = io.StringIO()
            scores.scored.to_csv(buffer, index=False)
            return Response(buffer.getvalue(), media_type="text/csv")
        return _json({"results": scores.scored.drop(columns="row").to_dict(orient="records")})

    @bentoml.api(route="/metadata")
    def metadata(self) -> dict[str, Any]:
        """Model version, threshold, metrics, data hash, git revision, limits."""
        info = {key: self.scorer.metadata.get(key) for key in METADATA_KEYS}
        info["max_rows_per_request"] = self.max_rows
        info["max_explain_rows_per_request"] = self.max_explain_rows
        return info


# --- request limits (issue 6) ---
# Body size (PHISHGUARD_MAX_BODY_BYTES, default 8 MiB → 413) and content type (JSON or a
# multipart CSV upload, else 415), refused before BentoML reads or parses the body.
from phishguard.serving.request_limits import RequestLimits  # noqa: E402

Phishguard.add_asgi_middleware(RequestLimits)

# --- header limits (issue 15) ---
# Request line + headers over PHISHGUARD_MAX_HEADER_BYTES (default 64 KiB) → 431, counted by
# the HTTP server's protocol as the bytes arrive (a middleware would see them only parsed).
from phishguard.serving import header_limits  # noqa: E402

header_limits.install()
