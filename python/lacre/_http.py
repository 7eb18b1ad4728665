"""A minimal HTTP/1.1 client on asyncio streams, for :class:`AsyncClient`.

lacre's exchanges are small JSON POSTs (and one GET of the well-known
document); httpx's async pool was measured here at ~280 calls/s with 32 in
flight against a local server, where plain keep-alive streams do ~6 000.
This handles exactly what a lacre server or a seed-style server answers:
a status line, headers, a body with ``Content-Length`` or chunked, keep-alive.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import List, Optional, Tuple
from urllib.parse import urlsplit

_MAX_HEADER_LINES = 100
_MAX_BODY = 16 << 20  # the client's MAX_REPLY_BYTES (SPEC §6.4)


class ConnectFailed(Exception):
    """The connection could not be made: the request never left."""


class Broken(Exception):
    """The exchange failed after the request may have been sent."""


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class AsyncHTTP:
    """Keep-alive connections to one origin."""

    def __init__(self, url: str) -> None:
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.ssl: Optional[ssl.SSLContext] = (
            ssl.create_default_context() if u.scheme == "https" else None
        )
        default = (u.scheme == "https" and self.port == 443) or (u.scheme == "http" and self.port == 80)
        self.authority = self.host if default else f"{self.host}:{self.port}"
        self._idle: List[_Conn] = []

    async def _open(self, timeout: float) -> _Conn:
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.ssl), timeout
            )
        except (OSError, asyncio.TimeoutError) as e:
            raise ConnectFailed(f"cannot connect to {self.authority}: {e}") from e
        return _Conn(r, w)

    async def request(
        self, method: str, path: str, body: bytes, timeout: float, cap: int = _MAX_BODY
    ) -> Tuple[int, bytes]:
        """One exchange; on a reused connection that the server had closed
        (end of stream before any byte of the answer) the same bytes are
        sent once more on a new connection — identical bytes, so a server
        that did receive them refuses the copy as a replay."""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.authority}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        for attempt in range(2):
            reused = attempt == 0 and bool(self._idle)
            conn = self._idle.pop() if reused else await self._open(timeout)
            try:
                conn.writer.write(head + body)
                await asyncio.wait_for(conn.writer.drain(), timeout)
                status, keep, data = await asyncio.wait_for(self._read(conn, cap), timeout)
            except _Closed:
                conn.close()
                if reused:
                    continue
                raise Broken("the server closed the connection without an answer") from None
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as e:
                conn.close()
                raise Broken(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from e
            except BaseException:
                conn.close()
                raise
            if keep:
                self._idle.append(conn)
            else:
                conn.close()
            return status, data
        raise Broken("no answer")

    async def _read(self, conn: _Conn, cap: int) -> Tuple[int, bool, bytes]:
        r = conn.reader
        line = await r.readline()
        if not line:
            raise _Closed()
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
            raise ValueError(f"not an HTTP/1.x status line: {line[:80]!r}")
        status = int(parts[1])
        keep = parts[0] == "HTTP/1.1"
        length: Optional[int] = None
        chunked = False
        for _ in range(_MAX_HEADER_LINES):
            h = await r.readline()
            if h in (b"\r\n", b"\n"):
                break
            if not h:
                raise asyncio.IncompleteReadError(b"", None)
            name, _, value = h.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value.lower():
                chunked = True
            elif name == "connection":
                keep = value.lower() != "close" and (keep or value.lower() == "keep-alive")
        else:
            raise ValueError("too many header lines")
        if chunked:
            buf = bytearray()
            while True:
                size = int((await r.readline()).split(b";")[0].strip(), 16)
                if size == 0:
                    await r.readline()
                    break
                if len(buf) + size > cap:
                    raise ValueError(f"reply larger than {cap} bytes")
                buf += await r.readexactly(size)
                await r.readline()
            return status, keep, bytes(buf)
        if length is None:
            keep = False
            data = await r.read(cap + 1)
        else:
            if length > cap:
                raise ValueError(f"reply larger than {cap} bytes")
            data = await r.readexactly(length)
        if len(data) > cap:
            raise ValueError(f"reply larger than {cap} bytes")
        return status, keep, data

    async def aclose(self) -> None:
        for c in self._idle:
            c.close()
        self._idle.clear()


class _Closed(Exception):
    """End of stream before the status line."""
