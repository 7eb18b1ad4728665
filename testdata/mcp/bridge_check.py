"""Drives `lacre mcp` with the official Python MCP SDK (PyPI `mcp`), as an
MCP host would, and prints one JSON line per step for the Rust test
(crates/lacre-cli/tests/it/bridge.rs) to check.

    python3 bridge_check.py SCENARIO LACRE_BINARY [lacre mcp flags...]

Scenarios: `basic` (handshake, tools/list, batch_sum, bad arguments,
unknown tool, a long job with progress), `cancel` (a long job cancelled
by the host; prints the job id), `max_wait` (a job outliving --max-wait,
then lacre_poll_job), `restart` (one call, then waits for a line on stdin
before the next: the test restarts the server in between), `call` (the
tool and JSON arguments in LACRE_CHECK_TOOL and LACRE_CHECK_ARGS, with a
progress callback).
"""
import asyncio
import json
import os
import sys

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError as McpError


def out(step, **fields):
    print(json.dumps({"step": step, **fields}, sort_keys=True), flush=True)


def result_fields(r):
    texts = [c.text for c in r.content if getattr(c, "type", None) == "text"]
    return {"is_error": bool(r.is_error), "text": texts, "structured": r.structured_content}


async def basic(session):
    tools = await session.list_tools()
    out("tools", names=sorted(t.name for t in tools.tools),
        schemas={t.name: t.input_schema for t in tools.tools})
    out("batch_sum", **result_fields(await session.call_tool("batch_sum", {"numbers": [10, 20, 30]})))
    out("bad_args", **result_fields(await session.call_tool("batch_sum", {"numbers": "ten"})))
    try:
        await session.call_tool("no_such_tool", {})
        out("unknown_tool", error=None)
    except McpError as e:
        out("unknown_tool", code=e.error.code, message=e.error.message)
    seen = []

    async def progress(p, total, message):
        seen.append({"progress": p, "total": total, "message": message})

    r = await session.call_tool("start_long_task", {"seconds": 3, "payload": {"x": 1}},
                                progress_callback=progress)
    out("long_task", progress=seen, **result_fields(r))


async def cancel(session):
    async with anyio.create_task_group() as tg:
        async def call():
            await session.call_tool("start_long_task", {"seconds": 20})
        tg.start_soon(call)
        await anyio.sleep(2)
        tg.cancel_scope.cancel()
    out("cancelled")
    await anyio.sleep(1)
    jobs = await session.call_tool("lacre_list_jobs", {})
    out("jobs", **result_fields(jobs))


async def max_wait(session):
    r = await session.call_tool("start_long_task", {"seconds": 4, "payload": {"late": True}})
    out("first", **result_fields(r))
    job_id = r.structured_content["job_id"]
    for _ in range(10):
        r = await session.call_tool("lacre_poll_job", {"job_id": job_id})
        if not r.structured_content or r.structured_content.get("state") not in ("queued", "running"):
            break
    out("polled", **result_fields(r))


async def call(session):
    seen = []

    async def progress(p, total, message):
        seen.append({"progress": p, "total": total, "message": message})

    tool, args = os.environ["LACRE_CHECK_TOOL"], json.loads(os.environ["LACRE_CHECK_ARGS"])
    r = await session.call_tool(tool, args, progress_callback=progress)
    out("call", progress=seen, **result_fields(r))


async def restart(session):
    out("before", **result_fields(await session.call_tool("batch_sum", {"numbers": [1, 2]})))
    await anyio.to_thread.run_sync(sys.stdin.readline)
    out("down", **result_fields(await session.call_tool("batch_sum", {"numbers": [3]})))
    await anyio.to_thread.run_sync(sys.stdin.readline)
    out("after", **result_fields(await session.call_tool("batch_sum", {"numbers": [4, 5]})))


async def main():
    scenario, binary, *flags = sys.argv[1:]
    # The SDK passes a minimal environment unless told: hand the keys on,
    # as a host's "env" setting does.
    params = StdioServerParameters(command=binary, args=["mcp", *flags], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out("initialize", protocol=init.protocol_version, server=init.server_info.name)
            await {"basic": basic, "cancel": cancel, "max_wait": max_wait, "restart": restart, "call": call}[scenario](session)


if __name__ == "__main__":
    asyncio.run(main())
