#!/usr/bin/env python3
"""Golden test vectors for lacre, computed by CPython.

Regenerate (from the repository root, with python3 >= 3.11, ``pydantic`` v2
and ``cryptography`` installed, see testdata/requirements.txt)::

    python3 testdata/gen_vectors.py

It (re)writes four files under testdata/vectors/ and is deterministic: no
clock, no uuid4, no OS randomness (the "random-looking" variations come from
a SHA-256 counter stream), so re-running it gives byte-identical files.

* canonical.json   -- JSON texts (often deliberately non-canonical) and the
  bytes of ``json.dumps(json.loads(text), separators=(",", ":"),
  sort_keys=True)``: the canonical form that gets signed.
* rejects.json     -- inputs the Rust parser must refuse, with the
  ``JsonErrorKind`` variant it must return, and what CPython's
  ``json.loads`` does with the same input.
* signatures.json  -- envelopes and responses built with the seed's own
  pydantic models, signed exactly as the seed signs (``model_dump()``, drop
  ``signature``, canonical JSON), with HMAC-SHA256 and Ed25519.
* ed25519.json     -- public keys and signatures that strict Ed25519 refuses
  (small order, non-canonical encodings, S >= L), built with the curve
  arithmetic below and each checked to pass the lax cofactorless equation.

The Rust side is crates/lacre-proto/tests/it/vectors.rs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import struct
import sys
from decimal import Decimal
from fractions import Fraction
from typing import Any, Dict, List, Optional

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors")

# CPython's defaults matter for the vectors (integer digit limit, recursion).
assert sys.version_info >= (3, 11), "needs python3 >= 3.11"
assert sys.get_int_max_str_digits() == 4300, "run with the default int_max_str_digits"


# The seed's helpers and models, from the seed's own code (interop/seed.py).
# Every vector passes request_id, ts_ms and nonce explicitly: a default taken
# from the clock or uuid4 would change the files, and CI checks that they do
# not change.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "interop"))
from seed import MCPEnvelope, MCPResponse, _canonical_json, _hmac_hex  # noqa: E402


# --------------------------------------------------------------------------
# Deterministic "randomness".
# --------------------------------------------------------------------------


class Rng:
    """A SHA-256 counter stream: stable across Python versions and runs."""

    def __init__(self, label: str):
        self._seed = label.encode()
        self._counter = 0
        self._buf = b""

    def bytes(self, n: int) -> bytes:
        while len(self._buf) < n:
            block = hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
            self._buf += block
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def below(self, n: int) -> int:
        assert n > 0
        # Rejection sampling on 64-bit draws: unbiased and deterministic.
        limit = (1 << 64) - ((1 << 64) % n)
        while True:
            x = int.from_bytes(self.bytes(8), "big")
            if x < limit:
                return x % n

    def chance(self, num: int, den: int) -> bool:
        return self.below(den) < num

    def choice(self, seq):
        return seq[self.below(len(seq))]

    def shuffled(self, seq):
        items = list(seq)
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]
        return items

    def double(self) -> float:
        """A finite double drawn uniformly over bit patterns."""
        while True:
            (x,) = struct.unpack("<d", self.bytes(8))
            if math.isfinite(x):
                return x


def canonical_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


# --------------------------------------------------------------------------
# Messy (valid, non-canonical) JSON rendering.
# --------------------------------------------------------------------------

WHITESPACE = ["", "", "", " ", "  ", "\n", "\t", "\r\n", " \t\n\r ", "\n    "]
SHORT_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}


def hex4(rng: Rng, unit: int) -> str:
    digits = "%04x" % unit
    style = rng.below(3)
    if style == 0:
        return digits
    if style == 1:
        return digits.upper()
    return "".join(d.upper() if rng.chance(1, 2) else d for d in digits)


def u_escape(rng: Rng, ch: str) -> str:
    cp = ord(ch)
    if cp < 0x10000:
        return "\\u" + hex4(rng, cp)
    cp -= 0x10000
    return "\\u" + hex4(rng, 0xD800 + (cp >> 10)) + "\\u" + hex4(rng, 0xDC00 + (cp & 0x3FF))


def messy_string(rng: Rng, s: str) -> str:
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if ch in ('"', "\\") or cp < 0x20:
            # Must be escaped: short form when there is one, else \uXXXX.
            if ch in SHORT_ESCAPES and rng.chance(2, 3):
                out.append("\\" + SHORT_ESCAPES[ch])
            else:
                out.append(u_escape(rng, ch))
        elif ch == "/":
            out.append(rng.choice(["/", "\\/", "\\u002f", "\\u002F"]))
        elif rng.chance(1, 4):
            out.append(u_escape(rng, ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def messy_float(rng: Rng, f: float) -> str:
    """Another decimal spelling of exactly the same decimal number as repr(f)."""
    r = repr(f)
    sign = "-" if r.startswith("-") else ""
    mant, _, exp = r.lstrip("-").partition("e")
    exp = int(exp or "0")
    int_part, _, frac = mant.partition(".")
    digits = (int_part + frac).lstrip("0") or "0"
    # value = digits * 10**e10
    e10 = exp - len(frac)
    if digits != "0":
        digits_stripped = digits.rstrip("0")
        e10 += len(digits) - len(digits_stripped)
        digits = digits_stripped
    style = rng.below(4)
    e_char = rng.choice(["e", "E"])
    if style == 0:
        # repr itself, possibly with the exponent spelled differently.
        if "e" in r:
            m, _, x = r.partition("e")
            xs = x.lstrip("+-")
            xsign = "-" if x.startswith("-") else rng.choice(["", "+"])
            return m + e_char + xsign + "0" * rng.below(3) + xs
        return r + "0" * rng.below(3)
    if style == 1:
        # integer mantissa with an exponent: 15e-1 (no padding for zero: 00e0 is not JSON)
        k = rng.below(3) if digits != "0" else 0
        return sign + digits + "0" * k + e_char + str(e10 - k)
    if style == 2:
        # 0.ddd with an exponent and trailing zeros
        x = e10 + len(digits)
        xsign = rng.choice(["", "+"]) if x >= 0 else ""
        return sign + "0." + digits + "0" * rng.below(3) + e_char + xsign + str(x)
    # d.ddd with exponent
    frac_digits = digits[1:] + "0" * rng.below(2)
    text = sign + digits[0] + ("." + frac_digits if frac_digits else ".0") + e_char + str(e10 + len(digits) - 1)
    return text


def messy(rng: Rng, value: Any) -> str:
    ws = lambda: rng.choice(WHITESPACE)  # noqa: E731
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if value == 0 and rng.chance(1, 3):
            return "-0"
        return str(value)
    if isinstance(value, float):
        return messy_float(rng, value)
    if isinstance(value, str):
        return messy_string(rng, value)
    if isinstance(value, list):
        if not value:
            return "[" + ws() + "]"
        return "[" + ",".join(ws() + messy(rng, v) + ws() for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{" + ws() + "}"
        keys = rng.shuffled(list(value))
        return "{" + ",".join(ws() + messy_string(rng, k) + ws() + ":" + ws() + messy(rng, value[k]) + ws() for k in keys) + "}"
    raise TypeError(type(value))


# --------------------------------------------------------------------------
# Interesting values.
# --------------------------------------------------------------------------

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)

INTERESTING_STRINGS = [
    "",
    "a",
    "A",
    "z",
    "hello world",
    "\u00e9",
    "caf\u00e9",
    "\u65e5\u672c\u8a9e",
    "\U0001F600",
    "smile \U0001F600 twice \U0001F600",
    "\U00010000",
    "\U0010FFFF",
    "\uffff",
    "\ufffe",
    "\ufffd",
    "\ufeff",
    "\ud7ff",
    "\ue000",
    "\u2028\u2029",
    "\x00",
    "nul\x00inside",
    "\x1f",
    "\x7f",
    "\x80\xff",
    "tab\there",
    "line\nbreak\r\n",
    'quote " here',
    "back\\slash",
    "sl/ash",
    "</script>",
    "\b\f",
    "mixed \u00e9\U0001F600\x01/\\\"",
]

INTERESTING_KEYS = [
    "",
    "a",
    "b",
    "A",
    "Z",
    "z",
    "aa",
    "a\x00",
    "ab",
    "\x00",
    "\x7f",
    "\u00e9",
    "\u00ff",
    "\u0100",
    "\ud7ff",
    "\ue000",
    "\uffff",
    "\U00010000",
    "\U0001F600",
    "\U0010FFFF",
    "key with space",
    "k/ey",
    'k"ey',
    "k\\ey",
    "10",
    "9",
    "-1",
    "args",
    "v",
]

INTERESTING_INTS = [0, 1, -1, 7, 42, -42, 1000, I64_MAX, I64_MIN, I64_MAX + 1, I64_MIN - 1, 2**64 - 1, 2**64, 10**20, -(10**25)]

INTERESTING_FLOATS = [
    0.0,
    -0.0,
    0.5,
    -1.5,
    0.1,
    0.30000000000000004,
    1 / 3,
    100.0,
    1e16,
    9999999999999998.0,
    1e-4,
    1e-5,
    1.5e300,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    1e22,
    1e21,
    123456789012345678.0,
    3.141592653589793,
    2.718281828459045,
    6.02214076e23,
    -2.5e-7,
]


def gen_value(rng: Rng, depth: int) -> Any:
    kind = rng.below(10 if depth < 4 else 6)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.choice(INTERESTING_INTS)
    if kind == 2:
        return rng.choice(INTERESTING_FLOATS) if rng.chance(1, 2) else rng.double()
    if kind in (3, 4):
        return rng.choice(INTERESTING_STRINGS)
    if kind == 5:
        # A string assembled from random code points of every class.
        pools = [(0x00, 0x20), (0x20, 0x7F), (0x7F, 0x100), (0x100, 0xD800), (0xE000, 0x10000), (0x10000, 0x110000)]
        chars = []
        for _ in range(rng.below(12)):
            lo, hi = rng.choice(pools)
            chars.append(chr(lo + rng.below(hi - lo)))
        return "".join(chars)
    if kind in (6, 7):
        return [gen_value(rng, depth + 1) for _ in range(rng.below(5))]
    obj = {}
    for _ in range(rng.below(6)):
        key = rng.choice(INTERESTING_KEYS) if rng.chance(2, 3) else rng.choice(INTERESTING_STRINGS)
        obj[key] = gen_value(rng, depth + 1)
    return obj


def boundary_floats() -> List[str]:
    """Decimal literals d*10**k lying exactly halfway between two doubles
    whose shortest repr is that very literal (round-half-even picked the
    even neighbour, and the repr has to use the inclusive rounding interval).
    """
    found = []
    for k in range(15, 31):
        for d in range(1, 10000):
            if d % 10 == 0:
                continue
            lit = f"{d}e{k}"
            x = float(lit)
            fx, fs = Fraction(x), Fraction(d) * 10**k
            if fx == fs:
                continue
            nb = math.nextafter(x, math.inf if fs > fx else -math.inf)
            if fs == (fx + Fraction(nb)) / 2:
                found.append(lit)
    return found


def significant_digits(text: str) -> str:
    return text.lstrip("-").split("e")[0].replace(".", "").lstrip("0").rstrip("0")


def repr_tie(x: float) -> Optional[str]:
    """If the exact value of x lies exactly halfway between the two closest
    decimals of repr(x)'s length (both of which read back as x), say which one
    repr picked: "even_down" (the lower one: a round-half-up formatter gets it
    wrong) or "even_up" (the upper one)."""
    exact = format(abs(Decimal(x)), "f").replace(".", "").lstrip("0").rstrip("0")
    shortest = significant_digits(repr(x))
    if len(exact) != len(shortest) + 1 or not exact.endswith("5"):
        return None
    return "even_down" if shortest == exact[:-1].rstrip("0") else "even_up"


def tie_floats(rng: Rng, per_kind: int) -> List[Any]:
    """Doubles whose shortest repr had to break a tie (round half to even)."""
    found: Dict[str, List[float]] = {"even_down": [], "even_up": []}
    binades = list(range(-30, 52))
    while min(len(v) for v in found.values()) < per_kind:
        p = rng.choice(binades)
        t = rng.below(53)
        m = ((int.from_bytes(rng.bytes(7), "big") & ((1 << 52) - 1)) | (1 << 52)) >> t << t
        x = math.ldexp(m, p - 52)
        if rng.chance(1, 4):
            x = -x
        kind = repr_tie(x)
        if kind and len(found[kind]) < per_kind and x not in found[kind]:
            found[kind].append(x)
    return [(kind, x) for kind in ("even_down", "even_up") for x in found[kind]]


# --------------------------------------------------------------------------
# canonical.json
# --------------------------------------------------------------------------


def no_constants(name: str) -> Any:
    raise AssertionError("canonical input must not contain " + name)


def finite_only(value: Any) -> None:
    if isinstance(value, float):
        assert math.isfinite(value), value
    elif isinstance(value, list):
        for v in value:
            finite_only(v)
    elif isinstance(value, dict):
        for v in value.values():
            finite_only(v)


def canonical_cases() -> List[Dict[str, str]]:
    cases: List[Dict[str, str]] = []
    names = set()

    def add(name: str, text: str) -> None:
        assert name not in names, name
        names.add(name)
        value = json.loads(text, parse_constant=no_constants)
        canon = canonical_text(value)
        # Only inputs the Rust core must accept: finite floats (checked by
        # finite_only), no lone surrogates (must be encodable as UTF-8).
        finite_only(value)
        canon.encode("utf-8")
        text.encode("utf-8")
        cases.append({"name": name, "input": text, "canonical": canon})

    # --- literals and top-level scalars ---
    add("top/null", "null")
    add("top/true", "true")
    add("top/false", "false")
    add("top/true_ws", " \t\r\n true \n")
    add("top/string", '"hello"')
    add("top/string_empty", '""')
    add("top/int", "42")
    add("top/float", "4.5")
    add("top/empty_object", "{}")
    add("top/empty_array", "[]")
    add("top/empty_object_ws", "{ \n\t\r }")
    add("top/empty_array_ws", "[\r\n ]")
    add("top/nested_empties", '[{}, [], {"a": {}, "b": []}, [[]], [{}]]')
    add("top/literals_in_array", "[true,false,null, true ,false , null]")

    # --- whitespace and key order ---
    add("ws/object_spaced", '{ "b" : 1 , "a" : 2 }')
    add("ws/all_four_kinds", '\r\n\t {\n\t"z"\r:\t[ 1 ,\n2\r,\t3 ] ,"a":\n\n\n"x" } \r\n')
    add("ws/between_every_token", ' [ 1 , { "a" : [ true , null ] , "b" : "c" } , [ ] , { } ] ')
    add("ws/trailing_newline", '{"a":1}\n')
    add("ws/leading_spaces", '        ["x"]')
    add("keys/reverse_ascii", '{"z":1,"y":2,"x":3,"b":4,"a":5}')
    add("keys/case", '{"b":1,"B":2,"a":3,"A":4,"_":5,"0":6}')
    add("keys/digits_are_strings", '{"10":1,"9":2,"1":3,"100":4,"-1":5}')
    add("keys/prefixes", '{"ab":1,"a":2,"a\\u0000":3,"":4,"aa":5,"abc":6}')
    add("keys/empty_key", '{"":null}')
    add("keys/nested_sorting", '{"b":{"d":1,"c":2},"a":[{"f":3,"e":4}]}')
    add("keys/latin1_vs_ascii", '{"\\u00e9":1,"z":2,"\\u007f":3,"~":4,"\\u0080":5}')
    add("keys/astral_vs_bmp", '{"\\ud83d\\ude00":1,"\\uffff":2,"z":3}')
    add("keys/astral_vs_bmp_raw", '{"\U0001F600":1,"\uffff":2,"z":3,"\ue000":4}')
    add("keys/astral_vs_private_use", '{"\\uE000":"bmp-pua","\\uD800\\uDC00":"first-astral","\\ud7ff":"before-surrogates"}')
    add("keys/utf16_order_differs", '{"\\uff61":1,"\\ud83d\\ude00":2,"\\ufb01":3,"\\u20ac":4,"\\udbff\\udfff":5}')
    add("keys/all_planes", '{"\\u0000":0,"\\u007f":1,"\\u0800":2,"\\uffff":3,"\\ud800\\udc00":4,"\\udbff\\udfff":5,"\\u0080":6,"\\u07ff":7}')
    add("keys/escaped_specials", '{"k\\"ey":1,"k\\\\ey":2,"k\\/ey":3,"k\\ney":4}')
    add("keys/combining_vs_precomposed", '{"e\\u0301":1,"\\u00e9":2}')
    add("keys/many", "{" + ",".join('"k%03d":%d' % (i, i) for i in reversed(range(200))) + "}")

    # --- string escapes (every control char, DEL, latin-1, BMP, astral) ---
    for cp in range(0x20):
        ch = chr(cp)
        add("str/control_u%04x_escaped" % cp, '"\\u%04x"' % cp)
        if ch in SHORT_ESCAPES:
            add("str/control_u%04x_short" % cp, '"\\' + SHORT_ESCAPES[ch] + '"')
    add("str/control_all_in_one", '"' + "".join("\\u%04X" % cp for cp in range(0x20)) + '"')
    add("str/del_raw", '"\x7f"')
    add("str/del_escaped", '"\\u007F"')
    for cp in (0x80, 0x85, 0x9F, 0xA0, 0xAD, 0xBF, 0xC0, 0xE9, 0xF7, 0xFF):
        add("str/latin1_u%04x_raw" % cp, '"' + chr(cp) + '"')
        add("str/latin1_u%04x_escaped_upper" % cp, '"\\u%04X"' % cp)
    add("str/latin1_all", '"' + "".join(chr(cp) for cp in range(0x80, 0x100)) + '"')
    for cp in (0x100, 0x7FF, 0x800, 0x2028, 0x2029, 0x20AC, 0xD7FF, 0xE000, 0xFDD0, 0xFEFF, 0xFFFD, 0xFFFE, 0xFFFF):
        add("str/bmp_u%04x_raw" % cp, '"' + chr(cp) + '"')
        add("str/bmp_u%04x_escaped" % cp, '"\\u%04x"' % cp)
    for cp in (0x10000, 0x1F600, 0x1D11E, 0x10FFFF, 0xE0001):
        hi, lo = 0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF)
        add("str/astral_u%06x_raw" % cp, '"' + chr(cp) + '"')
        add("str/astral_u%06x_pair_lower" % cp, '"\\u%04x\\u%04x"' % (hi, lo))
        add("str/astral_u%06x_pair_upper" % cp, '"\\u%04X\\u%04X"' % (hi, lo))
    add("str/quote", '"\\""')
    add("str/quote_as_u", '"\\u0022"')
    add("str/backslash", '"\\\\"')
    add("str/backslash_as_u", '"\\u005c"')
    add("str/slash_raw", '"/"')
    add("str/slash_escaped", '"\\/"')
    add("str/slash_as_u", '"\\u002F"')
    add("str/script_tag", '"<\\/script>"')
    add("str/u_escapes_printable_ascii", '"\\u0041\\u0062\\u007e\\u0020"')
    add("str/bom_inside_string", '"\ufeffx"')
    add("str/bom_escaped_leading", '"\\ufeff"')
    add("str/mixed_everything", '"a\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti\\u0001j\\u00e9k\U0001F600l\\uD83D\\uDE00m\x7f"')
    add("str/surrogate_pair_then_text", '"\\ud83d\\ude00abc\\ud83d\\ude01"')
    add("str/long_ascii", '"' + "abcdefghij" * 500 + '"')
    add("str/long_unicode", '"' + "\u00e9\U0001F600\u65e5" * 300 + '"')

    # --- integers ---
    add("int/zero", "0")
    add("int/minus_zero", "-0")
    add("int/minus_zero_in_array", "[-0,0,-0]")
    add("int/one", "1")
    add("int/minus_one", "-1")
    add("int/i64_max", str(I64_MAX))
    add("int/i64_max_minus_1", str(I64_MAX - 1))
    add("int/i64_max_plus_1", str(I64_MAX + 1))
    add("int/i64_min", str(I64_MIN))
    add("int/i64_min_plus_1", str(I64_MIN + 1))
    add("int/i64_min_minus_1", str(I64_MIN - 1))
    add("int/u64_max", str(2**64 - 1))
    add("int/u64_max_plus_1", str(2**64))
    add("int/i128_max", str(2**127 - 1))
    add("int/20_digits", "12345678901234567890")
    add("int/20_digits_negative", "-98765432109876543210")
    add("int/100_digits", "1" + "0" * 99)
    add("int/100_digits_mixed", "".join(str(i % 10) for i in range(1, 101)))
    add("int/400_digits", "9" * 400)
    add("int/400_digits_negative", "-" + "7" * 400)
    add("int/4300_digits", "8" + "1234567890" * 429 + "123456789")
    add("int/4300_digits_negative", "-" + "9" * 4300)
    add("int/big_in_object", '{"n":123456789012345678901234567890,"m":-123456789012345678901234567890}')
    add("int/powers_of_two", "[" + ",".join(str(2**k) for k in range(0, 130, 7)) + "]")

    # --- floats: layout of repr ---
    float_literals = [
        ("zero", "0.0"),
        ("minus_zero", "-0.0"),
        ("zero_exp", "0e0"),
        ("minus_zero_exp", "-0E0"),
        ("minus_zero_long", "-0.000e-10"),
        ("zero_big_exp", "0e99999"),
        ("one", "1.0"),
        ("one_exp", "1e0"),
        ("1E2", "1E2"),
        ("1e2", "1e2"),
        ("1.0e+2", "1.0e+2"),
        ("100e-2", "100e-2"),
        ("10E-1", "10E-1"),
        ("1e16", "1e16"),
        ("1e15", "1e15"),
        ("9999999999999998.0", "9999999999999998.0"),
        ("9999999999999999.0", "9999999999999999.0"),
        ("1e-4", "1e-4"),
        ("0.0001", "0.0001"),
        ("1e-5", "1e-5"),
        ("0.00001", "0.00001"),
        ("0.00012345", "0.00012345"),
        ("0.000012345", "0.000012345"),
        ("1.5e300", "1.5e300"),
        ("5e-324", "5e-324"),
        ("-5e-324", "-5e-324"),
        ("min_normal", "2.2250738585072014e-308"),
        ("max", "1.7976931348623157e308"),
        ("max_negative", "-1.7976931348623157e308"),
        ("max_rounds_down", "1.7976931348623158e308"),
        ("0.1", "0.1"),
        ("one_third", "0.333333333333333314829616256247390992939472198486328125"),
        ("one_third_short", "0.3333333333333333"),
        ("0.30000000000000004", "0.30000000000000004"),
        ("1e22", "1e22"),
        ("1e21", "1e21"),
        ("1e23", "1e23"),
        ("1e-7", "1e-7"),
        ("123456789012345678.0", "123456789012345678.0"),
        ("123.456", "123.456"),
        ("60.0", "60.0"),
        ("1e15_plus_half", "1000000000000000.5"),
        ("2^53", "9007199254740992.0"),
        ("2^53_plus_1_rounds_even", "9007199254740993.0"),
        ("2^53_plus_3_rounds_even", "9007199254740995.0"),
        ("half", "0.5"),
        ("neg_small", "-1.25e-7"),
        ("exp_leading_zeros", "1e0000000000000000000000000000001"),
        ("exp_plus_leading_zeros", "2.5E+007"),
        ("exp_minus_zero", "3e-0"),
        ("int_mantissa_exp", "15e-1"),
        ("long_int_part_float", "1" + "0" * 4400 + "e-4400"),
        ("long_fraction", "0." + "0" * 300 + "1"),
        ("many_digits", "3.14159265358979323846264338327950288419716939937510582097494459"),
        ("tiny_underflow_to_zero", "1e-400"),
        ("tiny_underflow_to_minus_zero", "-1e-400"),
        ("huge_negative_exponent", "1e-99999"),
        ("subnormal_min_times_2", "1e-323"),
        ("subnormal_max", "2.225073858507201e-308"),
        ("subnormal_mid", "1.5e-310"),
        ("subnormal_3", "1.48219693752373786e-323"),
        ("below_half_min_subnormal", "2.4703282292062327e-324"),
        ("above_half_min_subnormal", "2.4703282292062328e-324"),
        # 2**-1075 exactly (= 5**1075 * 10**-1075): a tie, rounds to even 0.0.
        ("exact_half_min_subnormal", "%de-1075" % 5**1075),
        ("exact_half_min_subnormal_plus_tiny", "%d1e-1076" % 5**1075),
        ("exact_half_min_subnormal_negative", "-%de-1075" % 5**1075),
        ("2.2250738585072011e-308", "2.2250738585072011e-308"),
        ("2.2250738585072012e-308", "2.2250738585072012e-308"),
        ("0.1_long", "0.1000000000000000055511151231257827"),
        ("0.1_exact", "0.1000000000000000055511151231257827021181583404541015625"),
        ("one_plus_half_ulp_ties_even", "1.00000000000000011102230246251565404236316680908203125"),
        ("one_plus_just_over_half_ulp", "1.00000000000000011102230246251565404236316680908203126"),
        ("one_plus_just_under_half_ulp", "1.00000000000000011102230246251565404236316680908203124"),
        # Hard decimal->binary cases (Paxson, and ones that tripped parsers).
        ("hard_7.038531e-26", "7.038531e-26"),
        ("hard_8.533e+68", "8.533e+68"),
        ("hard_4.1006e-184", "4.1006e-184"),
        ("hard_9.998e+307", "9.998e+307"),
        ("hard_9.9538452227e-280", "9.9538452227e-280"),
        ("hard_6.47660115e-260", "6.47660115e-260"),
        ("hard_7.4e+47", "7.4e+47"),
        ("hard_5.92e+48", "5.92e+48"),
        ("hard_7.35e+66", "7.35e+66"),
        ("hard_8.32116e+55", "8.32116e+55"),
        ("hard_9007199254740993e0", "9007199254740993e0"),
        ("hard_2.4e-321", "2.4e-321"),
        ("hard_3.3e-322", "3.3e-322"),
        ("hard_4.9e-324", "4.9e-324"),
        ("hard_1.7976931348623157e308_long", "179769313486231570814527423731704356798070567525844996598917476803157260780028538760589558632766878171540458953514382464234321326889464182768467546703537516986049910576551282076245490090389328944075868508455133942304583236903222948165808559332123348274797826204144723168738177180919299881250404026184124858368.0"),
        ("hard_0.1e1", "0.1e1"),
        ("hard_mid_2^-1022_rounding", "2.225073858507201136057409796709131975934819546351645648e-308"),
        ("float_with_int_value_big", "123456789012345678901234567890.0"),
        ("float_1e308", "1e308"),
        ("float_neg_1e-308", "-1e-308"),
    ]
    for name, lit in float_literals:
        add("float/" + name, lit)
    for lit in dict.fromkeys(["1e23"] + boundary_floats()[::160]):
        add("float/inclusive_boundary_" + lit, lit)
    for k in (-1074, -1073, -1030, -1023, -1022, -1021, -100, -53, -1, 0, 1, 52, 53, 54, 63, 64, 100, 1000, 1022, 1023):
        add("float/pow2_%d" % k, repr(2.0**k))
    for k in range(-10, 25, 3):
        add("float/pow10_%d" % k, "1e%d" % k)

    # Floats whose shortest repr has 17 significant digits, and others drawn
    # over the whole bit space (subnormals included).
    rng = Rng("canonical/floats")
    n17 = 0
    while n17 < 40:
        x = rng.double()
        mant = repr(x).lstrip("-").split("e")[0].replace(".", "").strip("0")
        if len(mant) == 17:
            add("float/shortest17_%02d" % n17, repr(x))
            n17 += 1
    for i in range(30):
        x = rng.double()
        add("float/random_bits_%02d" % i, messy_float(rng, x))
    for i in range(15):
        # Subnormals: random mantissa, zero exponent.
        bits = int.from_bytes(rng.bytes(8), "big") & ((1 << 52) - 1)
        x = struct.unpack("<d", struct.pack("<Q", bits | (rng.below(2) << 63)))[0]
        add("float/subnormal_%02d" % i, repr(x))
    for i in range(15):
        # Floats near 1e16 / 1e-4, where repr switches layout.
        base = rng.choice([1e16, 1e-4, 1e-5, 1e15, 1e17])
        x = base
        for _ in range(rng.below(4)):
            x = math.nextafter(x, rng.choice([math.inf, -math.inf]))
        add("float/layout_switch_%02d" % i, repr(x))
    # Ties: the exact value is halfway between the two shortest candidates.
    # CPython's repr (David Gay's dtoa) breaks them to even.
    for lit in ("1997107851181081.25", "111275153569243.125", "894048597157646.25", "0.298023223876953125e-7", "147117772004750.625"):
        add("float/tie_exact_literal_" + lit, lit)
    per_kind: Dict[str, int] = {}
    for kind, x in tie_floats(rng, 20):
        i = per_kind[kind] = per_kind.get(kind, -1) + 1
        add("float/tie_%s_%02d" % (kind, i), messy_float(rng, x))
    for i in range(10):
        a, b = rng.below(1000), rng.below(999) + 1
        add("float/fraction_%02d_%d_over_%d" % (i, a, b), repr(a / b))

    # --- nesting ---
    for depth in (1, 2, 10, 32, 60, 63, 64):
        add("nest/arrays_%d" % depth, "[" * depth + "1" + "]" * depth)
        add("nest/objects_%d" % depth, '{"k":' * (depth - 1) + '{"k":1' + "}" * depth)
    add("nest/mixed_60", '{"a":[' * 30 + "null" + "]}" * 30)
    add("nest/empty_array_60", "[" * 60 + "]" * 60)

    # --- messy renderings of generated documents ---
    rng = Rng("canonical/documents")
    for i in range(120):
        value = gen_value(rng, 0)
        if rng.chance(3, 4) and not isinstance(value, dict):
            value = {"v": value}
        text = messy(rng, value)
        assert canonical_text(json.loads(text)) == canonical_text(value), text
        add("doc/messy_%03d" % i, text)
    for i, s in enumerate(INTERESTING_STRINGS):
        add("doc/string_pool_%02d" % i, messy_string(rng, s))
    obj = {k: i for i, k in enumerate(INTERESTING_KEYS)}
    for i in range(5):
        add("doc/key_pool_shuffled_%d" % i, messy(rng, obj))

    return cases


# --------------------------------------------------------------------------
# rejects.json
# --------------------------------------------------------------------------


def cpython_verdict(raw: bytes) -> str:
    try:
        target: Any = raw.decode("utf-8")
    except UnicodeDecodeError:
        target = raw  # json.loads(bytes): detect_encoding + 'surrogatepass'
    try:
        json.loads(target)
    except (ValueError, RecursionError):
        return "rejects"
    return "accepts"


def reject_cases() -> List[Dict[str, str]]:
    cases: List[Dict[str, str]] = []
    names = set()

    def add(name: str, raw: Any, kind: str) -> None:
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        assert name not in names, name
        names.add(name)
        cases.append({"name": name, "input_hex": raw.hex(), "kind": kind, "cpython": cpython_verdict(raw)})

    # Ambiguous signed meaning: duplicate keys (CPython keeps the last one).
    add("dup/top", '{"a":1,"a":2}', "DuplicateKey")
    add("dup/same_value", '{"a":1,"a":1}', "DuplicateKey")
    add("dup/not_adjacent", '{"a":1,"b":2,"a":3}', "DuplicateKey")
    add("dup/depth_2", '{"x":{"y":1,"y":2}}', "DuplicateKey")
    add("dup/depth_4_in_array", '[[{"k":[{"q":null,"q":null}]}]]', "DuplicateKey")
    add("dup/via_escape", '{"a":1,"\\u0061":2}', "DuplicateKey")
    add("dup/latin1_via_escape", '{"\u00e9":1,"\\u00E9":2}', "DuplicateKey")
    add("dup/astral_via_pair", '{"\U0001F600":1,"\\ud83d\\ude00":2}', "DuplicateKey")
    add("dup/empty_key", '{"":1,"":2}', "DuplicateKey")
    # Lone surrogates (CPython keeps them; no UTF-8 form).
    add("surrogate/lone_high", '"\\ud800"', "LoneSurrogate")
    add("surrogate/lone_low", '"\\udc00"', "LoneSurrogate")
    add("surrogate/lone_high_upper", '"x\\uDBFFy"', "LoneSurrogate")
    add("surrogate/reversed_pair", '"\\ude00\\ud83d"', "LoneSurrogate")
    add("surrogate/high_then_bmp_escape", '"\\ud800\\u0041"', "LoneSurrogate")
    add("surrogate/high_then_high", '"\\ud800\\ud800"', "LoneSurrogate")
    add("surrogate/high_then_text", '"\\ud83dabc"', "LoneSurrogate")
    add("surrogate/high_at_end", '"\\ud83d"', "LoneSurrogate")
    add("surrogate/in_key", '{"\\udfff":1}', "LoneSurrogate")
    # Non-finite numbers.
    add("nonfinite/NaN", "NaN", "NonFinite")
    add("nonfinite/Infinity", "Infinity", "NonFinite")
    add("nonfinite/-Infinity", "-Infinity", "NonFinite")
    add("nonfinite/in_array", "[1, NaN]", "NonFinite")
    add("nonfinite/in_object", '{"x":Infinity}', "NonFinite")
    add("range/1e400", "1e400", "NumberOutOfRange")
    add("range/-1e400", "-1e400", "NumberOutOfRange")
    add("range/just_above_max", "1.7976931348623159e308", "NumberOutOfRange")
    add("range/long_mantissa_overflow", "1" * 400 + ".0", "NumberOutOfRange")
    add("range/in_args", '{"args":{"x":1E+999}}', "NumberOutOfRange")
    add("int/4301_digits", "1" + "0" * 4300, "IntegerTooLong")
    add("int/4301_digits_negative", "-" + "9" * 4301, "IntegerTooLong")
    add("int/10000_digits_in_array", "[" + "5" * 10000 + "]", "IntegerTooLong")
    # Nesting.
    add("deep/arrays_65", "[" * 65 + "]" * 65, "TooDeep")
    add("deep/objects_65", '{"a":' * 65 + "1" + "}" * 65, "TooDeep")
    add("deep/arrays_10000", "[" * 10000 + "]" * 10000, "TooDeep")
    add("deep/arrays_10000_unclosed", "[" * 10000, "TooDeep")
    add("deep/objects_10000", '{"a":' * 10000 + "null" + "}" * 10000, "TooDeep")
    # Encoding.
    add("utf8/ff_in_string", b'"\xff"', "InvalidUtf8")
    add("utf8/lone_continuation", b'"\x80"', "InvalidUtf8")
    add("utf8/overlong_slash", b'"\xc0\xaf"', "InvalidUtf8")
    add("utf8/truncated_3_byte", b'"\xe2\x82"', "InvalidUtf8")
    add("utf8/encoded_surrogate_cesu", b'"\xed\xa0\x80"', "InvalidUtf8")
    add("utf8/encoded_surrogate_pair_cesu", b'"\xed\xa0\xbd\xed\xb8\x80"', "InvalidUtf8")
    add("utf8/above_10ffff", b'"\xf4\x90\x80\x80"', "InvalidUtf8")
    add("utf8/latin1_byte_outside_string", b"[1,\xe9]", "InvalidUtf8")
    add("bom/utf8_bom", b"\xef\xbb\xbf{}", "ByteOrderMark")
    add("bom/utf8_bom_number", b"\xef\xbb\xbf1", "ByteOrderMark")
    add("bom/after_whitespace", b" \xef\xbb\xbf1", "UnexpectedChar")
    # Trailing data.
    add("trailing/two_values", "1 2", "TrailingCharacters")
    add("trailing/object_then_text", "{} x", "TrailingCharacters")
    add("trailing/extra_bracket", "[]]", "TrailingCharacters")
    add("trailing/leading_zero", "01", "TrailingCharacters")
    add("trailing/minus_leading_zero", "-012", "TrailingCharacters")
    add("trailing/null_then_letters", "nullx", "TrailingCharacters")
    add("trailing/true_false", "truefalse", "TrailingCharacters")
    add("trailing/nul_byte", '"a" \x00', "TrailingCharacters")
    add("trailing/second_object", '{"a":1}{"b":2}', "TrailingCharacters")
    # Numbers.
    add("number/dot_no_digits", "1.", "InvalidNumber")
    add("number/dot_then_exp", "1.e5", "InvalidNumber")
    add("number/exp_no_digits", "1e", "InvalidNumber")
    add("number/exp_sign_no_digits", "1e+", "InvalidNumber")
    add("number/minus_alone", "-", "InvalidNumber")
    add("number/minus_minus", "--1", "InvalidNumber")
    add("number/minus_dot", "-.5", "InvalidNumber")
    add("number/minus_NaN", "-NaN", "InvalidNumber")
    add("number/leading_dot", ".5", "UnexpectedChar")
    add("number/leading_plus", "+1", "UnexpectedChar")
    add("number/hex", "0x10", "TrailingCharacters")
    add("number/lowercase_nan", "nan", "UnexpectedChar")
    add("number/inf", "inf", "UnexpectedChar")
    # Strings.
    add("string/control_0x01", '"a\x01b"', "ControlCharacter")
    add("string/control_nul", '"\x00"', "ControlCharacter")
    add("string/control_0x1f", '"\x1f"', "ControlCharacter")
    add("string/raw_newline", '"line\nbreak"', "ControlCharacter")
    add("string/raw_tab", '"\t"', "ControlCharacter")
    add("string/control_in_key", '{"k\x02":1}', "ControlCharacter")
    add("escape/x", '"\\x41"', "InvalidEscape")
    add("escape/single_quote", '"\\\'"', "InvalidEscape")
    add("escape/zero", '"\\0"', "InvalidEscape")
    add("escape/a", '"\\a"', "InvalidEscape")
    add("escape/upper_U", '"\\U0041"', "InvalidEscape")
    add("escape/bad_hex", '"\\u00g0"', "InvalidEscape")
    add("escape/short_hex", '"\\u12"', "InvalidEscape")
    add("escape/escaped_newline", '"\\\n"', "InvalidEscape")
    add("escape/non_ascii_after_backslash", '"\\\u00e9"', "InvalidEscape")
    # Structure and truncation.
    add("truncated/empty", "", "UnexpectedEnd")
    add("truncated/whitespace_only", " \n\t\r ", "UnexpectedEnd")
    add("truncated/open_array", "[", "UnexpectedEnd")
    add("truncated/array_after_comma", "[1,", "UnexpectedEnd")
    add("truncated/array_after_value", "[1,2", "UnexpectedEnd")
    add("truncated/open_object", "{", "UnexpectedEnd")
    add("truncated/object_after_key", '{"a"', "UnexpectedEnd")
    add("truncated/object_after_colon", '{"a":', "UnexpectedEnd")
    add("truncated/object_after_value", '{"a":1', "UnexpectedEnd")
    add("truncated/string", '"abc', "UnexpectedEnd")
    add("truncated/string_after_backslash", '"abc\\', "UnexpectedEnd")
    add("structure/trailing_comma_array", "[1,]", "UnexpectedChar")
    add("structure/trailing_comma_object", '{"a":1,}', "UnexpectedChar")
    add("structure/missing_colon", '{"a" 1}', "UnexpectedChar")
    add("structure/missing_comma", "[1 2]", "UnexpectedChar")
    add("structure/number_key", "{1:2}", "UnexpectedChar")
    add("structure/single_quotes", "{'a':1}", "UnexpectedChar")
    add("structure/bare_word", "hello", "UnexpectedChar")
    add("structure/misspelled_true", "ture", "UnexpectedChar")
    add("structure/capital_True", "True", "UnexpectedChar")
    add("structure/none", "None", "UnexpectedChar")
    add("structure/comment", "[1 /* c */]", "UnexpectedChar")
    add("structure/form_feed_whitespace", "\x0c1", "UnexpectedChar")
    add("structure/vertical_tab_whitespace", "[\x0b1]", "UnexpectedChar")
    add("structure/nbsp_whitespace", "\u00a01", "UnexpectedChar")
    add("structure/close_without_open", "]", "UnexpectedChar")
    add("structure/colon_in_array", "[1:2]", "UnexpectedChar")
    return cases


# --------------------------------------------------------------------------
# signatures.json
# --------------------------------------------------------------------------

CLIENT_SECRET = b"client_secret_key_456"
SERVER_SECRET = b"server_secret_key_123"
ED25519_SEED = bytes(range(32))


def signature_cases() -> Dict[str, Any]:
    ed_key = Ed25519PrivateKey.from_private_bytes(ED25519_SEED)
    ed_public = ed_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    rng = Rng("signatures")
    cases: List[Dict[str, str]] = []
    names = set()

    def wire_text(msg: Dict[str, Any], style: int) -> str:
        if style == 0:
            return json.dumps(msg)  # Python's default: ", " / ": ", ASCII escapes
        if style == 1:
            return json.dumps(msg, ensure_ascii=False, indent=2)
        if style == 2:
            return canonical_text(msg)
        return messy(rng, msg)

    def add(name: str, kind: str, msg: Dict[str, Any], style: int) -> None:
        assert name not in names, name
        names.add(name)
        assert "signature" not in msg
        text = wire_text(msg, style)
        parsed = json.loads(text)
        model_cls = MCPEnvelope if kind == "envelope" else MCPResponse
        # Exactly the seed's signing: build the model with an empty signature,
        # model_dump(), drop the signature, canonical JSON.
        model = model_cls(**parsed, signature="")
        payload = model.model_dump()
        payload.pop("signature")
        signed = _canonical_json(payload)
        secret = CLIENT_SECRET if kind == "envelope" else SERVER_SECRET
        cases.append(
            {
                "name": name,
                "kind": kind,
                "message": text,
                "signed_bytes": signed.decode("ascii"),
                "hmac_key": "client" if kind == "envelope" else "server",
                "hmac_sha256": _hmac_hex(secret, payload),
                "ed25519": ed_key.sign(signed).hex(),
            }
        )

    def env(i: int, tool: str, args: Any = None, *, v: bool = True, **over: Any) -> Dict[str, Any]:
        msg: Dict[str, Any] = {}
        if v:
            msg["v"] = "mcp/0.1"
        msg.update(
            request_id="00000000-0000-4000-8000-%012d" % i,
            ts_ms=1_700_000_000_000 + i,
            client_id="client-001",
            server_id="mcp-server-001",
            tool=tool,
        )
        if args is not None:
            msg["args"] = args
        msg["nonce"] = "11111111-2222-4333-8444-%012d" % i
        msg.update(over)
        return msg

    # Envelopes.
    add("env/seed_batch_sum", "envelope", env(1, "batch_sum", {"numbers": [10, 20, 30]}), 0)
    add("env/seed_server_identity_empty_args", "envelope", env(2, "server_identity", {}), 0)
    add("env/seed_start_long_task", "envelope", env(3, "start_long_task", {"seconds": 2, "payload": {"data": "complete"}}), 0)
    add("env/seed_poll_job", "envelope", env(4, "poll_job", {"job_id": "9f2c7a1e-0b4d-4e5f-8a6b-7c8d9e0f1a2b"}), 0)
    add("env/no_v", "envelope", env(5, "server_identity", {}, v=False), 2)
    add("env/no_args", "envelope", env(6, "server_identity"), 2)
    add("env/no_v_no_args", "envelope", env(7, "server_identity", v=False), 0)
    add("env/no_v_no_args_messy", "envelope", env(8, "server_identity", v=False), 3)
    add("env/args_floats", "envelope", env(9, "batch_sum", {"numbers": [0.1, 0.2, 0.30000000000000004, 1e16, 1e-5, -0.0, 5e-324, 1.7976931348623157e308]}), 0)
    add("env/args_float_from_exponent", "envelope", env(10, "batch_sum", {"numbers": [100.0, 1e22, 123456789012345678.0]}), 2)
    add("env/args_big_ints", "envelope", env(11, "echo", {"big": 2**64, "neg": -(2**70), "huge": int("9" * 100), "i64": I64_MAX, "i64min": I64_MIN}), 0)
    add("env/args_unicode", "envelope", env(12, "echo", {"text": "caf\u00e9 \u65e5\u672c\u8a9e", "emoji": "\U0001F600", "max": "\U0010FFFF"}), 1)
    add("env/args_unicode_keys", "envelope", env(13, "echo", {"\U0001F600": 1, "\uffff": 2, "z": 3, "\u00e9": 4, "": 5}), 1)
    add("env/args_escapes", "envelope", env(14, "echo", {"s": 'q" b\\ s/ \b\f\n\r\t \x00\x1f\x7f \u2028\u2029'}), 0)
    add("env/args_nested", "envelope", env(15, "start_long_task", {"seconds": 20, "payload": {"a": [1, [2, [3, {"b": None, "c": True, "d": False}]]], "e": {}, "f": []}}), 3)
    add("env/args_deep", "envelope", env(16, "echo", {"d": json.loads("[" * 50 + "]" * 50)}), 2)
    add("env/args_all_types", "envelope", env(17, "echo", {"n": None, "t": True, "f": False, "i": -7, "x": 2.5, "s": "s", "l": [], "o": {}}), 3)
    add("env/unicode_ids", "envelope", env(18, "t\u00f6\u00f6l", {}, client_id="client-\u00e9\U0001F600", server_id="server/\u65e5"), 1)
    add("env/ts_zero", "envelope", env(19, "batch_sum", {"numbers": [1]}, ts_ms=0), 0)
    add("env/ts_negative", "envelope", env(20, "batch_sum", {"numbers": [1]}, ts_ms=-1), 0)
    add("env/ts_i64_max", "envelope", env(21, "batch_sum", {"numbers": [1]}, ts_ms=I64_MAX), 2)
    add("env/long_ids_128", "envelope", env(22, "x" * 128, {}, request_id="r" * 128, nonce="\u00e9" * 128), 0)
    add("env/args_key_named_like_fields", "envelope", env(23, "echo", {"signature": "not-a-field", "v": "mcp/9", "args": {"args": {}}}), 0)
    add("env/args_long_string", "envelope", env(24, "echo", {"blob": "0123456789abcdef" * 256}), 2)
    add("env/args_many_keys", "envelope", env(25, "echo", {"k%02d" % i: i for i in reversed(range(60))}), 1)
    add("env/args_float_ties", "envelope", env(27, "batch_sum", {"numbers": [1997107851181081.2, 111275153569243.12, 2**-25, 0.8351516723632812]}), 0)
    add("env/args_float_tie_even_up", "envelope", env(28, "batch_sum", {"numbers": [0.8911972045898438, 5.960464477539063e-08]}), 2)
    add("env/args_subnormals", "envelope", env(26, "batch_sum", {"numbers": [2.2250738585072014e-308, 2.225073858507201e-308, 1e-310, -4e-320]}), 3)
    for i in range(8):
        args = gen_value(rng, 1)
        if not isinstance(args, dict):
            args = {"value": args}
        add("env/generated_%d" % i, "envelope", env(100 + i, rng.choice(["batch_sum", "echo", "start_long_task"]), args, v=rng.chance(1, 2)), rng.below(4))

    # Responses.
    def resp(i: int, status: str, ok: bool, result: Any = "absent", error: Any = "absent", *, v: bool = True, **over: Any) -> Dict[str, Any]:
        msg: Dict[str, Any] = {}
        if v:
            msg["v"] = "mcp/0.1"
        msg.update(request_id="00000000-0000-4000-8000-%012d" % i, ts_ms=1_700_000_000_500 + i, ok=ok, server_id="mcp-server-001", status=status)
        if result != "absent":
            msg["result"] = result
        if error != "absent":
            msg["error"] = error
        msg.update(over)
        return msg

    add("resp/ok_identity", "response", resp(2, "ok", True, {"server_id": "mcp-server-001", "fingerprint": "0123456789abcdef", "capabilities": {"tools": ["server_identity", "batch_sum", "start_long_task", "poll_job"], "async": True}}), 0)
    add("resp/ok_batch_sum", "response", resp(1, "ok", True, {"count": 3, "total": 60.0}, None), 0)
    add("resp/accepted_job", "response", resp(3, "accepted", True, {"job_id": "9f2c7a1e-0b4d-4e5f-8a6b-7c8d9e0f1a2b"}), 2)
    add("resp/running", "response", resp(4, "running", True, {"job_id": "9f2c7a1e-0b4d-4e5f-8a6b-7c8d9e0f1a2b", "status": "running"}), 1)
    add("resp/running_result_null", "response", resp(5, "running", True, None, None), 0)
    add("resp/done_payload", "response", resp(6, "done", True, {"data": "complete"}), 0)
    add("resp/done_unicode_payload", "response", resp(7, "done", True, {"\U0001F600": "\u00e9\x00\x7f", "n": [1.5, -0.0, 10**30]}), 3)
    add("resp/error_string", "response", resp(8, "error", False, None, "bad_signature: signature mismatch"), 0)
    add("resp/error_result_absent", "response", resp(9, "error", False, error="unknown_tool: no tool named 'x'"), 2)
    add("resp/error_unicode", "response", resp(10, "error", False, None, "invalid_args: caf\u00e9 \U0001F600 \"quoted\" \\ /"), 1)
    add("resp/result_and_error_absent", "response", resp(11, "ok", True), 0)
    add("resp/no_v", "response", resp(12, "ok", True, {}, None, v=False), 2)
    add("resp/no_v_messy", "response", resp(13, "done", True, {"x": 1}, v=False), 3)
    add("resp/empty_request_id", "response", resp(14, "error", False, None, "bad_envelope: unreadable", request_id=""), 0)
    add("resp/ok_false_with_ok_status", "response", resp(15, "ok", False, None, None), 0)
    add("resp/done_float_tie", "response", resp(18, "done", True, {"count": 2, "total": 1997107851181081.2}), 2)
    add("resp/result_empty_object", "response", resp(16, "done", True, {}), 0)
    add("resp/ts_zero", "response", resp(17, "ok", True, {"a": 1}, ts_ms=0), 2)
    for i in range(6):
        status = rng.choice(["ok", "accepted", "running", "done", "error"])
        result = gen_value(rng, 1)
        if not isinstance(result, dict):
            result = {"value": result}
        error = "internal: generated %d" % i if status == "error" else None
        add("resp/generated_%d" % i, "response", resp(200 + i, status, status != "error", result if status != "error" else None, error), rng.below(4))

    return {
        "description": (
            "Messages built with the seed's pydantic models (MCPEnvelope/MCPResponse) and signed as the seed does: "
            "model_dump(), pop 'signature', json.dumps(separators=(',', ':'), sort_keys=True).encode(). "
            "'message' is the wire JSON without the signature field (missing v/args take the pydantic defaults, "
            "which then appear in signed_bytes). hmac_sha256 uses the HMAC secret named by hmac_key "
            "(envelopes: client, responses: server); ed25519 uses the one Ed25519 key. "
            "Generated by testdata/gen_vectors.py; do not edit by hand."
        ),
        "keys": {
            "hmac_client_secret": CLIENT_SECRET.decode(),
            "hmac_server_secret": SERVER_SECRET.decode(),
            "ed25519_seed_hex": ED25519_SEED.hex(),
            "ed25519_public_hex": ed_public.hex(),
        },
        "cases": cases,
    }


# --------------------------------------------------------------------------
# ed25519.json: keys and signatures that strict Ed25519 (SPEC §5.2) refuses
# --------------------------------------------------------------------------
#
# Plain affine arithmetic on edwards25519 (-x^2 + y^2 = 1 + d x^2 y^2 over
# GF(2^255 - 19)), just enough to build the cases and to prove that each
# refused signature is one a cofactorless verifier without the strict checks
# would accept (S B == R + k A).

ED_P = 2**255 - 19
ED_L = 2**252 + 27742317777372353535851937790883648493
ED_D = -121665 * pow(121666, ED_P - 2, ED_P) % ED_P
ED_SQRT_M1 = pow(2, (ED_P - 1) // 4, ED_P)
ED_IDENTITY = (0, 1)


def ed_sqrt(a: int) -> Optional[int]:
    a %= ED_P
    x = pow(a, (ED_P + 3) // 8, ED_P)
    if x * x % ED_P != a:
        x = x * ED_SQRT_M1 % ED_P
    return x if x * x % ED_P == a else None


def ed_x_for(y: int) -> Optional[int]:
    """The even x with (x, y) on the curve, or None."""
    u = (y * y - 1) % ED_P
    v = (ED_D * y * y + 1) % ED_P
    x = ed_sqrt(u * pow(v, ED_P - 2, ED_P))
    if x is None:
        return None
    return x if x % 2 == 0 else ED_P - x


def ed_add(p1: Any, p2: Any) -> Any:
    (x1, y1), (x2, y2) = p1, p2
    t = ED_D * x1 * x2 * y1 * y2 % ED_P
    x3 = (x1 * y2 + y1 * x2) * pow(1 + t, ED_P - 2, ED_P) % ED_P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, ED_P - 2, ED_P) % ED_P
    return (x3, y3)


def ed_mul(k: int, point: Any) -> Any:
    out = ED_IDENTITY
    while k:
        if k & 1:
            out = ed_add(out, point)
        point = ed_add(point, point)
        k >>= 1
    return out


def ed_encode(point: Any) -> bytes:
    x, y = point
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def ed_decode_lax(data: bytes) -> Optional[Any]:
    """Decoding as a lax verifier does: y reduced mod p, x's sign from the top bit."""
    n = int.from_bytes(data, "little")
    y = (n & (2**255 - 1)) % ED_P
    x = ed_x_for(y)
    if x is None:
        return None
    return ((ED_P - x) % ED_P if n >> 255 else x, y)


