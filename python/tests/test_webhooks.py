"""Standard Webhooks signatures against the reference implementation (PyPI
``standardwebhooks``): what it signs, lacre verifies, in Python and with
``lacre webhook verify``; what lacre signs, it verifies."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import standardwebhooks
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import lacre
from conftest import require_binary

SECRET = "whsec_" + base64.b64encode(b"the client's webhook secret").decode()
BODY = json.dumps({"type": "job.done", "timestamp": "2026-12-01T00:00:00Z",
                   "data": {"status": "done", "result": {"x": 1}}})


def reference_headers(msg_id: str, body: str, at: datetime) -> Dict[str, str]:
    signature = standardwebhooks.Webhook(SECRET).sign(msg_id=msg_id, timestamp=at, data=body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature}


def test_lacre_verifies_what_the_reference_signs() -> None:
    now = datetime.now(tz=timezone.utc)
    headers = reference_headers("job-1.done", BODY, now)
    assert lacre.verify_webhook(headers, BODY, secret=SECRET) == json.loads(BODY)
    # Header names in any case, as HTTP has them.
    upper = {k.title(): v for k, v in headers.items()}
    assert lacre.verify_webhook(upper, BODY.encode(), secret=SECRET)["type"] == "job.done"
    for tampered, why in [
        ({**headers, "webhook-id": "job-2.done"}, "no signature verifies"),
        ({**headers, "webhook-timestamp": str(int(now.timestamp()) - 301)}, "from now"),
        ({k: v for k, v in headers.items() if k != "webhook-signature"}, "missing header"),
    ]:
        with pytest.raises(lacre.VerificationError, match=why):
            lacre.verify_webhook(tampered, BODY, secret=SECRET)
    with pytest.raises(lacre.VerificationError, match="no signature verifies"):
        lacre.verify_webhook(headers, BODY.replace("1}", "2}"), secret=SECRET)
    other = "whsec_" + base64.b64encode(b"another secret").decode()
    with pytest.raises(lacre.VerificationError):
        lacre.verify_webhook(headers, BODY, secret=other)
    # A receiver rotating secrets accepts either.
    assert lacre.verify_webhook(headers, BODY, secret=[other, SECRET])["type"] == "job.done"


def test_the_reference_vector_is_reproduced() -> None:
    """The vector of the Standard Webhooks libraries: secret, id, time, body, signature."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"test": 2432232314}'
    headers = lacre.sign_webhook(body, "msg_p5jXN8AQM9LWM0D4loKWxJek", secret, timestamp=1614265330)
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    reference = standardwebhooks.Webhook(secret).sign(
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=datetime.fromtimestamp(1614265330, tz=timezone.utc), data=body)
    assert reference == headers["webhook-signature"]


def test_the_reference_verifies_what_lacre_signs() -> None:
    headers = lacre.sign_webhook(BODY, "job-7.failed", SECRET)
    assert standardwebhooks.Webhook(SECRET).verify(BODY, dict(headers)) == json.loads(BODY)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(BODY + " ", dict(headers))


def run_lacre(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([require_binary(), "webhook", *args], input=stdin,
                          capture_output=True, timeout=60, check=False)


def test_lacre_webhook_sign_and_verify_agree_with_the_reference(tmp_path: Path) -> None:
    # `lacre webhook sign`: headers the reference accepts.
    out = run_lacre("sign", "--id", "job-3.done", "--secret", SECRET, stdin=BODY.encode())
    assert out.returncode == 0, out.stderr
    headers = dict(line.split(": ", 1) for line in out.stdout.decode().splitlines())
    assert standardwebhooks.Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)
    # `lacre webhook verify`: a whole request the reference signed.
    signed = reference_headers("job-4.done", BODY, datetime.now(tz=timezone.utc))
    request = "POST /hooks/lacre HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    raw = (request + "\r\n" + BODY).encode()
    out = run_lacre("verify", "--secret", SECRET, stdin=raw)
    assert (out.returncode, out.stdout) == (0, b"valid\n"), out.stderr
    out = run_lacre("verify", "--secret", SECRET, stdin=raw.replace(b'"x": 1', b'"x": 2'))
    assert (out.returncode, out.stdout) == (5, b"invalid: no signature verifies\n")


