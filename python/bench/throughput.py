"""Calls per second of `batch_sum` from Python against one local lacre
server: lacre.Client in one thread, lacre.AsyncClient with 32 calls in
flight, and the seed article's own client (interop/seed.py's MCPClient over
interop/seed_client.py's HTTP adapter), one after another in one run.

    python3 python/bench/throughput.py PATH/TO/lacre [SECONDS]

Needs the lacre package (pip install ./python) and, for the seed's client,
pydantic. Every lacre reply is verified; the seed's client checks nothing
(as printed), which flatters it.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import lacre

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """server_id = "mcp-server-001"
store = "memory"
signing = { secret = "server_secret_key_123" }
clients = [{ id = "client-001", secret = "client_secret_key_456" }]
"""
ARGS = {"numbers": [10, 20, 30]}


def serve(binary: str) -> "tuple[subprocess.Popen[str], str]":
    d = Path(tempfile.mkdtemp(prefix="lacre-bench-"))
    (d / "lacre.toml").write_text(CONFIG)
    proc = subprocess.Popen(
        [binary, "serve", "--config", str(d / "lacre.toml"), "--listen", "127.0.0.1:0",
         "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.search(r"listening on (http://\S+/mcp)", line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("lacre serve did not start")


def client(url: str, cls: type = lacre.Client):  # type: ignore[no-untyped-def]
    return cls(url, client_id="client-001", secret=b"client_secret_key_456",
               server_id="mcp-server-001", server_secret=b"server_secret_key_123")


def sync_rate(url: str, seconds: float) -> float:
    c = client(url)
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        assert c.call("batch_sum", ARGS) == {"count": 3, "total": 60.0}
        n += 1
    return n / seconds


async def async_rate(url: str, seconds: float, concurrency: int = 32) -> float:
    async with client(url, lacre.AsyncClient) as c:
        end = time.monotonic() + seconds
        counts = [0] * concurrency

        async def worker(i: int) -> None:
            while time.monotonic() < end:
                await c.call("batch_sum", ARGS)
                counts[i] += 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        return sum(counts) / seconds


def seed_rate(url: str, seconds: float) -> float:
    sys.path.insert(0, str(ROOT / "interop"))
    from seed import MCPClient  # type: ignore[import-not-found]
    from seed_client import HTTPServer  # type: ignore[import-not-found]

    async def run() -> float:
        c = MCPClient("client-001", b"client_secret_key_456", HTTPServer(url, "mcp-server-001"))
        n, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            resp = await c.call("batch_sum", ARGS)
            assert resp["ok"] is True, resp
            n += 1
        return n / seconds

    return asyncio.run(run())


def main() -> None:
    binary = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    proc, url = serve(binary)
    try:
        sync_rate(url, 0.5)  # warm up
        print(f"lacre.Client, one thread:              {sync_rate(url, seconds):8.0f} calls/s")
        print(f"lacre.AsyncClient, 32 in flight:       {asyncio.run(async_rate(url, seconds)):8.0f} calls/s")
        print(f"the seed's MCPClient (urllib), serial: {seed_rate(url, seconds):8.0f} calls/s")
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
