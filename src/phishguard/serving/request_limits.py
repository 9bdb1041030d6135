"""Request limits in front of the service: body size and content type, checked before parsing.

An ASGI middleware, so an oversized or wrongly typed body is refused before BentoML reads and
parses it (pydantic would otherwise hold the whole body, and every record object, in memory):

- a body over `PHISHGUARD_MAX_BODY_BYTES` (default 8 MiB: the default 10,000-row limit as
  `json.dumps` writes it is ~6.2 MB) → 413, from the Content-Length header or, for a chunked
  upload, as soon as what has arrived passes the limit. BentoML parses the JSON on the event
  loop, so this limit also bounds how long health checks can wait: the worst 8 MiB body
  (distinct keys, which the parser cannot cache) took ~0.4 s to parse, 16 MiB ~0.8 s;
- a POST whose content type is neither `application/json` nor `multipart/form-data` → 415.
  Browsers send `text/plain` and form-encoded bodies cross-site without a CORS pre-flight; a
  JSON-only API cannot be driven that way by another web page;
- an upload (multipart) with no room for it in the temporary folder, where BentoML writes it
  before the endpoint runs → 507 (`room_to_spool`), instead of a 500 from the failed write.

A JSON body holding a number longer than 4,300 digits is answered here too, before parsing:
pydantic's parser would refuse it with a generic 400 ("number out of range"), while
`phishguard.contract.json_numbers` names the record and field (a 422, like any value outside
a feature's domain). Only a body longer than 4,300 bytes can hold one, so a single record is
never read twice.

The rows-per-request limit (`PHISHGUARD_MAX_ROWS`) is checked after parsing, in
`phishguard.contract.record_checks`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from phishguard.contract.json_numbers import MAX_DIGITS, long_number_problem
from phishguard.contract.record_checks import positive_int_from_env
from phishguard.serving.http_errors import error_body

MAX_BODY_ENV = "PHISHGUARD_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
MALFORMED_MULTIPART = "malformed multipart/form-data body"
ACCEPTED_MEDIA_TYPES = frozenset({"application/json", "multipart/form-data"})
SPOOL_SPARE_BYTES = 1024 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def max_body_bytes_from_env() -> int:
    """The request-body limit in bytes: `PHISHGUARD_MAX_BODY_BYTES`, else 8 MiB."""
    return positive_int_from_env(MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES)


class RequestLimits:
    """ASGI middleware: 413 over the body limit, 415 for a POST that is not JSON or multipart."""

    def __init__(self, app: ASGIApp, max_body_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = (
            max_body_bytes_from_env() if max_body_bytes is None else max_body_bytes
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        media_type = (
            headers.get(b"content-type", b"").split(b";")[0].strip().lower().decode("latin-1")
        )
        if media_type not in ACCEPTED_MEDIA_TYPES:
            shown = media_type or "none"
            await send_error(
                send,
                415,
                f"content type {shown!r} is not accepted: send JSON with "
                "'content-type: application/json' (or a CSV file as multipart/form-data)",
            )
            return
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await send_error(send, 413, self._too_large(f"{int(declared)} bytes"))
            return
        # Multipart bodies are read here too (bounded by the limit) and checked before BentoML
        # parses them: its parser turns a malformed upload into a 500, not a client error.
        # So is a JSON body long enough to hold a number the JSON parser cannot read.
        json_body = media_type == "application/json"
        if not declared.isdigit() or not json_body or int(declared) > MAX_DIGITS:
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > self.max_body_bytes:
                    await send_error(send, 413, self._too_large(f"more than {size} bytes"))
                    return
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            problem = (
                long_number_problem(body)
                if json_body
                else _multipart_problem(headers.get(b"content-type", b""), body)
            )
            if problem is None and not json_body and not room_to_spool(len(body)):
                problem = (
                    507,
                    "the server's disk is full: no room to receive this upload; retry later",
                )
            if problem is not None:
                await send_error(send, *problem, close=False)
                return
            receive = _replay(body, receive)
        # With a Content-Length the HTTP server itself refuses a body of any other length.
        await self.app(scope, receive, send)

    def _too_large(self, size: str) -> str:
        return (
            f"request body of {size} is over the limit of {self.max_body_bytes} bytes "
            f"({MAX_BODY_ENV}); send fewer records per request"
        )


def room_to_spool(size: int) -> bool:
    """Whether the temporary folder has room for an upload of `size` bytes, which BentoML
    writes there before the endpoint runs (a write that failed there was a 500 with a
    traceback): twice its size and 1 MiB to spare, since a full disk is refused by the first
    write that does not fit, and a 507 answered here is one line."""
    try:
        free = shutil.disk_usage(tempfile.gettempdir()).free
    except OSError:
        return True  # no answer: let the write itself decide
    return free >= 2 * size + SPOOL_SPARE_BYTES


def _multipart_problem(content_type: bytes, body: bytes) -> tuple[int, str] | None:
    """400 and why `body` is not valid multipart/form-data for `content_type`, or None."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        return 400, f"{MALFORMED_MULTIPART}: the content type has no boundary"
    parser = MultipartParser(boundary)
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as error:
        return 400, f"{MALFORMED_MULTIPART}: {error}"
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # after the body: wait for the disconnect, as the server would
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def send_error(
    send: Send,
    status: int,
    message: str,
    close: bool = True,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Answer `status` with `{"error": message}` (`error_body`) from ASGI middleware, before
    any endpoint; `close` the connection unless the whole body was read (the rest of an unread
    body cannot be told from the next request)."""
    body = error_body(message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *([(b"connection", b"close")] if close else []),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
