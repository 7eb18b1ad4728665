"""Canonical JSON, keys, envelopes and reply verification (SPEC §3–§6).

Canonical JSON is CPython's ``json.dumps(obj, separators=(",", ":"),
sort_keys=True)`` by definition, so it is computed here exactly that way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Type, TypeVar, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .errors import OutcomeUnknownError, ServerError, UsageError, VerificationError

VERSION = "mcp/0.1"
DEFAULT_MAX_SKEW_MS = 300_000
REQUEST_BINDING = "request_sha256"
# Codes a copy of a request could obtain after the original had run (§6.5).
_NO_OUTCOME = {"replayed_nonce", "stale_timestamp", "overloaded", "store_unavailable", "too_large"}
_HEX = set("0123456789abcdef")

JSON = Any


def canonical(obj: JSON) -> bytes:
    """The canonical bytes of a JSON value (§3)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def parse_strict(data: Union[bytes, str]) -> JSON:
    """Parses JSON as lacre does: no duplicate keys, no NaN or Infinity."""
    return json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)


def _is_hex(s: str, n: int) -> bool:
    return len(s) == n and set(s) <= _HEX


def _text_bytes(x: Union[bytes, str]) -> bytes:
    """An HMAC secret: text is its UTF-8 bytes."""
    return x.encode() if isinstance(x, str) else x


def _hex_bytes(x: Union[bytes, str]) -> bytes:
    """Ed25519 key material: text is hex."""
    return bytes.fromhex(x.strip()) if isinstance(x, str) else x


# Strict Ed25519 (SPEC §5.2), for what OpenSSL does not check: points are
# read from their 32-byte encoding (y in the low 255 bits, x's sign in the
# top bit) on -x^2 + y^2 = 1 + d x^2 y^2 over GF(2^255 - 19).
_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P