ED_BASE = (ed_x_for(4 * pow(5, ED_P - 2, ED_P) % ED_P), 4 * pow(5, ED_P - 2, ED_P) % ED_P)


def ed_small_order_points() -> List[Any]:
    """The eight points P with 8 P = identity, found from their y coordinates:
    1 (order 1), p - 1 (order 2), 0 (order 4), and the roots of
    d y^4 + 2 y^2 - 1 = 0 (order 8: doubling gives y = 0 exactly when y^2 = -x^2)."""
    ys = [1, ED_P - 1, 0]
    disc = ed_sqrt(1 + ED_D)
    assert disc is not None
    for y2 in ((-1 + disc) * pow(ED_D, ED_P - 2, ED_P) % ED_P, (-1 - disc) * pow(ED_D, ED_P - 2, ED_P) % ED_P):
        y = ed_sqrt(y2)
        if y is not None:
            ys += [y, ED_P - y]
    points = []
    for y in ys:
        x = ed_x_for(y)
        assert x is not None
        points += [(x, y)] + ([((ED_P - x) % ED_P, y)] if x else [])
    assert len(points) == 8, len(points)
    for pt in points:
        assert ed_mul(8, pt) == ED_IDENTITY
    return points


def ed_verify_lax(public: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032's cofactorless equation with none of the strict checks."""
    r_point, a_point = ed_decode_lax(signature[:32]), ed_decode_lax(public)
    if r_point is None or a_point is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    k = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % ED_L
    return ed_mul(s, ED_BASE) == ed_add(r_point, ed_mul(k, a_point))


def ed25519_cases() -> Dict[str, Any]:
    digest = bytearray(hashlib.sha512(ED25519_SEED).digest()[:32])
    digest[0] &= 248
    digest[31] &= 127
    digest[31] |= 64
    scalar = int.from_bytes(bytes(digest), "little")
    ed_key = Ed25519PrivateKey.from_private_bytes(ED25519_SEED)
    public = ed_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert ed_encode(ed_mul(scalar, ED_BASE)) == public

    keys: List[Dict[str, Any]] = []
    sigs: List[Dict[str, Any]] = []

    def key(name: str, data: bytes, accept: bool, why: str) -> None:
        point = ed_decode_lax(data)
        small = point is not None and ed_mul(8, point) == ED_IDENTITY
        keys.append({"name": name, "public_hex": data.hex(), "accept": accept, "why": why, "small_order": small})

    def sig(name: str, pub: bytes, message: bytes, signature: bytes, accept: bool, why: str) -> None:
        assert ed_verify_lax(pub, message, signature), name
        sigs.append({"name": name, "public_hex": pub.hex(), "message_hex": message.hex(), "signature_hex": signature.hex(), "accept": accept, "why": why})

    def k_of(r_bytes: bytes, pub: bytes, message: bytes) -> int:
        return int.from_bytes(hashlib.sha512(r_bytes + pub + message).digest(), "little") % ED_L

    key("vector_key", public, True, "ok")
    key("base_point", ed_encode(ED_BASE), True, "ok")
    for i, pt in enumerate(sorted(ed_small_order_points())):
        order = next(n for n in (1, 2, 4, 8) if ed_mul(n, pt) == ED_IDENTITY)
        key("small_order/%d_order_%d" % (i, order), ed_encode(pt), False, "small_order")
    # y >= p: 19 possible values, each the non-canonical spelling of y - p.
    for y in range(19):
        x = ed_x_for(y)
        if x is None:
            continue
        why = "non_canonical"
        key("non_canonical/y_is_p_plus_%d" % y, (ED_P + y).to_bytes(32, "little"), False, why)
    # x = 0 with the sign bit set ("negative zero").
    key("non_canonical/identity_negative_zero", (1 | 1 << 255).to_bytes(32, "little"), False, "non_canonical")
    key("non_canonical/order_2_negative_zero", ((ED_P - 1) | 1 << 255).to_bytes(32, "little"), False, "non_canonical")
    not_on_curve = next(y for y in range(2, 100) if ed_x_for(y) is None)
    key("not_a_point/y_%d" % not_on_curve, not_on_curve.to_bytes(32, "little"), False, "not_a_point")

    message = b'{"example":"strict ed25519"}'
    good = ed_key.sign(message)
    sig("ok/vector_key", public, message, good, True, "ok")
    s = int.from_bytes(good[32:], "little")
    sig("non_canonical_s/s_plus_l", public, message, good[:32] + (s + ED_L).to_bytes(32, "little"), False, "non_canonical_s")
    # R = a small-order point, S = k a: S B = R + k A because R adds nothing
    # when it is the identity; for the others only a cofactored check passes,
    # so the cases below use the identity in its several spellings.
    for name, r_bytes in (
        ("small_order_r/identity", ed_encode(ED_IDENTITY)),
        ("small_order_r/identity_y_is_p_plus_1", (ED_P + 1).to_bytes(32, "little")),
        ("small_order_r/identity_negative_zero", (1 | 1 << 255).to_bytes(32, "little")),
    ):
        s_forged = k_of(r_bytes, public, message) * scalar % ED_L
        sig(name, public, message, r_bytes + s_forged.to_bytes(32, "little"), False, "small_order_r")
    # A = the identity: any R = r B with S = r verifies every message.
    ident = ed_encode(ED_IDENTITY)
    r = 7
    sig("small_order_a/identity_key_signs_anything", ident, message, ed_encode(ed_mul(r, ED_BASE)) + r.to_bytes(32, "little"), False, "small_order_a")
    return {
        "description": (
            "Strict Ed25519 (SPEC 5.2). keys: 32-byte public keys a verifier configures; accept false means it "
            "MUST refuse the key (small_order: 8 P is the identity; non_canonical: y >= p, or x = 0 with the sign "
            "bit set; not_a_point: no x for that y; the small_order member says whether the point read with y "
            "mod p has small order, whatever the spelling). signatures: every one satisfies RFC 8032's cofactorless "
            "equation S B = R + k A with y taken mod p; accept false means a strict verifier MUST refuse it "
            "(non_canonical_s: S >= L; small_order_r / small_order_a: R or A has small order). "
            "Generated by testdata/gen_vectors.py; do not edit by hand."
        ),
        "keys": keys,
        "cases": sigs,
    }


def write(name: str, obj: Any) -> None:
    path = os.path.join(OUT_DIR, name)
    text = json.dumps(obj, indent=1, ensure_ascii=True, sort_keys=True) + "\n"
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(text)
    print("wrote %s (%d cases)" % (os.path.relpath(path), len(obj["cases"])))


def main() -> None:
    os.makedirs(OUT_DIR, exist_ok=True)
    canon = canonical_cases()
    rejects = reject_cases()
    sigs = signature_cases()
    assert len(canon) >= 300, len(canon)
    assert len(rejects) >= 40, len(rejects)
    assert len(sigs["cases"]) >= 40, len(sigs["cases"])
    write(
        "canonical.json",
        {
            "description": (
                "input: a JSON text (often deliberately non-canonical); canonical: "
                "json.dumps(json.loads(input), separators=(',', ':'), sort_keys=True) as computed by CPython. "
                "Generated by testdata/gen_vectors.py; do not edit by hand."
            ),
            "cases": canon,
        },
    )
    write(
        "rejects.json",
        {
            "description": (
                "input_hex: raw input bytes; kind: the JsonErrorKind variant the Rust parser must return; "
                "cpython: what json.loads does with the input (called on the text decoded as UTF-8, or on the raw "
                "bytes when they are not valid UTF-8, in which case json.loads decodes with 'surrogatepass'). "
                "Note json.loads(bytes) would strip a UTF-8 BOM, json.loads(str) refuses it. "
                "Generated by testdata/gen_vectors.py; do not edit by hand."
            ),
            "cases": rejects,
        },
    )
    write("signatures.json", sigs)
    write("ed25519.json", ed25519_cases())


if __name__ == "__main__":
    main()