def test_v1a_ed25519_signatures_verify_with_the_public_key(tmp_path: Path) -> None:
    # The reference package signs v1 only; v1a is Ed25519 over the same bytes.
    private = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = "whpk_" + base64.b64encode(
        private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    ts = int(time.time())
    content = f"job-5.done.{ts}.".encode() + BODY.encode()
    headers = {"webhook-id": "job-5.done", "webhook-timestamp": str(ts),
               "webhook-signature": "v1a," + base64.b64encode(private.sign(content)).decode()}
    assert lacre.verify_webhook(headers, BODY, public_key=public)["type"] == "job.done"
    # A secret does not verify a v1a signature, nor a public key a v1 one.
    with pytest.raises(lacre.VerificationError):
        lacre.verify_webhook(headers, BODY, secret=SECRET)
    with pytest.raises(lacre.VerificationError):
        lacre.verify_webhook(reference_headers("job-5.done", BODY, datetime.now(tz=timezone.utc)),
                             BODY, public_key=public)
    request = "".join(f"{k}: {v}\n" for k, v in headers.items()) + "\n" + BODY
    out = run_lacre("verify", "--public-key", public, stdin=request.encode())
    assert (out.returncode, out.stdout) == (0, b"valid\n"), out.stderr
    # lacre's own v1a (`lacre webhook sign --key-file`) verifies the same way.
    key_file = tmp_path / "ed.key"
    key_file.write_text(bytes(range(32)).hex())
    out = run_lacre("sign", "--id", "job-6.done", "--key-file", str(key_file), stdin=BODY.encode())
    assert out.returncode == 0, out.stderr
    signed = dict(line.split(": ", 1) for line in out.stdout.decode().splitlines())
    assert signed["webhook-signature"].startswith("v1a,")
    assert lacre.verify_webhook(signed, BODY, public_key=public)["type"] == "job.done"
    # The identity point as a key is refused (it would verify forgeries).
    identity = "whpk_" + base64.b64encode(b"\x01" + bytes(31)).decode()
    with pytest.raises(lacre.UsageError, match="small order"):
        lacre.verify_webhook(headers, BODY, public_key=identity)


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that checks every notification with the
    reference `standardwebhooks` package, answering 500 to the first one of
    each webhook-id (so each is sent twice) and 204 after."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.got: List[Tuple[Dict[str, str], bytes, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    checked: Any = standardwebhooks.Webhook(SECRET).verify(body, headers)
                except Exception as e:  # recorded, and the test fails on it
                    checked = e
                with receiver.lock:
                    first = all(h["webhook-id"] != headers["webhook-id"] for h, _, _ in receiver.got)
                    receiver.got.append((headers, body, checked))
                self.send_response(500 if first else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, within: float = 30.0) -> List[Tuple[Dict[str, str], bytes, Any]]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.got) >= n:
                    return list(self.got)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.got)} notifications, not {n}")


SERVER_SEED = bytes(range(32))


