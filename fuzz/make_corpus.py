#!/usr/bin/env python3
"""Writes the committed seed corpus of the fuzz targets from the golden vectors.

    python3 fuzz/make_corpus.py

Reads testdata/vectors/{canonical,rejects,signatures}.json and writes one file
per input to fuzz/corpus/<target>/seed-<sha1 of the content>. Existing
`seed-*` files are replaced, except `seed-crash-*` (inputs that once crashed a
target, kept by hand as regression seeds). Standard library only; the
output depends only on the vectors, so running it twice changes nothing.

Targets and their seeds:
  canonical_roundtrip  every canonical.json `input` and rejects.json `input_hex`
  envelope_parse       every signatures.json `message`, unsigned and with its
                       HMAC signature as "signature", plus envelopes and
                       responses broken one field at a time
  verify_pipeline      the signed envelopes and responses, the envelopes also
                       re-signed by the Ed25519 client, and a few envelopes
                       signed here for both clients at ts_ms 1700000000000

The keys are those of fuzz/src/lib.rs: HMAC client "client-001" with secret
"client_secret_key_456", Ed25519 client "client-ed25519" with seed [1]*32,
server "mcp-server-001" with HMAC secret "server_secret_key_123".
"""

import hashlib
import hmac
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(ROOT, "testdata", "vectors")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")

NOW_MS = 1700000000000
SERVER_ID = "mcp-server-001"
HMAC_CLIENT = ("client-001", b"client_secret_key_456")
ED25519_CLIENT = ("client-ed25519", bytes([1] * 32))
HMAC_SERVER_SECRET = b"server_secret_key_123"


# --- Ed25519 signing (RFC 8032, section 6), enough to sign seeds. ----------

_P = 2**255 - 19
_Q = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _inv(x):
    return pow(x, _P - 2, _P)


def _add(a, b):
    e_a = (a[1] - a[0]) * (b[1] - b[0]) % _P
    e_b = (a[1] + a[0]) * (b[1] + b[0]) % _P
    c = 2 * a[3] * b[3] * _D % _P
    d = 2 * a[2] * b[2] % _P
    e, f, g, h = e_b - e_a, d - c, d + c, e_b + e_a
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s, point):
    acc = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            acc = _add(acc, point)
        point = _add(point, point)
        s >>= 1
    return acc


def _recover_x(y, sign):
    x2 = (y * y - 1) * _inv(_D * y * y + 1)
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x & 1) != sign:
        x = _P - x
    return x


def _compress(point):
    zinv = _inv(point[2])
    x, y = point[0] * zinv % _P, point[1] * zinv % _P
    return int.to_bytes(y | ((x & 1) << 255), 32, "little")


_GY = 4 * _inv(5) % _P
_GX = _recover_x(_GY, 0)
_G = (_GX, _GY, 1, _GX * _GY % _P)


def _hash_int(data):
    return int.from_bytes(hashlib.sha512(data).digest(), "little") % _Q


def ed25519_public(seed):
    h = hashlib.sha512(seed).digest()
    a = (int.from_bytes(h[:32], "little") & ((1 << 254) - 8)) | (1 << 254)
    return _compress(_mul(a, _G))


def ed25519_sign(seed, msg):
    h = hashlib.sha512(seed).digest()
    a = (int.from_bytes(h[:32], "little") & ((1 << 254) - 8)) | (1 << 254)
    public = _compress(_mul(a, _G))
    r = _hash_int(h[32:] + msg)
    big_r = _compress(_mul(r, _G))
    s = (r + _hash_int(big_r + public + msg) * a) % _Q
    return (big_r + int.to_bytes(s, 32, "little")).hex()


# --- Messages. ---------------------------------------------------------------


