"""Standard Webhooks signatures (SPEC §9.5): what a receiver of lacre's job
notifications checks before it trusts one.

    payload = lacre.verify_webhook(request.headers, request.body, secret="whsec_...")

``v1`` is HMAC-SHA256 with the shared ``whsec_`` secret, ``v1a`` Ed25519 with
the server's ``whpk_`` public key (published in ``/.well-known/lacre.json``);
both sign ``"<webhook-id>.<webhook-timestamp>.<body>"``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from .errors import UsageError, VerificationError
from .wire import Verifier, parse_strict

DEFAULT_TOLERANCE_S = 300
MAX_SIGNATURES = 8


def _b64(text: str) -> bytes:
    """Standard base64, padding optional (as the reference libraries read secrets)."""
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


def _secret_bytes(secret: Union[str, bytes]) -> bytes:
    if isinstance(secret, bytes):
        raw = secret
    else:
        try:
            raw = _b64(secret.strip().removeprefix("whsec_"))
        except ValueError:
            raise UsageError("a webhook secret is whsec_ followed by base64") from None
    if not raw:
        raise UsageError("a webhook secret must not be empty")
    return raw


def _public_key(key: str) -> Verifier:
    text = key.strip()
    if not text.startswith("whpk_"):
        raise UsageError("a webhook public key is whpk_ followed by base64")
    try:
        raw = _b64(text[len("whpk_"):])
    except ValueError:
        raise UsageError("a webhook public key is whpk_ followed by base64") from None
    # Strict Ed25519: small-order and non-canonical keys are refused.
    return Verifier.ed25519(raw)


def signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def sign_webhook(body: Union[bytes, str], msg_id: str, secret: Union[str, bytes],
                 timestamp: Optional[int] = None) -> Mapping[str, str]:
    """The three headers a sender adds (``v1``, HMAC-SHA256)."""
    data = body.encode() if isinstance(body, str) else body
    ts = int(time.time()) if timestamp is None else timestamp
    tag = hmac.new(_secret_bytes(secret), signed_content(msg_id, ts, data), hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": "v1," + base64.b64encode(tag).decode(),
    }


def verify_webhook(headers: Mapping[str, str], body: Union[bytes, str], *,
                   secret: Union[str, bytes, Sequence[Union[str, bytes]], None] = None,
                   public_key: Union[str, Iterable[str], None] = None,
                   now: Optional[float] = None, tolerance: int = DEFAULT_TOLERANCE_S) -> Any:
    """Checks a notification and returns its body, parsed (strict JSON).

    ``secret`` (one or several ``whsec_``) verifies ``v1`` signatures,
    ``public_key`` (one or several ``whpk_``) ``v1a``. Raises
    :class:`VerificationError` if a header is missing, the timestamp is more
    than ``tolerance`` seconds from ``now``, or no signature verifies."""
    secrets = [] if secret is None else [secret] if isinstance(secret, (str, bytes)) else list(secret)
    publics = [] if public_key is None else [public_key] if isinstance(public_key, str) else list(public_key)
    if not secrets and not publics:
        raise UsageError("give secret= or public_key=")
    keys = [_secret_bytes(s) for s in secrets]
    verifiers = [_public_key(k) for k in publics]
    data = body.encode() if isinstance(body, str) else body
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, signature = (lower.get(h, "").strip() for h in
                                ("webhook-id", "webhook-timestamp", "webhook-signature"))
    for name, value in (("webhook-id", msg_id), ("webhook-timestamp", stamp), ("webhook-signature", signature)):
        if not value:
            raise VerificationError(f"missing header {name}")
    if not stamp.lstrip("-").isdigit():
        raise VerificationError("webhook-timestamp is not a number of seconds")
    ts = int(stamp)
    off = int(time.time() if now is None else now) - ts
    if abs(off) > tolerance:
        raise VerificationError(f"webhook-timestamp {ts} is {off} s from now (tolerance {tolerance} s)")
    entries = signature.split()
    if len(entries) > MAX_SIGNATURES:
        raise VerificationError(f"more than {MAX_SIGNATURES} signatures")
    content = signed_content(msg_id, ts, data)
    for entry in entries:
        version, _, b64 = entry.partition(",")
        try:
            raw = _b64(b64)
        except ValueError:
            continue
        if version == "v1":
            for key in keys:
                if hmac.compare_digest(hmac.new(key, content, hashlib.sha256).digest(), raw):
                    return parse_strict(data)
        elif version == "v1a" and len(raw) == 64:
            for verifier in verifiers:
                if verifier.verify(content, raw.hex()):
                    return parse_strict(data)
    raise VerificationError("no signature verifies")
