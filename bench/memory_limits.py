#!/usr/bin/env python3
"""Memory of a lacre server under two loads that used to grow it without
bound, printed as figures (no pass/fail: see BENCHMARKS.md).

  python3 bench/memory_limits.py PATH/TO/lacre [--slow 600] [--jobs 40]

1. Slow bodies before authentication: SLOW connections each declare a
   1 MiB body, send all of it but one byte, and wait. A server that buffers
   bodies before admitting them holds SLOW MiB; one with a body budget
   refuses what does not fit, unread.
2. Reads of big jobs: JOBS jobs with 880 KiB payloads, then one list_jobs.
   A server that reads whole rows for a listing loads every payload.

Prints VmRSS before and after each, and VmHWM (the peak), in MiB. Only
loopback is used; the server runs in a temporary directory and is stopped
at the end. Works with servers of this repository's history whose binary
and config take the same options (`serve --config FILE --listen ADDR`).
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid

CLIENT_SECRET = b"client_secret_key_456"
SERVER_ID = "mem-bench"


def canonical(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def envelope(tool, args):
    env = {
        "v": "mcp/0.1",
        "request_id": str(uuid.uuid4()),
        "ts_ms": int(time.time() * 1000),
        "client_id": "client-001",
        "server_id": SERVER_ID,
        "tool": tool,
        "args": args,
        "nonce": str(uuid.uuid4()),
    }
    env["signature"] = hmac.new(CLIENT_SECRET, canonical(env), hashlib.sha256).hexdigest()
    return canonical(env)


def post(addr, body, timeout=60):
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        head = (
            f"POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        s.sendall(head + body)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), payload


def mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--slow", type=int, default=600)
    ap.add_argument("--jobs", type=int, default=40)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="lacre-mem-")
    cfg = os.path.join(work, "server.toml")
    with open(cfg, "w") as f:
        f.write(
            f'server_id = "{SERVER_ID}"\nstore = "sqlite://server.db"\nworkers = 4\n'
            '[limits]\nbody_timeout_ms = 60000\n'
            '[signing]\nsecret = "server_secret_key_123"\n'
            '[[clients]]\nid = "client-001"\nsecret = "client_secret_key_456"\ntools = ["*"]\n'
        )
    proc = subprocess.Popen(
        [a.binary, "serve", "--config", cfg, "--listen", "127.0.0.1:0"],
        cwd=work, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    addr = None
    for line in proc.stderr:
        m = re.search(r"listening on http://([0-9.:]+)/mcp", line)
        if m:
            addr = m.group(1)
            break
    if addr is None:
        sys.exit("the server did not start")
    # Keep draining stderr so the server never blocks on a full pipe.
    import threading
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    try:
        print(f"server {a.binary} on {addr}, pid {proc.pid}")
        base = mem(proc.pid)
        print(f"idle: VmRSS {base['VmRSS']:.0f} MiB")

        # 1. Slow bodies.
        size = 1 << 20
        conns, refused = [], 0
        for _ in range(a.slow):
            host, port = addr.rsplit(":", 1)
            s = socket.create_connection((host, int(port)), timeout=30)
            s.sendall(
                f"POST /mcp HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n"
                f"content-length: {size}\r\n\r\n".encode()
            )
            s.setblocking(False)
            try:
                s.sendall(b" " * (size - 1))
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                pass
            s.setblocking(True)
            conns.append(s)
        time.sleep(2)
        for s in conns:
            s.settimeout(0.01)
            try:
                if s.recv(16).startswith(b"HTTP/1.1 503"):
                    refused += 1
            except (socket.timeout, BlockingIOError, ConnectionResetError):
                pass
        m = mem(proc.pid)
        print(
            f"{a.slow} slow 1 MiB bodies: VmRSS {m['VmRSS']:.0f} MiB (peak {m['VmHWM']:.0f}), "
            f"{refused} refused at once"
        )
        for s in conns:
            s.close()
        time.sleep(2)

        # 2. Big jobs, one listing.
        payload = {f"s{i}": "x" * (220 * 1024) for i in range(4)}
        for _ in range(a.jobs):
            status, _ = post(addr, envelope("start_long_task", {"seconds": 20, "payload": payload}))
            if status != 202:
                print(f"start_long_task answered HTTP {status}")
        before = mem(proc.pid)
        t = time.time()
        status, body = post(addr, envelope("list_jobs", {}))
        took = time.time() - t
        after = mem(proc.pid)
        print(
            f"list_jobs over {a.jobs} jobs of 880 KiB: HTTP {status}, {len(body)} bytes, "
            f"{took * 1000:.0f} ms; VmRSS {before['VmRSS']:.0f} -> {after['VmRSS']:.0f} MiB "
            f"(peak {after['VmHWM']:.0f})"
        )
    finally:
        # Jobs are still running; a graceful stop would wait for them.
        proc.kill()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
