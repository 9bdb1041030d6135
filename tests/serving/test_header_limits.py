"""The request-head limit in uvicorn's protocol (`phishguard.serving.header_limits`), in-process: any
head over the limit is refused with 431 however its bytes are split between reads, any head
within it is served, and a body of any size is never counted as head.

`tests/hardening/test_live_limits.py` checks the same limit over raw sockets against a real
`bentoml serve`.
"""

from __future__ import annotations

import asyncio
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from uvicorn import Config
from uvicorn.server import ServerState

from phishguard.serving.header_limits import HeadLimitedProtocol

LIMIT = 1024


class SmallLimit(HeadLimitedProtocol):
    max_head_bytes = LIMIT


class Transport(asyncio.Transport):
    """What the protocol writes, and whether it closed the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"sockname": ("127.0.0.1", 3000), "peername": ("127.0.0.1", 50000)}.get(name)

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def echo_length(scope, receive, send) -> None:
    """Reads the whole body and answers 200 with its length."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    answer = str(size).encode()
    length = [(b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": length})
    await send({"type": "http.response.body", "body": answer})


def serve(data: bytes, cuts: list[int]) -> Transport:
    """Feed `data` to a fresh connection, split at `cuts`; run the app; return the transport."""
    config = Config(app=echo_length, lifespan="off", log_config=None)
    loop = asyncio.new_event_loop()
    try:
        protocol = SmallLimit(config=config, server_state=ServerState(), app_state={}, _loop=loop)
        transport = Transport()
        protocol.connection_made(transport)
        bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
        for start, end in itertools.pairwise(bounds):
            if not transport.closed:
                protocol.data_received(data[start:end])
            loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(asyncio.sleep(0.01))
        return transport
    finally:
        loop.close()


def head(headers: list[tuple[str, str]], body: bytes = b"", path: str = "/") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: x", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


header = st.tuples(
    st.from_regex(r"x-[a-z]{1,40}", fullmatch=True), st.text("abc;=, ", max_size=600)
)


@settings(max_examples=200, deadline=None)
@given(
    headers=st.lists(header, max_size=8),
    body=st.binary(max_size=3 * LIMIT),
    cuts=st.lists(st.integers(0, 6 * LIMIT), max_size=12),
)
def test_refused_exactly_when_the_head_is_over_the_limit(headers, body, cuts) -> None:
    request_head = head(headers, body)
    transport = serve(request_head + body, cuts)
    if len(request_head) > LIMIT:
        assert transport.written.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
        assert (
            b'"error": "request line and headers over the limit of 1024 bytes' in transport.written
        )
        assert transport.closed
    else:
        assert transport.written.startswith(b"HTTP/1.1 200 OK"), bytes(transport.written[:200])
        assert transport.written.endswith(b"\r\n\r\n" + str(len(body)).encode())


@settings(max_examples=50, deadline=None)
@given(sizes=st.lists(st.integers(0, LIMIT - 100), min_size=2, max_size=5))
def test_each_request_on_a_connection_has_its_own_budget(sizes) -> None:
    """Keep-alive: heads that are each within the limit pass, however many follow."""
    data = b"".join(head([("x-pad", "a" * size)]) for size in sizes)
    transport = serve(data, [])
    assert transport.written.count(b"HTTP/1.1 200 OK") == len(sizes)
    assert b"431" not in transport.written


def test_a_long_url_counts_as_head() -> None:
    transport = serve(head([], path="/?" + "q" * LIMIT), [100, 700])
    assert transport.written.startswith(b"HTTP/1.1 431")
