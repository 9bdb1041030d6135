"""The phishguard BentoML service: JSON, CSV and explanation endpoints, metadata and a web page.

Start it with `make serve` (127.0.0.1, port 3000 unless PORT is set). The model is the
package stage's output, declared as BentoML documents it (`model_ref`, `phishguard:latest`
in the repo-local store; PHISHGUARD_PACKAGE_DIR names another package folder, as the tests
do), sha256-verified before any worker starts (`bentoml serve` exits on a mismatch) and loaded
once per worker. The request and response models are generated from the schema
(`phishguard.serving.http_models`, shown on /docs); records are checked by
`phishguard.contract.record_checks` and scored by `phishguard.serving.scoring`, as in the
batch CLI; bad input gets the 4xx of `phishguard.serving.http_errors`. Every scored record
gets a `prediction_id`, which `POST /feedback` takes, with an analyst's label, into the
feedback store (`phishguard.feedback`). BentoML adds /healthz, /readyz, /metrics.

Environment: PHISHGUARD_WORKERS (default 1), PHISHGUARD_MAX_ROWS (default 10,000 per request),
PHISHGUARD_MAX_EXPLAIN_ROWS (default 1,000 per /explain request), PHISHGUARD_MAX_BODY_BYTES
(default 8 MiB), PHISHGUARD_MAX_HEADER_BYTES (default 64 KiB), PHISHGUARD_FEEDBACK_DIR (the
feedback store's folder, default data/feedback; MONGODB_URI selects MongoDB instead),
PHISHGUARD_AUTH (writes|all|off, default writes), PHISHGUARD_KEYS (the key store, default
.phishguard/api_keys.json), PHISHGUARD_WRITE_RATE (default 60/minute per key) and
PHISHGUARD_WRITE_BURST: see phishguard.serving.auth; PHISHGUARD_VERDICT_RATE (default 5000/hour
per key, counted by verdict) and PHISHGUARD_VERDICT_BURST: see phishguard.serving.write_rate.
PHISHGUARD_PREDICTION_LOG and its retention settings: see phishguard.monitoring
(docs/monitoring.md).
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import math
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from http import HTTPStatus
from pathlib import Path
from typing import Literal

import bentoml
import numpy as np
import pandas as pd
from bentoml.exceptions import BentoMLException, NotFound
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

try:
    import phishguard  # noqa: F401  (installed in the dev environment)
except ImportError:  # inside a built bento the package's source is bundled beside service/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from phishguard import PhishguardError, StorageError, paths
from phishguard.contract.csv_reader import CsvHeaderError, read_upload
from phishguard.contract.record_checks import (
    RecordError,
    TooManyRecordsError,
    max_explain_rows_from_env,
    max_rows_from_env,
    records_matrix,
)
from phishguard.contract.schema import FEATURES
from phishguard.data.origin import CHAMPION_PHISHING
from phishguard.data.sources import DataSourceError
from phishguard.feedback.intake import (
    FeedbackError,
    label_of,
    reviews_from_items,
    verdicts_from_items,
)
from phishguard.feedback.store import (
    NO_SUBMITTER,
    FeedbackStore,
    open_store,
    store_settings,
)
from phishguard.modeling.bundle import verify
from phishguard.monitoring.log_files import Retention
from phishguard.monitoring.prediction_log import LOG_ENV, PredictionLog
from phishguard.provenance import git_revision
from phishguard.serving import auth, header_limits, http_errors, route_labels, server_start
from phishguard.serving.batch import score_table
from phishguard.serving.http_models import (
    ExplainedResults,
    FeedbackAnswer,
    FeedbackItems,
    Metadata,
    Records,
    Results,
    ReviewAnswer,
    ReviewItems,
)
from phishguard.serving.live_metrics import LiveMetrics
from phishguard.serving.request_limits import RequestLimits
from phishguard.serving.scoring import (
    ExplanationUnavailableError,
    Scorer,
    load_scorer,
    prediction_id,
)
from phishguard.serving.write_rate import TokenBuckets, WriteRate

PACKAGE_DIR_ENV = "PHISHGUARD_PACKAGE_DIR"
PACKAGE = bentoml.models.BentoModel(f"{paths.PACKAGE_NAME}:latest")
# /predict requests of at most this many records are scored on the event loop (see predict).
INLINE_RECORDS = 1_000
PAGE = Path(__file__).with_name("ui.html")
# The prediction log never raises: on a full disk it loses whole records, counted in
# /metrics (`log_dropped`), and the client still gets its answer. Should an observer refuse a
# record instead (a `StorageError`), the scoring routes answer 507/503 in one line, never a 500.
LOG_REFUSAL = "the prediction log"


def _page(_: Request) -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


ui = Starlette(routes=[Route("/", _page)])


def _packaged() -> bentoml.models.BentoModel:
    """PACKAGE, once the package stage has put it in the store. Else BentoML would answer
    "could not be found locally ... No cloud context": say what makes it instead."""
    try:
        bentoml.models.get(PACKAGE.tag)
    except NotFound:
        store = os.environ.get("BENTOML_HOME", "~/bentoml")
        raise BentoMLException(
            f"no packaged model {PACKAGE.tag} in {store}: run `make pipeline` first "
            "(it trains, evaluates and packages the model); if it has run, "
            "`dvc repro --force --single-item package` rebuilds the store"
        ) from None
    return PACKAGE


def _package_dir() -> Path:
    configured = os.environ.get(PACKAGE_DIR_ENV, "").strip()
    return Path(configured) if configured else Path(PACKAGE.resolve().path)


@bentoml.asgi_app(ui, path="/ui")
@bentoml.service(
    name="phishguard",
    workers=int(os.environ.get("PHISHGUARD_WORKERS", "1")),
    threads=1,
    traffic={"timeout": 30},
    logging={"access": {"enabled": False}},
    # Loopback unless a host is given (--host, BENTOML_HOST): see phishguard.serving.server_start.
    http={"host": server_start.LOOPBACK},
    # No trace exporter is configured, yet the OpenTelemetry middleware still builds span
    # attributes for every request (~7% of a worker's time): skip it on the scoring routes.
    tracing={"excluded_urls": ["/predict", "/explain"]},
)
class Phishguard:
    """Phishing-website scoring with the packaged, evaluated XGBoost model."""

    # The model as BentoML documents it: `bentoml build` bundles it and `bentoml serve` finds
    # it in the store before starting. A package folder named by PHISHGUARD_PACKAGE_DIR (the
    # tests, the benchmark) is outside the store, so the model is not declared then.
    if not os.environ.get(PACKAGE_DIR_ENV, "").strip():
        model_ref = _packaged()

    @bentoml.on_deployment
    def check_address() -> None:
        """Refuse an invalid or taken port with one line, before the model is even read;
        log the address to be bound (`server_start.check_address`)."""
        try:
            server_start.check_address()
        except PhishguardError as error:
            raise BentoMLException(f"refusing to start: {error}") from None

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

    @bentoml.on_deployment
    def verify_api_keys() -> None:
        """Check PHISHGUARD_AUTH, the write rate and the API key store once, before any worker
        starts (issue 18): a bad setting or a corrupt store stops `bentoml serve` with one line."""
        try:
            auth.check_at_start()
        except PhishguardError as error:
            raise BentoMLException(f"refusing to start: {error}") from None

    @bentoml.on_deployment
    def check_prediction_log_settings() -> None:
        """A bad retention setting stops `bentoml serve` with one line, before any worker."""
        try:
            Retention.from_env()
        except PhishguardError as error:
            raise BentoMLException(f"refusing to start: {error}") from None

    def __init__(self) -> None:
        scorer = load_scorer(_package_dir(), nthread=1)
        # The checkout serving now (the package carries no revision: see modeling.train).
        self.git_revision = git_revision()
        # Every scored record goes to the prediction log ($PHISHGUARD_PREDICTION_LOG) and the
        # live metrics of /metrics; neither can fail or hold up a request.
        self.prediction_log = PredictionLog.from_env()
        live = LiveMetrics(scorer.metadata.get("reference_shares"), self._log_dropped)
        self.prediction_log.on_drop = live.publish_dropped  # current at scrape time
        self.scorer: Scorer = replace(scorer, observers=(self.prediction_log, live))
        if not self.prediction_log.enabled:
            logging.getLogger("bentoml.phishguard").warning(
                "the prediction log is off (%s=off): scored records are not kept",
                LOG_ENV,
            )
        # Opened at the first verdict, once per worker: a feedback store that cannot be reached
        # ($MONGODB_URI) must not stop the worker from scoring.
        self._feedback_store: FeedbackStore | None = None
        self._feedback_settings = store_settings()
        self._feedback_lock = threading.Lock()
        # Verdicts per key, counted one by one (issue 27): the auth middleware counts requests.
        self.verdict_buckets = TokenBuckets(WriteRate.verdicts_from_env(), time.monotonic)
        self.max_rows = max_rows_from_env()
        self.max_explain_rows = min(max_explain_rows_from_env(), self.max_rows)
        # One thread, like BentoML's own pool: scoring stays single-threaded per worker.
        self.scoring_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
        # Everything imported so far lives as long as the worker: move it out of the garbage
        # collector's reach, or each full collection walks it (the 100–250 ms latency tail).
        gc.collect()
        gc.freeze()

    def _log_dropped(self) -> dict[str, int]:
        return self.prediction_log.dropped

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        """A graceful stop writes what the prediction log still has queued."""
        self.prediction_log.close()
        if self._feedback_store is not None:
            self._feedback_store.close()

    # Scoring must not hold the event loop for long, or health checks and other requests wait
    # behind a big batch. Handing every request to a thread costs a small one more than its own
    # work, though (single record, 600 trees, `make bench-serve`: p50 0.74 ms on the loop
    # against 1.35 ms through BentoML's thread pool). So a request of at most INLINE_RECORDS
    # records (≲ 20 ms of validation and predict) is scored on the loop, and a bigger one in
    # the worker's own scoring thread. /explain (~3 ms a record) and the CSV upload always use
    # a thread (plain functions, which BentoML runs in its one-thread pool, `threads=1`).
    #
    # /predict answers with the JSON of `Results`, written by `Scorer.results_json` (a test
    # checks it against the model): building and dumping the pydantic objects cost ~4 ms more
    # per 1,000 rows (7.8 → 11.9 ms on top of predict, 600 trees), a third of the request.
    @bentoml.api(route="/predict")
    async def predict(self, records: Records, ctx: bentoml.Context) -> Results:
        """Score records of the 30 features: probability, decision at the threshold, label,
        and a `prediction_id` to send a verdict on the record with (`POST /feedback`)."""
        caller = _caller(ctx)
        if len(records) <= INLINE_RECORDS:
            response = self._predict(records, caller)
        else:
            loop = asyncio.get_running_loop()
            response = await loop.run_in_executor(
                self.scoring_thread, self._predict, records, caller
            )
        ctx.response.status_code = response.status_code  # see _refused
        return response

    def _predict(self, records: Records, caller: str | None) -> Response:
        try:
            matrix = records_matrix(records, self.max_rows)
        except (RecordError, TooManyRecordsError) as error:
            return http_errors.client_error("/predict", error)
        try:
            text = self.scorer.results_json(matrix, "api", uuid.uuid4().hex, caller=caller)
        except StorageError as error:  # see LOG_REFUSAL
            return http_errors.unavailable("/predict", error, LOG_REFUSAL)
        return Response(text, media_type="application/json")

    @bentoml.api(route="/explain")
    def explain(self, records: Records, ctx: bentoml.Context, top: int = 5) -> ExplainedResults:
        """Scores plus the `top` features that moved each score most (XGBoost contributions).

        At most `PHISHGUARD_MAX_EXPLAIN_ROWS` records (default 1,000): contributions cost about
        3 ms a record with 600 trees, so a full request stays well inside the 30 s timeout.
        """
        try:
            matrix = records_matrix(records, self.max_explain_rows)
            reasons = self.scorer.explain(matrix, top=max(1, min(top, 32)))
        except (RecordError, TooManyRecordsError, ExplanationUnavailableError) as error:
            return _refused(ctx, "/explain", error)
        try:
            results = self.scorer.results(matrix, "api", uuid.uuid4().hex, caller=_caller(ctx))
        except StorageError as error:  # see LOG_REFUSAL
            return _answered(ctx, http_errors.unavailable("/explain", error, LOG_REFUSAL))
        for result, why in zip(results, reasons, strict=True):
            result["reasons"] = why
        return ExplainedResults(results=results)

    @bentoml.api(route="/predict_csv")
    def predict_csv(
        self, file: Path, ctx: bentoml.Context, output: Literal["json", "csv"] = "json"
    ) -> Results:
        """Score an uploaded CSV (header = the 30 features; a `Result` column is ignored)."""
        try:
            table = self._read_upload(file)
            scores = score_table(self.scorer, table)
        except DataSourceError as error:
            unreadable = PhishguardError(f"not a readable CSV: {error}")
            return _refused(ctx, "/predict_csv", unreadable, HTTPStatus.BAD_REQUEST)
        except PhishguardError as error:
            return _refused(ctx, "/predict_csv", error)
        if table.empty:  # as an empty list of records (the columns are checked first)
            empty = RecordError(
                ["no rows: the CSV has a header but no data rows; send at least one"]
            )
            return _refused(ctx, "/predict_csv", empty)
        if rejected := scores.rejects_error():
            return _refused(ctx, "/predict_csv", rejected)
        # Answered in full: every row was scored, so the upload goes to the observers now.
        proba = scores.scored["phishing_probability"].to_numpy()
        request_id = uuid.uuid4().hex
        try:
            self.scorer.observe(scores.matrix, proba, "csv", request_id, caller=_caller(ctx))
        except StorageError as error:  # see LOG_REFUSAL
            return _answered(ctx, http_errors.unavailable("/predict_csv", error, LOG_REFUSAL))
        if output == "csv":
            buffer = io.StringIO()
            scores.scored.to_csv(buffer, index=False)
            return Response(buffer.getvalue(), media_type="text/csv")
        results = scores.scored.drop(columns="row").to_dict(orient="records")
        for index, result in enumerate(results):
            result["prediction_id"] = prediction_id(request_id, index)
        return Results(results=results)

    def _read_upload(self, file: Path) -> pd.DataFrame:
        """The upload's rows (at most one over the limit: enough to refuse it)."""
        try:
            return read_upload(Path(file), self.max_rows)
        except CsvHeaderError as error:
            raise RecordError([str(error)]) from None

    @bentoml.api(route="/feedback")
    def feedback(self, feedback: FeedbackItems, ctx: bentoml.Context) -> FeedbackAnswer:
        """Store analysts' verdicts: each item a `record` of the 30 features (or the
        `prediction_id` /predict gave it) and its `label`, phishing or legitimate.

        The same verdict sent again is not stored twice (`already_present`). All or nothing:
        one bad item refuses the request (422 naming each `feedback[i].field`), nothing stored.
        The caller's API key name, when the service knows it, is recorded as the submitter.
        """
        try:
            # No waiting for log writers: every worker writes a prediction's record before it
            # answers it, so an id a client holds is in the log already.
            verdicts = verdicts_from_items(feedback, self.max_rows, self.prediction_log.directory)
        except (FeedbackError, TooManyRecordsError) as error:
            return _refused(ctx, "/feedback", error)
        submitter = _caller(ctx)
        if wait := self.verdict_buckets.take(submitter or NO_SUBMITTER, len(verdicts)):
            return self._too_many_verdicts(ctx, submitter, len(verdicts), wait)
        # The served model's view of each record, kept with the verdict: one key's label
        # against a confident champion is held as disputed (phishguard.feedback.trust).
        matrix = verdicts.loc[:, list(FEATURES)].to_numpy(dtype=np.float32)
        verdicts[CHAMPION_PHISHING] = self.scorer.probability(matrix)
        try:
            added = self._feedback().add(verdicts, source="api", submitter=submitter)
        except PhishguardError as error:  # the store's disk is full or failing, or no MongoDB
            return _answered(ctx, http_errors.unavailable("/feedback", error, "the feedback store"))
        labels = verdicts["Result"].tolist()
        return FeedbackAnswer(
            accepted=added.accepted,
            already_present=added.already_present,
            verdicts=[
                {
                    "verdict_id": verdict_id,
                    "label": label_of(result),
                    "status": "accepted" if new else "already_present",
                }
                for verdict_id, result, new in zip(added.ids, labels, added.new, strict=True)
            ],
        )

    def _too_many_verdicts(
        self, ctx: bentoml.Context, submitter: str | None, count: int, wait: float
    ) -> Response:
        rate = self.verdict_buckets.rate
        who = f"the API key {submitter!r}" if submitter else "this service (no API keys)"
        if math.isinf(wait):
            why = f"{count} verdicts in one request are more than {who} may send at once"
        else:
            why = f"too many verdicts from {who}: {count} more would pass the limit"
        error = PhishguardError(f"{why}: {rate.limits}; nothing was stored; retry later")
        response = _refused(ctx, "/feedback", error, HTTPStatus.TOO_MANY_REQUESTS)
        if not math.isinf(wait):
            response.headers["retry-after"] = str(max(1, math.ceil(round(wait, 6))))
        return response

    @bentoml.api(route="/feedback/review")
    def review(self, reviews: ReviewItems, ctx: bentoml.Context) -> ReviewAnswer:
        """A reviewer's decisions on stored verdicts (a `reviewer` key): `approve` lets a
        disputed verdict train the model, `reject` keeps it out; the latest decision stands.
        All or nothing: an unknown verdict id refuses the request (422), nothing recorded."""
        try:
            decided = reviews_from_items(reviews, self.max_rows)
        except (FeedbackError, TooManyRecordsError) as error:
            return _refused(ctx, "/feedback/review", error)
        try:
            unknown = self._feedback().review(decided, _caller(ctx) or NO_SUBMITTER)
        except PhishguardError as error:  # the store's disk is full or failing, or no MongoDB
            unavailable = http_errors.unavailable("/feedback/review", error, "the feedback store")
            return _answered(ctx, unavailable)
        if unknown:
            named = ", ".join(repr(i) for i in unknown[:10])
            missing = PhishguardError(
                f"unknown verdict ids (not in the feedback store): {named}; nothing was recorded"
            )
            return _refused(ctx, "/feedback/review", missing)
        approved = sum(decision == "approve" for decision in decided.values())
        return ReviewAnswer(approved=approved, rejected=len(decided) - approved)

    def _feedback(self) -> FeedbackStore:
        with self._feedback_lock:
            if self._feedback_store is None:
                self._feedback_store = open_store(self._feedback_settings)
            return self._feedback_store

    @bentoml.api(route="/metadata")
    def metadata(self) -> Metadata:
        """Model version, threshold, metrics, data hash, git revision, limits."""
        limits = {
            "max_rows_per_request": self.max_rows,
            "max_explain_rows_per_request": self.max_explain_rows,
        }
        model = {key: self.scorer.metadata.get(key) for key in Metadata.model_fields}
        return Metadata(**{**model, "git_revision": self.git_revision, **limits})