def canonical(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def hmac_hex(secret, msg):
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def with_signature(message, signature):
    """The message text with `"signature": "<hex>"` added as its last field,
    keeping the rest of the text (spacing, key order) as it was."""
    end = message.rindex("}")
    body = message[:end].rstrip()
    sep = "" if body.endswith("{") else ", "
    return f'{body}{sep}"signature": "{signature}"{message[end:]}'


def sign_payload(payload, client):
    """`payload` (every field but `signature`) signed by `client`."""
    payload = dict(payload, client_id=client)
    msg = canonical(payload)
    if client == HMAC_CLIENT[0]:
        sig = hmac_hex(HMAC_CLIENT[1], msg)
    else:
        sig = ed25519_sign(ED25519_CLIENT[1], msg)
    return canonical(dict(payload, signature=sig))


def fresh_envelopes():
    """A few envelopes at the fuzzer's clock, one per tool shape."""
    args = [
        ("batch_sum", {"numbers": [10, 20, 30]}),
        ("server_identity", {}),
        ("start_long_task", {"seconds": 2, "payload": {"data": "complete"}}),
        ("poll_job", {"job_id": "00000000-0000-4000-8000-0000000000aa"}),
        ("batch_sum", {"numbers": [1.5, -0.0, 1e-07, 12345678901234567890]}),
        ("echo", {"text": "caf\u00e9 \U0001f600 \"q\" \\ \n", "nested": [[{"a": None}], True]}),
    ]
    out = []
    for i, (tool, a) in enumerate(args):
        payload = {
            "v": "mcp/0.1",
            "request_id": f"00000000-0000-4000-8000-1000000000{i:02d}",
            "ts_ms": NOW_MS,
            "client_id": "",
            "server_id": SERVER_ID,
            "tool": tool,
            "args": a,
            "nonce": f"11111111-2222-4333-8444-1000000000{i:02d}",
        }
        for client in (HMAC_CLIENT[0], ED25519_CLIENT[0]):
            out.append(sign_payload(payload, client))
    return out


def broken_messages():
    """Envelopes and responses that break one rule each."""
    env = {
        "v": "mcp/0.1",
        "request_id": "r1",
        "ts_ms": NOW_MS,
        "client_id": HMAC_CLIENT[0],
        "server_id": SERVER_ID,
        "tool": "batch_sum",
        "args": {"numbers": [1, 2]},
        "nonce": "n1",
        "signature": "00" * 32,
    }
    resp = {
        "v": "mcp/0.1",
        "request_id": "r1",
        "ts_ms": NOW_MS,
        "ok": True,
        "server_id": SERVER_ID,
        "status": "ok",
        "result": {"sum": 3},
        "error": None,
        "signature": "00" * 32,
    }
    out = []
    for base in (env, resp):
        for field in base:
            out.append(canonical({k: v for k, v in base.items() if k != field}))
            for bad in (None, 1, 1.5, "", "x" * 129, [], {}, True, 2**64):
                out.append(canonical(dict(base, **{field: bad})))
        out.append(canonical(dict(base, extra=1)))
        out.append(canonical(dict(base, v="mcp/0.2")))
    for status in ("accepted", "running", "done", "error", "bogus"):
        out.append(canonical(dict(resp, status=status)))
    return out


def load(name):
    with open(os.path.join(VECTORS, name), encoding="utf-8") as f:
        return json.load(f)["cases"]


def check_ed25519(signatures_file):
    """Checks the Ed25519 code above against the vectors' Ed25519 key."""
    with open(os.path.join(VECTORS, signatures_file), encoding="utf-8") as f:
        doc = json.load(f)
    seed = bytes.fromhex(doc["keys"]["ed25519_seed_hex"])
    if ed25519_public(seed).hex() != doc["keys"]["ed25519_public_hex"]:
        sys.exit("make_corpus.py: Ed25519 public key does not match the vectors")
    for case in doc["cases"][:3]:
        if ed25519_sign(seed, case["signed_bytes"].encode()) != case["ed25519"]:
            sys.exit(f"make_corpus.py: Ed25519 signature of {case['name']} does not match")


def build():
    check_ed25519("signatures.json")
    corpus = {"canonical_roundtrip": [], "envelope_parse": [], "verify_pipeline": []}

    for case in load("canonical.json"):
        corpus["canonical_roundtrip"].append(case["input"].encode())
    for case in load("rejects.json"):
        corpus["canonical_roundtrip"].append(bytes.fromhex(case["input_hex"]))

    for case in load("signatures.json"):
        message = case["message"]
        signed = with_signature(message, case["hmac_sha256"]).encode()
        corpus["envelope_parse"] += [message.encode(), signed]
        corpus["verify_pipeline"].append(signed)
        if case["kind"] == "envelope":
            payload = json.loads(case["signed_bytes"])
            corpus["verify_pipeline"].append(sign_payload(payload, ED25519_CLIENT[0]))
    corpus["envelope_parse"] += broken_messages()
    corpus["verify_pipeline"] += fresh_envelopes()
    return corpus


def write(corpus):
    total_files = total_bytes = 0
    for target, inputs in sorted(corpus.items()):
        directory = os.path.join(CORPUS, target)
        os.makedirs(directory, exist_ok=True)
        for name in os.listdir(directory):
            if name.startswith("seed-") and not name.startswith("seed-crash-"):
                os.remove(os.path.join(directory, name))
        unique = {hashlib.sha1(data).hexdigest(): data for data in inputs}
        for digest, data in unique.items():
            with open(os.path.join(directory, f"seed-{digest}"), "wb") as f:
                f.write(data)
        size = sum(len(d) for d in unique.values())
        print(f"{target}: {len(unique)} files, {size} bytes")
        total_files += len(unique)
        total_bytes += size
    print(f"total: {total_files} files, {total_bytes} bytes")


if __name__ == "__main__":
    write(build())
