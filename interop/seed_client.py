#!/usr/bin/env python3
"""The article's MCPClient (interop/seed.py, unchanged) talking over HTTP,
running the article's demo() flow and checking every reply.

    python3 interop/seed_client.py --url http://127.0.0.1:PORT/mcp \
        --client-id client-001 --client-secret client_secret_key_456 \
        --server-id mcp-server-001 --server-secret server_secret_key_123 [--check-replay]

The only adapter is HTTPServer below: it stands where the article passes its
in-process MCPServer, and its handle() POSTs json.dumps(final_env.model_dump())
instead of calling the server (the client secret is of course not sent).

Every reply is checked the way the seed signs (payload = dict(resp);
sig = payload.pop("signature"); _hmac_hex(server_secret, payload) == sig) and
validated with MCPResponse(**resp); its request_id must echo the envelope's
and its server_id must be --server-id.

stdout: one JSON line per reply (lines starting with "{"), possibly "note:"
lines, and as last line "seed demo: all N responses verified"; exit 0.

--call TOOL ARGS_JSON: instead of the demo, one call of TOOL; the verified
reply is printed as one JSON line, then "seed call: 1 response verified".
On any failure: "seed_client: FAIL: <reason>" on stderr, exit 1.

--check-replay (for servers that claim replay protection, i.e. lacre, not
the seed): after the demo, send one fresh signed envelope twice (same nonce),
the second reply must be ok=false with error "replayed_nonce..."; then send
an envelope with a wrong signature, the reply must be ok=false with error
"bad_signature...".  Those error replies must verify like all others.
"""

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pydantic import ValidationError  # noqa: E402

from seed import MCPClient, MCPEnvelope, MCPResponse, _hmac_hex  # noqa: E402


class Failure(Exception):
    pass


def check(cond, reason):
    if not cond:
        raise Failure(reason)