def test_a_server_pushes_finished_jobs_that_the_reference_verifies() -> None:
    from conftest import Served

    receiver = Receiver()
    config = f'''server_id = "mcp-server-001"
[signing]
alg = "ed25519"
private_key_hex = "{SERVER_SEED.hex()}"
[[clients]]
id = "client-001"
secret = "client_secret_key_456"
webhook_url = "{receiver.url}"
webhook_secret = "{SECRET}"
[webhooks]
allow_private_targets = true
schedule = ["0s", "100ms", "100ms"]
[[tools]]
name = "fail_job"
command = ["sh", "-c", "echo broken >&2; exit 3"]
long_running = true
'''
    served = Served(require_binary(), config)
    try:
        public = Ed25519PrivateKey.from_private_bytes(SERVER_SEED).public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw).hex()
        client = lacre.Client(served.url, client_id="client-001", secret=b"client_secret_key_456",
                              server_id="mcp-server-001", server_public_key=public)
        done = client.start("start_long_task", {"seconds": 1, "payload": {"n": 7}})
        sleeping = client.start("start_long_task", {"seconds": 20})
        assert client.cancel(sleeping) == "cancelled"
        failing = client.start("fail_job")
        got = receiver.wait_for(6)
        server = lacre.Verifier.ed25519(public)
        by_id: Dict[str, List[Tuple[Dict[str, str], bytes, Any]]] = {}
        for headers, body, checked in got:
            assert not isinstance(checked, Exception), checked
            by_id.setdefault(headers["webhook-id"], []).append((headers, body, checked))
            # The embedded reply is the server's, signed with its Ed25519 key.
            data = checked["data"]
            assert server.verify(lacre.canonical(lacre.wire.response_fields(data)), data["signature"])
            assert data["server_id"] == "mcp-server-001"
            # So is the notification itself (v1a), and lacre's own verifier agrees.
            assert lacre.verify_webhook(headers, body, public_key="whpk_" + base64.b64encode(
                bytes.fromhex(public)).decode())["type"] == checked["type"]
            assert lacre.verify_webhook(headers, body, secret=SECRET) == checked
        # Each event twice (500, then 204), under one webhook-id.
        assert sorted(by_id) == sorted(
            [f"{done.id}.done", f"{sleeping.id}.cancelled", f"{failing.id}.failed"])
        assert all(len(v) == 2 for v in by_id.values()), {k: len(v) for k, v in by_id.items()}
        finished = by_id[f"{done.id}.done"][1][2]
        assert finished["type"] == "job.done"
        assert finished["data"]["status"] == "done" and finished["data"]["result"] == {"n": 7}
        cancelled = by_id[f"{sleeping.id}.cancelled"][1][2]
        assert cancelled["type"] == "job.cancelled"
        assert cancelled["data"]["error"].startswith("job_cancelled")
        failed = by_id[f"{failing.id}.failed"][1][2]
        assert failed["type"] == "job.failed"
        assert failed["data"]["error"].startswith("job_failed") and "broken" in failed["data"]["error"]
        # The client sees its deliveries through a signed system tool.
        listed = client.call("list_deliveries")
        assert listed["configured"] is True and listed["endpoint_disabled"] is False
        states = {d["webhook_id"]: (d["state"], d["attempts"]) for d in listed["deliveries"]}
        assert states == {k: ("delivered", 2) for k in by_id}, states
    finally:
        served.stop()
        receiver.server.shutdown()


def test_the_readme_receiver_prints_a_verified_delivery() -> None:
    """examples/webhooks/receiver.py, as the README shows it, against a real server."""
    import threading

    from conftest import ROOT, Served, free_port

    example = (ROOT / "examples" / "webhooks" / "receiver.py").read_text()
    assert example in (ROOT / "README.md").read_text(), "the README shows the example as it is"
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "webhooks" / "receiver.py")],
        env={**os.environ, "LACRE_WEBHOOK_SECRET": SECRET, "PORT": str(port)},
        stdout=subprocess.PIPE, text=True)
    lines: List[str] = []
    assert receiver.stdout is not None
    out = receiver.stdout
    threading.Thread(target=lambda: lines.extend(iter(out.readline, "")), daemon=True).start()
    served = Served(require_binary(), f'''server_id = "mcp-server-001"
[signing]
secret = "server_secret_key_123"
[[clients]]
id = "client-001"
secret = "client_secret_key_456"
webhook_url = "http://127.0.0.1:{port}/hook"
webhook_secret = "{SECRET}"
[webhooks]
allow_private_targets = true
schedule = ["0s", "200ms", "200ms", "200ms", "200ms", "200ms"]
''')
    try:
        client = lacre.Client(served.url, client_id="client-001", secret=b"client_secret_key_456",
                              server_id="mcp-server-001", server_secret=b"server_secret_key_123")
        job = client.start("start_long_task", {"seconds": 1, "payload": {"ok": True}})
        deadline = time.monotonic() + 30
        while not lines and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lines == [f'job.done {job.id}.done {{"ok": true}}\n'], lines
    finally:
        served.stop()
        receiver.kill()
        receiver.wait()
