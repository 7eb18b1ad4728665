"""Replies that are not the server's answer to this request, made by a
proxy between the client and a real `lacre serve` (HMAC server key): a
tampered reply, a replayed one, and a reply lost after the server ran the
request."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator, List, Optional

import httpx
import pytest

import lacre
from conftest import Served, require_binary

CONFIG = """server_id = "mcp-server-001"
store = "memory"
[signing]
secret = "server_secret_key_123"
[[clients]]
id = "client-001"
secret = "client_secret_key_456"
[[clients]]
id = "client-ed"
alg = "ed25519"
public_key_hex = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
"""
# The vectors' Ed25519 key (testdata/vectors/signatures.json).
ED_SEED = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"


class Proxy:
    """Forwards POSTs to `upstream`; `mode` says what it does to them."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.kept: Optional[bytes] = None
        self.forwarded: List[bytes] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.forwarded.append(body)
                r = httpx.post(proxy.upstream, content=body,
                               headers={"content-type": "application/json"})
                reply = r.content
                if proxy.mode == "drop_once":
                    # The server ran it; the reply is lost on the way back.
                    proxy.mode = "pass"
                    self.close_connection = True
                    return
                if proxy.mode == "tamper":
                    reply = reply.replace(b'"total":60.0', b'"total":61.0')
                if proxy.mode == "huge":
                    # A reply the client must not read whole (SPEC §6.4).
                    reply = b" " * (16 * 1024 * 1024 + 1)
                if proxy.mode == "replay":
                    if proxy.kept is None:
                        proxy.kept = reply
                    reply = proxy.kept
                self.send_response(r.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mcp"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def proxied() -> Iterator[Proxy]:
    served = Served(require_binary(), CONFIG)
    proxy = Proxy(served.url)
    yield proxy
    proxy.close()
    served.stop()


def client(url: str) -> lacre.Client:
    return lacre.Client(url, client_id="client-001", secret=b"client_secret_key_456",
                        server_id="mcp-server-001", server_secret=b"server_secret_key_123")


def test_an_hmac_server_through_an_honest_proxy(proxied: Proxy) -> None:
    assert client(proxied.url).call("batch_sum", {"numbers": [10, 20, 30]}) == {"count": 3, "total": 60.0}


def test_an_ed25519_client_key(proxied: Proxy) -> None:
    c = lacre.Client(proxied.url, client_id="client-ed", key=lacre.Key.ed25519(ED_SEED),
                     server_id="mcp-server-001", server_secret=b"server_secret_key_123")
    assert c.call("batch_sum", {"numbers": [1, 2]}) == {"count": 2, "total": 3.0}
    # Signed with another key under that id: a verified, bound refusal.
    other = lacre.Client(proxied.url, client_id="client-ed", key=lacre.Key.ed25519(bytes(32)),
                         server_id="mcp-server-001", server_secret=b"server_secret_key_123")
    with pytest.raises(lacre.ServerError) as e:
        other.call("batch_sum", {"numbers": [1]})
    assert e.value.code == "bad_signature"


def test_a_tampered_reply_is_a_verification_error(proxied: Proxy) -> None:
    proxied.mode = "tamper"
    with pytest.raises(lacre.VerificationError, match="signature"):
        client(proxied.url).call("batch_sum", {"numbers": [10, 20, 30]})


def test_a_replayed_reply_is_a_verification_error(proxied: Proxy) -> None:
    c = client(proxied.url)
    proxied.mode = "replay"
    assert c.call("batch_sum", {"numbers": [10, 20, 30]}) == {"count": 3, "total": 60.0}
    # The same signed reply again, for another request: not its answer.
    with pytest.raises(lacre.VerificationError, match="another request_id"):
        c.call("batch_sum", {"numbers": [10, 20, 30]})


def test_a_lost_reply_is_retried_only_where_harmless(proxied: Proxy) -> None:
    c = client(proxied.url)
    # Starting a job: retried with the same request_id; one job, not two.
    proxied.mode = "drop_once"
    job = c.start("start_long_task", {"seconds": 1})
    sent = [lacre.parse_strict(b) for b in proxied.forwarded]
    assert len(sent) == 2 and sent[0]["request_id"] == sent[1]["request_id"]
    assert sent[0]["nonce"] != sent[1]["nonce"]
    assert [j["job_id"] for j in c.jobs()] == [job.id]
    # An immediate call that may have run: outcome unknown, not retried.
    proxied.forwarded.clear()
    proxied.mode = "drop_once"
    with pytest.raises(lacre.OutcomeUnknownError):
        c.call("batch_sum", {"numbers": [1]})
    assert len(proxied.forwarded) == 1


def test_a_reply_over_16_mib_is_not_read_and_counts_as_lost(proxied: Proxy) -> None:
    c = client(proxied.url)
    proxied.mode = "huge"
    # A read: retried (three times), then a transport error.
    with pytest.raises(lacre.TransportError, match="reply larger than 16777216 bytes"):
        c.call("server_identity")
    assert len(proxied.forwarded) == 4
    # An immediate call: it may have run, so outcome unknown and no retry.
    proxied.forwarded.clear()
    with pytest.raises(lacre.OutcomeUnknownError, match="reply larger than 16777216 bytes"):
        c.call("batch_sum", {"numbers": [1]})
    assert len(proxied.forwarded) == 1

    async def both() -> None:
        async with lacre.AsyncClient(proxied.url, client_id="client-001", secret=b"client_secret_key_456",
                                     server_id="mcp-server-001", server_secret=b"server_secret_key_123") as a:
            with pytest.raises(lacre.OutcomeUnknownError, match="reply larger than 16777216 bytes"):
                await a.call("batch_sum", {"numbers": [1]})

    import asyncio
    asyncio.run(both())
