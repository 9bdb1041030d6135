"""The service's answer to bad input: a 4xx whose body is one JSON object `{"error": "..."}`,
logged as one warning line. The one place that knows how BentoML shapes errors.

What BentoML 1.4 does (pinned by tests/serving/test_service_contract.py, which fails on
another minor version or shape):
- input that does not fit an endpoint's types (pydantic's `ValidationError`, including JSON
  that does not parse) → 400 `{"error": "N validation error for …", "detail": [{"loc": …,
  "msg": …, "type": …}]}`. Kept as BentoML writes it;
- a `BentoMLException` raised with a 4xx `error_code` → a one-element *list* `[{"error": …}]`;
- both logged by `log_exception` at ERROR with the traceback.

So an endpoint *returns* `client_error(...)` for bad input instead of raising: the body is the
object clients rely on, and the log gets one line. For BentoML's own `ValidationError`s there is
no public hook (`log_exception` is called unconditionally, no exception handler can be
registered), so `quiet_validation_errors()` is the one shim: a filter on the private logger
`log_exception` writes to, which turns that record into one warning line.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from pydantic import ValidationError
from starlette.responses import JSONResponse

from phishguard import PhishguardError, StorageError
from phishguard.contract.record_checks import TooManyRecordsError

LOG = logging.getLogger("bentoml.phishguard")
BENTOML_ERROR_LOGGER = "bentoml._internal.server.http_app"  # private: see quiet_validation_errors


def error_body(message: str) -> bytes:
    """`{"error": message}` as every refusal's body, whichever layer writes it (an endpoint,
    the ASGI middleware, the HTTP protocol): starlette's JSON, as `client_error` answers."""
    return JSONResponse({"error": message}).body


def client_error(
    route: str, error: PhishguardError, status: HTTPStatus | None = None
) -> JSONResponse:
    """The 4xx answer to `error` on `route`: 413 over a row limit, else `status` (default 422).
    Also the deliberate 5xx of `unavailable`, in the same one-object body."""
    if status is None:
        too_many = isinstance(error, TooManyRecordsError)
        status = (
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE if too_many else HTTPStatus.UNPROCESSABLE_ENTITY
        )
    text = str(error)
    what = "Bad input to" if status < 500 else "Unavailable:"
    LOG.warning("%s %s: HTTP %d: %s", what, route, status, text[:300])
    return JSONResponse({"error": text}, status_code=status)


def unavailable(route: str, error: PhishguardError, store: str) -> JSONResponse:
    """The answer when `store` (what `route` writes to) fails: 507 Insufficient Storage for a
    full disk (`StorageError.full`), else 503 (a read-only or failing disk, an unreachable
    MongoDB); never a 500. A disk's error is logged in full (its path is for the operator)
    and answered without the path; nothing was stored, and the client may retry later."""
    if not isinstance(error, StorageError):
        return client_error(route, error, HTTPStatus.SERVICE_UNAVAILABLE)
    status = HTTPStatus.INSUFFICIENT_STORAGE if error.full else HTTPStatus.SERVICE_UNAVAILABLE
    LOG.error("Unavailable: %s: HTTP %d: %s", route, status, error)
    cause = "its disk is full" if error.full else "its disk cannot be written"
    message = f"{store} cannot store anything now ({cause}): nothing was stored; retry later"
    return JSONResponse({"error": message}, status_code=status)


class _ValidationErrorInOneLine(logging.Filter):
    """A `ValidationError` logged by BentoML becomes one warning line without the traceback,
    so a flood of bad requests cannot flood the log; every other record passes unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):
            where = record.getMessage().replace("Exception on", "Bad input to", 1)
            record.msg = "%s: HTTP 400: %d validation error(s)"
            record.args = (where, error.error_count())
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_validation_errors() -> None:
    """Install the filter (once) on the logger of BentoML's `log_exception`."""
    logger = logging.getLogger(BENTOML_ERROR_LOGGER)
    if not any(isinstance(f, _ValidationErrorInOneLine) for f in logger.filters):
        logger.addFilter(_ValidationErrorInOneLine())
