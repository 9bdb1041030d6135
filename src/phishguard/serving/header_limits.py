"""A cap on the size of a request's head (request line + headers), enforced as it arrives.

An ASGI middleware (like `phishguard.serving.request_limits`) sees the headers only after the HTTP
server has parsed all of them. BentoML serves with uvicorn on httptools, which has no limit
and joins a header's pieces as they arrive: a 10 MB header got a 200, and four 64 MB headers
stalled /readyz for ~18 s. `HeadLimitedProtocol` counts each request's head bytes *before*
handing them to the parser, and past `PHISHGUARD_MAX_HEADER_BYTES` (default 64 KiB) answers
431 and closes the connection: a worker never holds more than the limit plus one socket read.

BentoML builds uvicorn's `Config` itself, with the default `http="auto"` and no way to pass a
protocol; `install()` points uvicorn's "auto" at this class. The service calls it at import,
which in a `bentoml serve` worker happens before the server starts. Being the one layer outside
BentoML's app, the protocol also hands requests to it through `route_labels.RouteLabelledApp`,
so that BentoML's request metrics are labelled by route template.
"""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn import config as uvicorn_config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from phishguard.contract.record_checks import positive_int_from_env
from phishguard.serving.http_errors import error_body
from phishguard.serving.route_labels import RouteLabelledApp

MAX_HEADER_ENV = "PHISHGUARD_MAX_HEADER_BYTES"
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
END_OF_HEAD = b"\r\n\r\n"


def max_header_bytes_from_env() -> int:
    """The request-head limit in bytes: `PHISHGUARD_MAX_HEADER_BYTES`, else 64 KiB."""
    return positive_int_from_env(MAX_HEADER_ENV, DEFAULT_MAX_HEADER_BYTES)


class HeadLimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over `max_head_bytes` with 431."""

    max_head_bytes = DEFAULT_MAX_HEADER_BYTES
    _labelled: ClassVar[dict[int, RouteLabelledApp]] = {}  # one wrapper per app

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app = self.app
        labelled = self._labelled.get(id(app))
        if labelled is None or labelled.app is not app:
            labelled = self._labelled[id(app)] = RouteLabelledApp(app)
        self.app = labelled
        self._head_bytes = 0
        self._in_head = True  # until the blank line that ends the head
        self._tail = b""  # the last bytes seen, for an end of head split between reads
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            seen = self._tail + data
            end = seen.find(END_OF_HEAD)
            if end < 0:
                self._head_bytes += len(data)
                self._tail = seen[-(len(END_OF_HEAD) - 1) :]
            else:
                self._head_bytes += end + len(END_OF_HEAD) - len(self._tail)
                self._in_head = False
            if self._head_bytes > self.max_head_bytes:
                self._refuse()
                return
        super().data_received(data)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # The next request on this connection starts with a head of its own.
        self._head_bytes, self._in_head, self._tail = 0, True, b""

    def _refuse(self) -> None:
        self._refused = True
        message = (
            f"request line and headers over the limit of {self.max_head_bytes} bytes "
            f"({MAX_HEADER_ENV}); send shorter headers"
        )
        body = error_body(message)
        head = (
            "HTTP/1.1 431 Request Header Fields Too Large\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


def install(max_head_bytes: int | None = None) -> None:
    """Make uvicorn's default ("auto") HTTP protocol `HeadLimitedProtocol` in this process."""
    HeadLimitedProtocol.max_head_bytes = (
        max_header_bytes_from_env() if max_head_bytes is None else max_head_bytes
    )
    uvicorn_config.HTTP_PROTOCOLS["auto"] = f"{__name__}:{HeadLimitedProtocol.__name__}"
