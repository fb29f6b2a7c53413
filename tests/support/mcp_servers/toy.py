"""A small MCP server for the MCP toolkit's tests, built on the SDK's ``MCPServer``.

Its tools misbehave on request, so the client's failure handling can be tested against a
real server process:

- ``echo(text)``: answers ``text`` (and says which process answered).
- ``fail(message)``: the tool reports an error (``isError``).
- ``crash(message)``: writes ``message`` to stderr, then the process exits at once.
- ``hang(seconds)``: blocks the whole process (a synchronous sleep), as a stuck server does.
- ``grow(name)``: adds a tool called ``name`` and sends ``notifications/tools/list_changed``.
- ``chatter(kib, last)``: writes ``kib`` KiB of log lines to stderr, then the line ``last``.

Run over stdio (the default) or streamable HTTP::

    python tests/support/mcp_servers/toy.py
    python tests/support/mcp_servers/toy.py --http --port 8123
    python tests/support/mcp_servers/toy.py --exit-at-start "bad config"
    python tests/support/mcp_servers/toy.py --hang-at-start
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from mcp.server.mcpserver import Context, MCPServer

__all__ = ["build", "main"]


def build() -> MCPServer:
    """The server with its tools."""
    server = MCPServer("toy")

    @server.tool()
    def echo(text: str) -> str:
        """Answer the text back.

        Args:
            text: What to say.
        """
        return f"{text} (pid {os.getpid()})"

    @server.tool()
    def fail(message: str) -> str:
        """Fail with a message."""
        raise ValueError(message)

    @server.tool()
    def crash(message: str) -> str:
        """Write to stderr and exit the process at once."""
        print(message, file=sys.stderr, flush=True)
        os._exit(1)

    @server.tool()
    def chatter(kib: int, last: str) -> str:
        """Write ``kib`` KiB of log lines to stderr, then ``last``."""
        line = "debug: nothing to see here " + "." * 36 + "\n"  # 64 bytes
        sys.stderr.write(line * (kib * 16))
        print(last, file=sys.stderr, flush=True)
        return f"wrote {kib} KiB"

    @server.tool()
    def hang(seconds: float) -> str:
        """Block the whole process for a while."""
        print(f"hanging for {seconds}s", file=sys.stderr, flush=True)
        time.sleep(seconds)
        return "woke up"

    @server.tool()
    async def grow(name: str, ctx: Context) -> str:
        """Add a tool and tell the client the list changed."""

        def added() -> str:
            return f"I am {name}"

        server.add_tool(added, name=name, description=f"A tool added at run time: {name}")
        await ctx.session.send_tool_list_changed()
        return f"added {name}"

    return server


def main() -> None:
    """Run the server as the command line says."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--exit-at-start", metavar="MESSAGE", help="print MESSAGE and exit 3")
    parser.add_argument("--hang-at-start", action="store_true", help="never answer")
    opts = parser.parse_args()
    if opts.exit_at_start:
        print(opts.exit_at_start, file=sys.stderr, flush=True)
        sys.exit(3)
    if opts.hang_at_start:
        print("loading a very large model...", file=sys.stderr, flush=True)
        time.sleep(3600)
    server = build()
    if opts.http:
        server.run("streamable-http", host="127.0.0.1", port=opts.port)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