def _sqrt(a: int) -> Optional[int]:
    a %= _P
    x = pow(a, (_P + 3) // 8, _P)
    if x * x % _P != a:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    return x if x * x % _P == a else None


def _small_order_ys() -> frozenset[int]:
    """The y coordinates of the eight points P with 8 P = identity: 1 (the
    identity), p - 1 (order 2), 0 (order 4) and the roots of
    d y^4 + 2 y^2 - 1 = 0 (order 8: doubling gives y = 0 exactly when
    y^2 = -x^2). A point shares its y only with its negation, which has the
    same order, so the y alone tells."""
    ys = {0, 1, _P - 1}
    root = _sqrt(1 + _D)
    assert root is not None
    for y2 in (-1 + root, -1 - root):
        y = _sqrt(y2 * pow(_D, _P - 2, _P))
        if y is not None:
            ys |= {y, _P - y}
    return frozenset(ys)


_SMALL_ORDER_YS = _small_order_ys()


def ed25519_point_problem(encoding: bytes) -> Optional[str]:
    """Why a 32-byte Ed25519 point encoding (a public key, or a signature's
    ``R``) is refused, or None: not canonically encoded (y >= p, or x = 0
    with the sign bit set), not a curve point, or of small order."""
    n = int.from_bytes(encoding, "little")
    y = n & (2**255 - 1)
    if y >= _P or (n >> 255 and y in (1, _P - 1)):
        return "not canonically encoded"
    if _sqrt((y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)) is None:
        return "not a curve point"
    if y in _SMALL_ORDER_YS:
        return "small order"
    return None


_K = TypeVar("_K", bound="_KeyBytes")


class _KeyBytes:
    """An algorithm and its key bytes, checked: what a signing key and a
    verifying key share."""

    _ED25519_LENGTH = "a 32-byte key"

    def __init__(self, alg: str, material: bytes) -> None:
        if alg == "hmac-sha256":
            if not material:
                raise UsageError("an HMAC secret must not be empty")
        elif alg == "ed25519":
            if len(material) != 32:
                raise UsageError(f"an Ed25519 {self._ED25519_LENGTH}")
            self._load_ed25519(material)
        else:
            raise UsageError(f"unknown algorithm {alg!r}")
        self.alg = alg
        self._material = material

    def _load_ed25519(self, material: bytes) -> None:
        raise NotImplementedError

    @classmethod
    def hmac(cls: Type[_K], secret: Union[bytes, str]) -> _K:
        """An HMAC-SHA256 key: the secret's bytes (a str is taken as UTF-8)."""
        return cls("hmac-sha256", _text_bytes(secret))

    @classmethod
    def ed25519(cls: Type[_K], key: Union[bytes, str]) -> _K:
        """An Ed25519 key of 32 bytes, or 64 hex digits: a private key's
        seed for a :class:`Key`, a public key for a :class:`Verifier`."""
        return cls("ed25519", _hex_bytes(key))


class Key(_KeyBytes):
    """A signing key: an HMAC secret, or an Ed25519 private key (a 32-byte seed).

    Its bytes never appear in its ``repr``.
    """

    _ED25519_LENGTH = "private key is a 32-byte seed"
    _private: Optional[Ed25519PrivateKey] = None

    def _load_ed25519(self, material: bytes) -> None:
        self._private = Ed25519PrivateKey.from_private_bytes(material)

    def sign(self, message: bytes) -> str:
        if self._private is not None:
            return self._private.sign(message).hex()
        return hmac.new(self._material, message, hashlib.sha256).hexdigest()

    def verifier(self) -> "Verifier":
        if self._private is not None:
            from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

            raw = self._private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            return Verifier.ed25519(raw)
        return Verifier("hmac-sha256", self._material)

    def __repr__(self) -> str:
        return f"Key(alg={self.alg!r}, <secret>)"


class Verifier(_KeyBytes):
    """What a client trusts a server with: an HMAC secret or an Ed25519 public key."""

    _ED25519_LENGTH = "public key is 32 bytes"
    _public: Optional[Ed25519PublicKey] = None

    def _load_ed25519(self, material: bytes) -> None:
        problem = ed25519_point_problem(material)
        if problem is not None:
            raise UsageError(f"invalid Ed25519 public key: {problem}")
        self._public = Ed25519PublicKey.from_public_bytes(material)

    def verify(self, message: bytes, signature: str) -> bool:
        if self._public is not None:
            if not _is_hex(signature, 128):
                return False
            raw = bytes.fromhex(signature)
            # OpenSSL refuses S >= L; a small-order or non-canonical R is ours to refuse.
            if ed25519_point_problem(raw[:32]) is not None:
                return False
            try:
                self._public.verify(raw, message)
                return True
            except InvalidSignature:
                return False
        if not _is_hex(signature, 64):
            return False
        expected = hmac.new(self._material, message, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    def fingerprint_sha256(self) -> str:
        """SHA-256 of the Ed25519 public key bytes, hex (§5.4)."""
        return hashlib.sha256(self._material).hexdigest()

    def __repr__(self) -> str:
        return f"Verifier(alg={self.alg!r}, <key>)"


def envelope_fields(env: Dict[str, Any]) -> Dict[str, Any]:
    """The signed fields of an envelope, defaults filled in (§5.1)."""
    return {
        "args": env.get("args", {}),
        "client_id": env["client_id"],
        "nonce": env["nonce"],
        "request_id": env["request_id"],
        "server_id": env["server_id"],
        "tool": env["tool"],
        "ts_ms": env["ts_ms"],
        "v": env.get("v", VERSION),
    }


def sign_envelope(
    key: Key,
    *,
    client_id: str,
    server_id: str,
    tool: str,
    args: Optional[Dict[str, Any]] = None,
    request_id: Optional[str] = None,
    ts_ms: Optional[int] = None,
    nonce: Optional[str] = None,
) -> Dict[str, Any]:
    """A signed envelope: fresh ``request_id`` and ``nonce`` unless given."""
    env = {
        "v": VERSION,
        "request_id": request_id or str(uuid.uuid4()),
        "ts_ms": int(time.time() * 1000) if ts_ms is None else ts_ms,
        "client_id": client_id,
        "server_id": server_id,
        "tool": tool,
        "args": {} if args is None else args,
        "nonce": nonce or str(uuid.uuid4()),
    }
    env["signature"] = key.sign(canonical(envelope_fields(env)))
    return env


_RESPONSE_FIELDS = {"v", "request_id", "ts_ms", "ok", "server_id", "status", "result", "error", "signature"}
_STATUSES = {"ok", "accepted", "running", "done", "error"}


def _check_response_shape(resp: Any) -> Dict[str, Any]:
    if not isinstance(resp, dict):
        raise VerificationError("reply is not a JSON object")
    unknown = set(resp) - _RESPONSE_FIELDS
    if unknown:
        raise VerificationError(f"reply has unknown members {sorted(unknown)}")
    for name, types in (
        ("request_id", str), ("server_id", str), ("status", str), ("signature", str),
    ):
        if not isinstance(resp.get(name), types):
            raise VerificationError(f"reply member {name} is missing or not a string")
    if not isinstance(resp.get("ok"), bool):
        raise VerificationError("reply member ok is missing or not a boolean")
    ts = resp.get("ts_ms")
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise VerificationError("reply member ts_ms is missing or not an integer")
    if resp.get("v", VERSION) != VERSION:
        raise VerificationError(f"reply version {resp.get('v')!r} is not {VERSION}")
    if resp["status"] not in _STATUSES:
        raise VerificationError(f"reply status {resp['status']!r} is unknown")
    result, error = resp.get("result"), resp.get("error")
    if result is not None and not isinstance(result, dict):
        raise VerificationError("reply result is neither an object nor null")
    if error is not None and not isinstance(error, str):
        raise VerificationError("reply error is neither a string nor null")
    return resp


def response_fields(resp: Dict[str, Any]) -> Dict[str, Any]:
    """The signed fields of a response, defaults filled in (§5.1)."""
    return {
        "error": resp.get("error"),
        "ok": resp["ok"],
        "request_id": resp["request_id"],
        "result": resp.get("result"),
        "server_id": resp["server_id"],
        "status": resp["status"],
        "ts_ms": resp["ts_ms"],
        "v": resp.get("v", VERSION),
    }


@dataclass(frozen=True)
class Sent:
    """What a client sent, to judge a reply against."""

    body: bytes
    request_id: str
    server_id: str


def verify_reply(
    body: Union[bytes, str],
    server: Verifier,
    sent: Sent,
    *,
    now_ms: Optional[int] = None,
    max_skew_ms: int = DEFAULT_MAX_SKEW_MS,
) -> Dict[str, Any]:
    """Judges a reply (SPEC §6.3, §6.5): the verified response of a success.

    Raises :class:`VerificationError` for a reply that is not the server's
    or not for this request, :class:`ServerError` for a verified error that
    tells the outcome, :class:`OutcomeUnknownError` for one that does not.
    """
    try:
        resp = _check_response_shape(parse_strict(body))
    except (ValueError, UnicodeDecodeError) as e:
        raise VerificationError(f"reply is not valid JSON: {e}") from None
    if not server.verify(canonical(response_fields(resp)), resp["signature"]):
        raise VerificationError("reply signature does not verify")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(resp["ts_ms"] - now) > max_skew_ms:
        raise VerificationError(f"reply timestamp {resp['ts_ms']} is outside ±{max_skew_ms} ms")
    is_error = resp["status"] == "error"
    if is_error == resp["ok"]:
        raise VerificationError("reply ok and status disagree")
    text = resp.get("error") or ""
    code, _, message = text.partition(": ")
    binding = (resp.get("result") or {}).get(REQUEST_BINDING) if is_error else None
    bound = False
    if isinstance(binding, str):
        if binding != hashlib.sha256(sent.body).hexdigest():
            raise VerificationError("reply answers other bytes than this request's")
        bound = True
    if resp["server_id"] != sent.server_id and not (bound and code == "wrong_server"):
        raise VerificationError(f"reply is from server {resp['server_id']!r}, not {sent.server_id!r}")
    if not is_error:
        if resp["request_id"] != sent.request_id:
            raise VerificationError("reply answers another request_id")
        return resp
    if not bound and resp["request_id"] and resp["request_id"] != sent.request_id:
        raise VerificationError("reply answers another request_id")
    if bound and code not in _NO_OUTCOME:
        raise ServerError(code, message, resp)
    raise OutcomeUnknownError(
        f"{text} (the request may have reached the server)", code=code or None
    )
