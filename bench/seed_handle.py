#!/usr/bin/env python3
"""Times the seed's own MCPServer.handle() in process, for comparison with
lacre's in-process dispatch benchmark (cargo bench -p lacre-server --bench
dispatch). Same work: validate, verify the HMAC signature, run batch_sum on 8
numbers, sign the reply. The seed's handle() takes an already-parsed dict,
so JSON parsing is not timed here (lacre's figure includes it).

Run: python3 bench/seed_handle.py [N]
"""
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "interop"))
import seed  # noqa: E402

SERVER_SECRET = b"server_secret_key_123"
CLIENT_SECRET = b"client_secret_key_456"


def envelope(i):
    env = {
        "v": "mcp/0.1",
        "request_id": f"req-{i}",
        "ts_ms": seed._now_ms(),
        "client_id": "client-001",
        "server_id": "mcp-server-001",
        "tool": "batch_sum",
        "args": {"numbers": [10, 20, 30, 40, 50, 60, 70, 80]},
        "nonce": f"nonce-{i}",
    }
    env["signature"] = seed._hmac_hex(CLIENT_SECRET, env)
    return env


async def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    server = seed.MCPServer("mcp-server-001", SERVER_SECRET)
    envs = [envelope(i) for i in range(n + 1000)]
    for e in envs[:1000]:  # warm-up
        await server.handle(e, CLIENT_SECRET)
    start = time.perf_counter()
    for e in envs[1000:]:
        r = await server.handle(e, CLIENT_SECRET)
        assert r["ok"], r
    elapsed = time.perf_counter() - start
    print(f"seed MCPServer.handle(): {n} calls in {elapsed:.3f} s = {n / elapsed:.0f} calls/s, {elapsed / n * 1e6:.1f} us/call")


asyncio.run(main())
