#!/usr/bin/env python3
"""CPython as the reference for lacre's parser and canonical form.

Reads lines of hex (one input each, any bytes) on stdin and writes one line
per input on stdout, in order:

    ok <canonical>     json.loads accepted it as UTF-8 text; <canonical> is
                       json.dumps(value, separators=(",", ":"), sort_keys=True)
                       (ASCII: ensure_ascii escapes everything else)
    okbytes <canonical>
                       only json.loads(bytes) accepted it: it detected UTF-16
                       or UTF-32, stripped a UTF-8 BOM or decoded surrogates
                       (SPEC 12.4 classes 6 and 7)
    err <Exception>    json.loads refused it in both calling forms

An input counts as accepted if either calling form takes it: json.loads on
the text decoded as UTF-8 (when it decodes), or json.loads on the raw bytes
(which detects UTF-16/32, strips a UTF-8 BOM and decodes with
'surrogatepass'): SPEC 12.4 lists the classes lacre refuses on purpose.
Used by crates/lacre-proto/tests/it/cpython_property.rs; one process serves
a whole batch.
"""

import json
import sys


def canonical(data: bytes) -> str:
    error = None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        error = e
    else:
        try:
            value = json.loads(text)
            return "ok " + json.dumps(value, separators=(",", ":"), sort_keys=True)
        except (ValueError, RecursionError) as e:
            error = e
    try:
        value = json.loads(data)
        return "okbytes " + json.dumps(value, separators=(",", ":"), sort_keys=True)
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        return "err " + type(error or e).__name__


def main() -> None:
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        try:
            out.write(canonical(bytes.fromhex(line)) + "\n")
        except ValueError as e:  # json.dumps of a huge int, say
            out.write("err " + type(e).__name__ + "\n")
    out.flush()


if __name__ == "__main__":
    main()
