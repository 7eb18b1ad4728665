#!/usr/bin/env python3
"""The article's MCPServer (interop/seed.py) served over HTTP with aiohttp,
the way a Python user of the article would serve it.

    python3 interop/seed_server.py --port 0 --server-id mcp-server-001 \
        --server-secret server_secret_key_123 --client client-001=client_secret_key_456

POST /mcp with a JSON envelope -> ``await server.handle(body, client_secret)``
-> the JSON reply, always with HTTP status 200.  The seed's handle() needs
the caller's secret but cannot find it itself, so this wrapper looks it up
by the envelope's client_id (--client ID=SECRET, repeatable).  Wrapper
errors (body not JSON, not an object, unknown client) are answered, like the
seed's own "bad envelope" / "bad signature" errors, with an unsigned
``{"error": ...}`` object.

Once the socket is bound, exactly one line goes to stdout:
``LISTENING http://HOST:PORT/mcp`` (flushed).  Then it serves until SIGTERM
or SIGINT, and exits 0.  No per-request logging unless --access-log.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from aiohttp import web  # noqa: E402

from seed import MCPServer  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    p.add_argument("--server-id", default="mcp-server-001")
    p.add_argument("--server-secret", default="server_secret_key_123")
    p.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID=SECRET",
        help="a client and its HMAC secret; repeatable "
        "(default, when none is given: client-001=client_secret_key_456, as in the article)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request to stderr")
    a = p.parse_args(argv)
    clients = {}
    for item in a.client or ["client-001=client_secret_key_456"]:
        cid, sep, secret = item.partition("=")
        if not sep or not cid:
            p.error(f"--client wants ID=SECRET, got {item!r}")
        clients[cid] = secret.encode()
    a.clients = clients
    return a


def make_app(server, clients):
    async def mcp(request):
        try:
            body = json.loads(await request.read())
        except ValueError as e:
            return web.json_response({"error": "bad json", "details": str(e)})
        if not isinstance(body, dict):
            return web.json_response(
                {"error": "bad envelope", "details": "the body is not a JSON object"}
            )
        client_id = body.get("client_id")
        secret = clients.get(client_id) if isinstance(client_id, str) else None
        if secret is None:
            return web.json_response({"error": "unknown client", "client_id": client_id})
        reply = await server.handle(body, secret)
        return web.json_response(reply)

    app = web.Application()
    app.router.add_post("/mcp", mcp)
    return app


async def main(argv=None):
    a = parse_args(argv)
    server = MCPServer(a.server_id, a.server_secret.encode())
    app = make_app(server, a.clients)

    if a.access_log:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        runner = web.AppRunner(app, access_log=logging.getLogger("aiohttp.access"))
    else:
        runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, a.host, a.port)
    await site.start()

    host, port = runner.addresses[0][:2]
    sys.stdout.write(f"LISTENING http://{host}:{port}/mcp\n")
    sys.stdout.flush()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for task in server.tasks.values():
            task.cancel()
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