def _refused(
    ctx: bentoml.Context, route: str, error: PhishguardError, status: HTTPStatus | None = None
) -> Response:
    """`http_errors.client_error`, its status also set on `ctx` (`_answered`)."""
    return _answered(ctx, http_errors.client_error(route, error, status))


def _answered(ctx: bentoml.Context, response: Response) -> Response:
    """`response` with its status also set on `ctx`: BentoML gives the answer of a method
    that takes a context the context's status (200 unless set)."""
    ctx.response.status_code = response.status_code
    return response


def _caller(ctx: bentoml.Context) -> str | None:
    """The API key name the auth middleware put on the request (None: no key, or no auth)."""
    return getattr(ctx.request.state, "api_key_name", None)


# This `bentoml serve`'s own /metrics directory, before BentoML empties the shared one.
server_start.own_metrics_directory()
# The real request path, back in place of the route template BentoML's request metrics are
# labelled with (issue 27): first, so that every layer below sees what the client sent.
Phishguard.add_asgi_middleware(route_labels.RealPath)
# API keys (issue 18), first so a request without a valid key is refused before anything
# else reads it; see phishguard.serving.auth.
Phishguard.add_asgi_middleware(auth.ApiKeyAuth)
# Body size and content type (issue 6) and numbers too long to parse, refused before BentoML
# reads or parses the body; see phishguard.serving.request_limits.
Phishguard.add_asgi_middleware(RequestLimits)
# Request line + headers over PHISHGUARD_MAX_HEADER_BYTES → 431, counted by the HTTP server's
# protocol as the bytes arrive (issue 15; a middleware would see them only parsed).
header_limits.install()
# BentoML's own 400s for input that does not fit the types: one log line, no traceback.
http_errors.quiet_validation_errors()
