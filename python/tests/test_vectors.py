"""The shared vectors of testdata/vectors: canonical bytes and signatures
identical to the Rust core's (and to the seed's, which generated them)."""

from __future__ import annotations

import json

import pytest

import lacre
from lacre.wire import envelope_fields, response_fields

from conftest import VECTORS

CANONICAL = json.loads((VECTORS / "canonical.json").read_text())
SIGNATURES = json.loads((VECTORS / "signatures.json").read_text())
ED25519 = json.loads((VECTORS / "ed25519.json").read_text())


def test_the_vector_files_are_whole() -> None:
    assert len(CANONICAL["cases"]) == 651
    assert len(SIGNATURES["cases"]) == 60
    assert (len(ED25519["keys"]), len(ED25519["cases"])) == (25, 6)


@pytest.mark.parametrize("case", CANONICAL["cases"], ids=lambda c: c["name"])
def test_canonical(case: dict) -> None:  # type: ignore[type-arg]
    assert lacre.canonical(lacre.parse_strict(case["input"])) == case["canonical"].encode()


@pytest.mark.parametrize("case", SIGNATURES["cases"], ids=lambda c: c["name"])
def test_signatures(case: dict) -> None:  # type: ignore[type-arg]
    keys = SIGNATURES["keys"]
    message = lacre.parse_strict(case["message"])
    fields = envelope_fields(message) if case["kind"] == "envelope" else response_fields(message)
    signed = lacre.canonical(fields)
    assert signed == case["signed_bytes"].encode()
    secret = keys["hmac_client_secret"] if case["hmac_key"] == "client" else keys["hmac_server_secret"]
    assert lacre.Key.hmac(secret).sign(signed) == case["hmac_sha256"]
    ed = lacre.Key.ed25519(keys["ed25519_seed_hex"])
    assert ed.sign(signed) == case["ed25519"]
    assert lacre.Verifier.ed25519(keys["ed25519_public_hex"]).verify(signed, case["ed25519"])
    assert lacre.Verifier.hmac(secret).verify(signed, case["hmac_sha256"])
    # One flipped bit fails both.
    bad = signed.replace(b"mcp/0.1", b"mcp/0.2")
    assert not lacre.Verifier.hmac(secret).verify(bad, case["hmac_sha256"])
    assert not lacre.Verifier.ed25519(keys["ed25519_public_hex"]).verify(bad, case["ed25519"])


def test_strict_parsing_refuses_what_lacre_refuses() -> None:
    for text in ['{"a":1,"a":2}', '{"a":NaN}', '[Infinity]']:
        with pytest.raises(ValueError):
            lacre.parse_strict(text)


def test_keys_do_not_show_their_secrets() -> None:
    assert "client_secret" not in repr(lacre.Key.hmac("client_secret_key_456"))
    assert "server_secret" not in repr(lacre.Verifier.hmac("server_secret_key_123"))


@pytest.mark.parametrize("case", ED25519["keys"], ids=lambda c: c["name"])
def test_strict_ed25519_keys(case: dict) -> None:  # type: ignore[type-arg]
    if case["accept"]:
        lacre.Verifier.ed25519(case["public_hex"])
    else:
        with pytest.raises(lacre.UsageError, match="invalid Ed25519 public key"):
            lacre.Verifier.ed25519(case["public_hex"])


@pytest.mark.parametrize("case", ED25519["cases"], ids=lambda c: c["name"])
def test_strict_ed25519_signatures(case: dict) -> None:  # type: ignore[type-arg]
    message = bytes.fromhex(case["message_hex"])
    if case["why"] == "small_order_a":
        # Refused as a key, before any signature is looked at.
        with pytest.raises(lacre.UsageError, match="small order"):
            lacre.Verifier.ed25519(case["public_hex"])
        return
    verifier = lacre.Verifier.ed25519(case["public_hex"])
    assert verifier.verify(message, case["signature_hex"]) is case["accept"]
