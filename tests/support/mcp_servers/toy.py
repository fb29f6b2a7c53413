"""A small MCP server for the MCP toolkit's tests, built on the SDK's ``MCPServer``.

Its tools misbehave on request, so the client's failure handling can be tested against a
real server process:

- ``echo(text)``: answers ``text`` (and says which process answered).
- ``fail(message)``: the tool reports an error (``isError``).
- ``crash(message)``: writes ``message`` to stderr, then the process exits at once.
- ``hang(seconds)``: blocks the whole process (a synchronous sleep), as a stuck server does.
- ``grow(name)``: adds a tool called ``name`` and sends ``notifications/tools/list_changed``.
- ``chatter(kib, last)``: writes ``kib`` KiB of log lines to stderr, then the line ``last``.
- ``big(chars)``: answers ``chars`` characters, from ``HEAD>`` to ``<TAIL``.
- ``slow(seconds, steps)``: sleeps ``seconds`` in ``steps``, reporting progress after each.
- ``picture()`` / ``sound()``: a 1x1 PNG image / a short WAV sound, with a line of text.
- ``forecast(city)``: structured content with an output schema.
- ``ask_name()``: asks the person for a name and a count (an elicitation form).
- ``batch_job()``: a tool that requires MCP tasks (the client cannot run it).
- the resource ``toy://readme`` and the prompt ``review(topic)``; instructions at ``initialize``.

Run over stdio (the default) or streamable HTTP::

    python tests/support/mcp_servers/toy.py
    python tests/support/mcp_servers/toy.py --http --port 8123
    python tests/support/mcp_servers/toy.py --sse --port 8123      # GET /sse
    python tests/support/mcp_servers/toy.py --exit-at-start "bad config"
    python tests/support/mcp_servers/toy.py --hang-at-start
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import sys
import time
import wave
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.utilities.types import Audio, Image
from mcp_types import ToolAnnotations, ToolExecution
from pydantic import BaseModel

__all__ = ["build", "main"]


PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)
"""A 1x1 PNG."""

INSTRUCTIONS = "Call toy.echo once before anything else, to check the server is alive."


def _wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    return buf.getvalue()


class Forecast(BaseModel):
    """A weather forecast."""

    city: str
    celsius: float


class NameForm(BaseModel):
    """What ``ask_name`` asks for."""

    name: str
    count: int = 3


class _Toy(MCPServer):
    async def list_tools(self) -> list[Any]:
        tools = await super().list_tools()
        for t in tools:
            if t.name == "batch_job":  # MCPServer has no way to say so itself
                t.execution = ToolExecution(task_support="required")
        return tools


def build() -> MCPServer:
    """The server with its tools."""
    server = _Toy("toy", instructions=INSTRUCTIONS)

    # It says it is read-only and idempotent: hints, which the client must not trust.
    @server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
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

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
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

    @server.tool()
    def big(chars: int) -> str:
        """Answer ``chars`` characters."""
        middle = max(0, chars - 10)
        return "HEAD>" + ("0123456789\n" * (middle // 11 + 1))[:middle] + "<TAIL"

    @server.tool()
    async def slow(seconds: float, steps: int, ctx: Context) -> str:
        """Sleep in steps, reporting progress."""
        for i in range(steps):
            await asyncio.sleep(seconds / steps)
            await ctx.report_progress(i + 1, steps, f"step {i + 1} of {steps}")
        return f"slept {seconds}s"

    @server.tool(structured_output=False)
    def picture() -> list[Any]:
        """A tiny picture."""
        return ["a red dot", Image(data=PNG_1X1, format="png")]

    @server.tool(structured_output=False)
    def sound() -> list[Any]:
        """A short sound."""
        return ["a tenth of a second of silence", Audio(data=_wav(), format="wav")]

    @server.tool()
    def forecast(city: str) -> Forecast:
        """Tomorrow's weather."""
        return Forecast(city=city, celsius=21.5)

    @server.tool()
    async def ask_name(ctx: Context) -> str:
        """Ask the person for a name."""
        answer = await ctx.elicit("Who is asking?", NameForm)
        if answer.action == "accept":
            return f"hello {answer.data.name} x{answer.data.count}"
        return f"no answer ({answer.action})"

    @server.tool()
    def batch_job() -> str:
        """A long job that must run as an MCP task."""
        return "ran"

    @server.resource("toy://readme", name="readme", mime_type="text/markdown")
    def readme() -> str:
        """What this server is."""
        return "# Toy\nA server for tests."

    @server.prompt()
    def review(topic: str) -> str:
        """Ask for a review."""
        return f"Please review {topic} carefully."

    return server


def main() -> None:
    """Run the server as the command line says."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP")
    parser.add_argument("--sse", action="store_true", help="serve the older SSE transport")
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
    elif opts.sse:
        server.run("sse", host="127.0.0.1", port=opts.port)
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
