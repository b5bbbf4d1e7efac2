"""The HTTP/1.1 protocol ``nas serve`` speaks: uvicorn's httptools protocol with a bound on
a request's head (its request line and headers).

uvicorn's httptools protocol takes a head of any size: a client without a key sent 1,000
headers of 1 MiB each, the server held every byte (its memory from 453 MB to 1,448 MB,
kept after the connection closed) and answered 401 only then (the security probe). A head
over ``MAX_HEAD_BYTES`` is answered 431 as soon as that many bytes have come without its end,
and the connection closed; the body is not counted here (``BodySizeLimit`` bounds it)."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: The most bytes of a request line and headers taken (nginx's largest default is 32 KiB).
MAX_HEAD_BYTES = 65_536
_END = b"\r\n\r\n"
#: How long a refused connection's further bytes are read and dropped before it closes.
LINGER_S = 2.0


class BoundedHeadProtocol(HttpToolsProtocol):
    """httptools' protocol, refusing a request head over ``MAX_HEAD_BYTES`` with 431."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes: int | None = 0  # of the head under way; None: in a body
        self._tail = b""  # the last bytes seen, for an end of head split over two reads
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:  # (what was still on its way)
            return
        if self._head_bytes is not None:
            seen = self._tail + data
            end = seen.find(_END)
            counted = len(data) if end < 0 else end + len(_END) - len(self._tail)
            self._head_bytes += max(counted, 0)
            self._tail = seen[-(len(_END) - 1) :]
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head_bytes, self._tail = None, b""
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_bytes, self._tail = 0, b""

    def _refuse(self) -> None:
        body = (
            f'{{"detail":"request head (request line and headers) larger than '
            f'{MAX_HEAD_BYTES} bytes"}}'
        ).encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self._refused = True
        # A lingering close, as nginx's: the answer and a FIN now, what the client still
        # sends read and dropped for a moment, then the close. (Closed at once, the bytes
        # still coming made the kernel reset the connection, which discarded the answer
        # before the client read it.)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()
