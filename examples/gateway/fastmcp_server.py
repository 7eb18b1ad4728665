"""A small FastMCP server to put behind lacre (see README.md here).

Run on stdio (what lacre's [[mcp_servers]] `command` expects):
    python3 fastmcp_server.py
or over Streamable HTTP at http://127.0.0.1:PORT/mcp (lacre's `url`):
    python3 fastmcp_server.py --http PORT
"""
import asyncio
import sys

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError

mcp = FastMCP("lacre-example")


@mcp.tool(annotations={"readOnlyHint": True, "idempotentHint": True})
def add(a: int, b: int) -> int:
    """Adds two integers."""
    return a + b


@mcp.tool
def shout(text: str) -> str:
    """Upper-cases a text."""
    return text.upper()


@mcp.tool
async def nap(seconds: float) -> str:
    """Sleeps, then answers (an immediate tool that takes its time)."""
    await asyncio.sleep(seconds)
    return f"slept {seconds} s"


@mcp.tool
def refuse(reason: str) -> str:
    """Always fails, with the reason given (an MCP result with isError)."""
    raise ToolError(f"refused: {reason}")


@mcp.tool(annotations={"readOnlyHint": True})
async def count_slowly(to: int, ctx: Context, delay: float = 0.2) -> dict:
    """Counts to `to`, reporting progress at each step."""
    for i in range(1, to + 1):
        await asyncio.sleep(delay)
        await ctx.report_progress(progress=i, total=to, message=f"counted {i}")
    return {"counted": to}


@mcp.tool
async def add_greeter(ctx: Context) -> str:
    """Adds a `greet` tool to this server and tells its client the list changed."""

    def greet(name: str) -> str:
        """Greets someone."""
        return f"hello, {name}"

    import mcp_types

    mcp.tool(greet)
    await ctx.send_notification(mcp_types.ToolListChangedNotification())
    return "greet added"


@mcp.tool
def caller_header() -> str:
    """The Authorization header this request came with (HTTP only)."""
    from fastmcp.server.dependencies import get_http_headers

    return get_http_headers(include_all=True).get("authorization", "")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        mcp.run(transport="http", host="127.0.0.1", port=int(sys.argv[2]), show_banner=False)
    else:
        mcp.run(show_banner=False)
