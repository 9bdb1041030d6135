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
  JSON-only API cannot be driven that way by another web page.

Two answers are improved after parsing: the JSON parser's generic 400 for a number longer than
4,300 digits becomes the 4xx of `phishguard.contract.json_numbers`, naming the record and field; and
every 4xx is one JSON object `{"error": "..."}` (BentoML 1.4 wraps the errors its endpoints
raise in a one-element list, but not its own validation errors).

The rows-per-request limit (`PHISHGUARD_MAX_ROWS`) is checked after parsing, in
`phishguard.contract.record_checks`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from phishguard.contract.json_numbers import MAX_DIGITS, long_number_problem
from phishguard.contract.record_checks import positive_int_from_env

MAX_BODY_ENV = "PHISHGUARD_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
ACCEPTED_MEDIA_TYPES = frozenset({"application/json", "multipart/form-data"})

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
            await _refuse(
                send,
                415,
                f"content type {shown!r} is not accepted: send JSON with "
                "'content-type: application/json' (or a CSV file as multipart/form-data)",
            )
            return
        declared = headers.get(b"content-length", b"").strip()
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _refuse(send, 413, self._too_large(f"{int(declared)} bytes"))
            return
        body = None
        # Multipart bodies are read here too (bounded by the limit) and checked before BentoML
        # parses them: its parser turns a malformed upload into a 500, not a client error.
        if not declared.isdigit() or media_type == "multipart/form-data":
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > self.max_body_bytes:
                    await _refuse(send, 413, self._too_large(f"more than {size} bytes"))
                    return
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            if media_type == "multipart/form-data":
                problem = _multipart_problem(headers.get(b"content-type", b""), body)
                if problem:
                    await _refuse(send, 400, f"malformed multipart/form-data body: {problem}")
                    return
            receive = _replay(body, receive)
        # A body shorter than that cannot hold a number too long for the JSON parser.
        request: list[bytes] | None = None
        if media_type == "application/json" and (body is not None or int(declared) > MAX_DIGITS):
            request = [] if body is None else [body]
            if body is None:
                receive = _recording(receive, request)
        # With a Content-Length the HTTP server itself refuses a body of any other length.
        await self.app(scope, receive, _plain_client_errors(send, request))

    def _too_large(self, size: str) -> str:
        return (
            f"request body of {size} is over the limit of {self.max_body_bytes} bytes "
            f"({MAX_BODY_ENV}); send fewer records per request"
        )


def _multipart_problem(content_type: bytes, body: bytes) -> str | None:
    """Why `body` is not valid multipart/form-data for `content_type`, or None if it is."""
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        return "the content type has no boundary"
    parser = MultipartParser(boundary)
    try:
        parser.write(body)
        parser.finalize()
    except MultipartParseError as error:
        return str(error)
    return None


def _recording(receive: Receive, parts: list[bytes]) -> Receive:
    """`receive` that also appends each chunk of the request body to `parts`."""

    async def recording() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            parts.append(message.get("body", b""))
        return message

    return recording


def _plain_client_errors(send: Send, request: list[bytes] | None) -> Send:
    """`send` for the app, with its 4xx JSON answers held back and made plain:

    - BentoML wraps the errors its endpoints raise in a one-element list; `[{"error": ...}]`
      goes out as `{"error": ...}`;
    - the JSON parser's generic 400 for a number too long to parse ("number out of range")
      becomes the 4xx of `json_numbers`, naming the record and field. `request` holds the
      body's chunks (None when the body is too short to hold such a number); they are kept
      until the answer starts and scanned only for a 400, so a request that parses pays no
      scan, only one more reference to its body while it is scored.
    """
    held: Message | None = None
    answer: list[bytes] = []

    async def plain(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            if 400 <= message["status"] < 500 and content_type.startswith(b"application/json"):
                held = message
                return
            if request is not None:
                request.clear()
        if held is None or message["type"] != "http.response.body":
            await send(message)
            return
        answer.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        start, held = held, None
        status, body = start["status"], _unwrapped(b"".join(answer))
        problem = long_number_problem(b"".join(request)) if request and status == 400 else None
        if problem is not None:
            status, body = (
                problem[0],
                json.dumps({"error": problem[1]}, ensure_ascii=False).encode(),
            )
        if request is not None:
            request.clear()
        headers = [
            (name, str(len(body)).encode() if name.lower() == b"content-length" else value)
            for name, value in start.get("headers", [])
        ]
        await send({**start, "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return plain


def _unwrapped(body: bytes) -> bytes:
    """A JSON body `[{...}]` as `{...}`; any other body as it is."""
    try:
        answer = json.loads(body)
    except ValueError:
        return body
    if isinstance(answer, list) and len(answer) == 1 and isinstance(answer[0], dict):
        return json.dumps(answer[0], ensure_ascii=False).encode()
    return body


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # after the body: wait for the disconnect, as the server would
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