# added: the adapter. The article hands MCPClient an MCPServer object and
# calls `await self.server.handle(final_env.model_dump(), self.secret)`; this
# object has the same server_id and handle(), and POSTs the envelope instead.
class HTTPServer:
    def __init__(self, url, server_id, timeout=10.0):
        self.url = url
        self.server_id = server_id
        self.timeout = timeout
        self.last_envelope = None  # the last envelope sent (a dict)
        self.last_raw = None  # the raw text of the last reply

    def _post(self, body):
        req = urllib.request.Request(
            self.url,
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:  # 4xx/5xx still carry a JSON body
            return e.code, e.read()

    async def post_envelope(self, env_dict):
        self.last_envelope = env_dict
        status, raw = await asyncio.to_thread(self._post, json.dumps(env_dict).encode())
        self.last_raw = raw.decode("utf-8", errors="replace")
        try:
            return json.loads(raw)
        except ValueError:
            raise Failure(f"HTTP {status}: reply is not JSON: {self.last_raw[:300]!r}")

    async def handle(self, env_dict, client_secret):
        return await self.post_envelope(env_dict)


class Checker:
    def __init__(self, server_id, server_secret):
        self.server_id = server_id
        self.server_secret = server_secret
        self.verified = 0

    def verify(self, what, resp, sent):
        check(isinstance(resp, dict), f"{what}: reply is not a JSON object: {resp!r}")
        check("signature" in resp, f"{what}: unsigned reply: {resp!r}")
        payload = dict(resp)
        sig = payload.pop("signature")
        check(
            _hmac_hex(self.server_secret, payload) == sig,
            f"{what}: bad reply signature (server secret mismatch or non-canonical signing): {resp!r}",
        )
        try:
            MCPResponse(**resp)
        except ValidationError as e:
            raise Failure(f"{what}: reply is not a valid MCPResponse: {e}; reply: {resp!r}")
        check(
            resp["request_id"] == sent["request_id"],
            f"{what}: request_id {resp['request_id']!r} does not echo {sent['request_id']!r}",
        )
        check(
            resp["server_id"] == self.server_id,
            f"{what}: server_id {resp['server_id']!r} != {self.server_id!r}",
        )
        self.verified += 1
        print(json.dumps(resp), flush=True)
        return resp


def signed_envelope(client, tool, args=None):
    """A fresh envelope signed exactly as MCPClient.call signs it."""
    temp_env = MCPEnvelope(
        client_id=client.client_id,
        server_id=client.server.server_id,
        tool=tool,
        args=args or {},
        signature="",
    )
    payload = temp_env.model_dump()
    payload.pop("signature")
    return MCPEnvelope(**payload, signature=_hmac_hex(client.secret, payload)).model_dump()


async def run(a):
    server = HTTPServer(a.url, a.server_id, timeout=a.timeout)
    client = MCPClient(a.client_id, a.client_secret.encode(), server)
    checker = Checker(a.server_id, a.server_secret.encode())

    async def call(tool, args=None):
        resp = await client.call(tool, args)
        return checker.verify(tool, resp, server.last_envelope)

    if a.call:
        # One call of any tool (e.g. an MCP upstream's, through lacre's
        # gateway): the verified reply is printed, whatever its status.
        tool, args = a.call
        resp = await call(tool, json.loads(args))
        print(json.dumps(resp, sort_keys=True), flush=True)
        print(f"seed call: {checker.verified} response verified", flush=True)
        return

    # 1. Simple synchronous call
    identity = await call("server_identity")
    check(identity["ok"] is True and identity["status"] == "ok",
          f"server_identity: want ok/status ok, got {identity!r}")
    check(isinstance(identity["result"], dict) and identity["result"].get("server_id") == a.server_id,
          f"server_identity: result.server_id != {a.server_id!r}: {identity['result']!r}")

    # 2. Another synchronous call with args
    sum_result = await call("batch_sum", {"numbers": [10, 20, 30]})
    check(sum_result["ok"] is True and sum_result["status"] == "ok",
          f"batch_sum: want ok/status ok, got {sum_result!r}")
    check(sum_result["result"] == {"count": 3, "total": 60.0},
          f"batch_sum: want result {{'count': 3, 'total': 60.0}}, got {sum_result['result']!r}")
    check('"total":60.0' in server.last_raw or '"total": 60.0' in server.last_raw,
          f"batch_sum: raw reply does not carry total as 60.0: {server.last_raw!r}")

    # 3. Start a long-running task
    start_resp = await call("start_long_task", {"seconds": 2, "payload": {"data": "complete"}})
    check(start_resp["ok"] is True and start_resp["status"] == "accepted",
          f"start_long_task: want ok/status accepted, got {start_resp!r}")
    check(isinstance(start_resp["result"], dict) and isinstance(start_resp["result"].get("job_id"), str),
          f"start_long_task: no job_id in {start_resp['result']!r}")
    job_id = start_resp["result"]["job_id"]

    # 4. Poll for the result
    deadline = time.monotonic() + a.poll_limit
    while True:
        poll_resp = await call("poll_job", {"job_id": job_id})
        if poll_resp["status"] == "done":
            break
        check(poll_resp["ok"] is True and poll_resp["status"] == "running",
              f"poll_job: want running or done, got {poll_resp!r}")
        check(time.monotonic() < deadline, f"poll_job: not done after {a.poll_limit} s")
        await asyncio.sleep(0.5)
    check(poll_resp["ok"] is True, f"poll_job: done but ok is not true: {poll_resp!r}")
    check(poll_resp["result"] == {"data": "complete"},
          f"poll_job: want result {{'data': 'complete'}}, got {poll_resp['result']!r}")

    if a.check_replay:
        # the same signed envelope twice: the first goes through, the second is a replay
        env = signed_envelope(client, "server_identity")
        first = checker.verify("replay #1", await server.post_envelope(env), env)
        check(first["ok"] is True and first["status"] == "ok",
              f"replay #1: the first send should succeed, got {first!r}")
        second = checker.verify("replay #2", await server.post_envelope(env), env)
        check(second["ok"] is False and second["status"] == "error"
              and str(second["error"]).startswith("replayed_nonce"),
              f"replay #2: want ok false, error replayed_nonce..., got {second!r}")

        # a fresh envelope (new nonce) whose signature is wrong
        bad = signed_envelope(client, "server_identity")
        bad["signature"] = _hmac_hex(b"not-the-client-secret", {k: v for k, v in bad.items() if k != "signature"})
        resp = checker.verify("bad signature", await server.post_envelope(bad), bad)
        check(resp["ok"] is False and resp["status"] == "error"
              and str(resp["error"]).startswith("bad_signature"),
              f"bad signature: want ok false, error bad_signature..., got {resp!r}")
        print("note: replay and bad-signature checks passed", flush=True)
    else:
        print("note: replay check skipped (no --check-replay; the seed has no replay protection)", flush=True)

    print(f"seed demo: all {checker.verified} responses verified", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description="the article's demo over HTTP, every reply verified")
    p.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8080/mcp")
    p.add_argument("--client-id", default="client-001")
    p.add_argument("--client-secret", default="client_secret_key_456")
    p.add_argument("--server-id", default="mcp-server-001")
    p.add_argument("--server-secret", default="server_secret_key_123")
    p.add_argument("--check-replay", action="store_true",
                   help="also check replay and bad-signature rejection (not for the seed server)")
    p.add_argument("--call", nargs=2, metavar=("TOOL", "ARGS_JSON"),
                   help="instead of the demo: call one tool and print its verified reply")
    p.add_argument("--timeout", type=float, default=10.0, help="per-request HTTP timeout, seconds")
    p.add_argument("--poll-limit", type=float, default=30.0, help="give up polling after this many seconds")
    a = p.parse_args(argv)
    try:
        asyncio.run(run(a))
    except Failure as e:
        print(f"seed_client: FAIL: {e}", file=sys.stderr, flush=True)
        return 1
    except Exception as e:  # connection refused, timeouts, malformed replies...
        print(f"seed_client: FAIL: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
