"""The ``shell`` toolkit: run a shell command in the workspace folder.

The command runs through bash (``bash -c``, found on ``PATH`` when the toolkit starts), the
shell whose grammar the approval matcher models: ``/bin/sh`` is dash on Debian and Ubuntu,
which reads ``&>`` and ``$'...'`` otherwise, so a command the matcher read one way would run
another. Without bash, ``shell.run`` refuses to run anything and says so. The command runs
with the workspace root as its working directory, in a session (process group) of its own, so a timeout or a cancel stops everything it started:
the whole group is killed, not only the shell. Processes still running in the group when
the shell itself exits (``server &``) are stopped too: a tool call leaves nothing behind.

Config (``tools: shell:`` in ``workbench.yaml``; all optional):

- ``timeout`` (60): seconds a command may run when the call gives no ``timeout``.
- ``max_timeout`` (600): the most a call may ask for.
- ``max_output`` (30000): characters of output kept; beyond it the head and the tail are
  kept around a ``[... N chars cut ...]`` marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workbench.tools import FunctionToolkit, ToolContext, ToolError, tool

__all__ = ["ShellSettings", "ShellToolkit", "cap_output"]

# After the shell exits, how long its output pipe may stay open (held by a process it
# left in the background) before that process group is stopped.
_LINGER = 0.5
# How often a running command's exit is checked while its output pipe stays open.
_POLL = 0.05


def cap_output(text: str, limit: int, cut_extra: int = 0) -> str:
    """Keep the head and tail of ``text`` within ``limit`` characters around a marker."""
    if len(text) <= limit and not cut_extra:
        return text
    head = limit // 2
    tail = limit - head
    cut = max(len(text) - head - tail, 0) + cut_extra
    tail_text = text[-tail:] if tail and len(text) > head else ""
    return f"{text[:head]}\n[... {cut} chars cut ...]\n{tail_text}"


class _Capture:
    """Output of a process: all of it up to a bound, then the head and a rolling tail."""

    def __init__(self, limit_chars: int) -> None:
        # Bytes are kept generously (UTF-8 takes up to 4 per char) so the cut is exact in
        # characters for any output that fits.
        self._keep = max(limit_chars, 1) * 4
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, chunk: bytes) -> None:
        room = self._keep - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            excess = len(self.tail) - self._keep
            if excess > 0:
                del self.tail[:excess]
                self.dropped += excess

    def text(self, limit: int) -> str:
        if not self.dropped:
            return cap_output(bytes(self.head + self.tail).decode("utf-8", "replace"), limit)
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        half = limit // 2
        cut = (len(head) - half) + self.dropped + (len(tail) - (limit - half))
        return f"{head[:half]}\n[... {cut} chars cut ...]\n{tail[len(tail) - (limit - half) :]}"


async def _supervise(
    proc: asyncio.subprocess.Process, reader: asyncio.Future[None], limit: float
) -> tuple[bool, bool]:
    """Wait for the command to end; returns ``(timed_out, lingered)``.

    On Python 3.11 ``Process.wait()`` resolves only once the output pipe is closed too, so
    a background child holding the pipe would keep it waiting: the exit is noticed through
    ``returncode`` instead, polled while the pipe stays open.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        remaining = deadline - loop.time()
        if reader.done():
            # End of output (the usual way a command ends): wait for the exit itself.
            try:
                await asyncio.wait_for(proc.wait(), max(remaining, 0.0))
            except TimeoutError:
                return True, False
            return False, False
        if proc.returncode is not None:
            # The shell is done; a background child may still hold the pipe open.
            done, _ = await asyncio.wait({reader}, timeout=_LINGER)
            return False, not done
        if remaining <= 0:
            return True, False
        await asyncio.wait({reader}, timeout=min(_POLL, remaining))


async def _finish(proc: asyncio.subprocess.Process, reader: asyncio.Future[None]) -> None:
    """After the group is killed: read the pipe to its end, reap the shell, close up."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    try:
        # Every writer in the group is dead, so the end of output comes at once, unless a
        # process that left the group (setsid) holds the pipe: then stop reading.
        await asyncio.wait_for(reader, 2.0)
    except (TimeoutError, asyncio.CancelledError):
        pass
    transport = getattr(proc, "_transport", None)
    if transport is not None:
        # Closing the pipes lets wait() resolve, and avoids "unclosed transport" warnings.
        transport.close()
    await proc.wait()


async def _discard(spawn: asyncio.Future[asyncio.subprocess.Process]) -> None:
    """Stop a command whose call was cancelled while it was being started."""
    try:
        proc = await spawn
    except Exception:
        return  # it never started
    _kill_group(proc.pid)
    stdout = proc.stdout

    async def drain() -> None:
        if stdout is not None:
            while await stdout.read(65536):
                pass

    await _finish(proc, asyncio.ensure_future(drain()))


def _kill_group(pgid: int) -> bool:
    """SIGKILL a process group; ``True`` if there was anything to kill."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class ShellSettings(BaseModel):
    """``toolkits: shell:`` in ``workbench.yaml``."""

    model_config = ConfigDict(extra="forbid")

    timeout: float = Field(default=60.0, gt=0)
    """Seconds a command may run when the call gives no timeout."""
    max_timeout: float = Field(default=600.0, gt=0)
    """The most seconds a call may ask for."""
    max_output: int = Field(default=30_000, gt=0)
    """Characters of output kept (head and tail)."""


class ShellToolkit(FunctionToolkit):
    """Shell commands in the workspace folder: ``run``.

    Never allowed by default: a workspace's approval policy asks before every command
    unless a rule allows it, and a command is split on ``;``, ``&&``, ``||`` and ``|`` so
    each part needs a rule of its own (the approvals broker enforces this; the tool matches
    rules on its ``cmd`` argument). The tool itself confines only the working directory,
    not what a command may touch.
    """

    settings = ShellSettings

    def __init__(self, name: str, config: dict[str, Any], root: Path) -> None:
        super().__init__(name, config, root)
        self.timeout = float(config.get("timeout", 60.0))
        """Seconds a command may run when the call gives no timeout."""
        self.max_timeout = float(config.get("max_timeout", 600.0))
        """The most seconds a call may ask for."""
        self.max_output = int(config.get("max_output", 30_000))
        """Characters of output kept (head and tail)."""
        self.bash: str | None = shutil.which("bash")
        """The bash that runs commands (found on ``PATH`` at start), or None without one."""
        # The command enforces its own timeout (and kills its process group); the outer
        # limit is only a backstop.
        outer = max(self.timeout, self.max_timeout) + 10.0
        self.add(tool(name="run", match_on=("command", "cmd"), timeout=outer)(self.run))

    def argv(self, cmd: str) -> list[str]:
        """The program and arguments that run ``cmd`` (bash, with no startup files).

        Raises:
            ToolError: bash was not found when the toolkit started.
        """
        if self.bash is None:
            raise ToolError(
                "bash was not found on PATH: shell.run runs commands with bash, the shell its "
                "approval rules are checked against; install bash (apt install bash) and start "
                "again"
            )
        return [self.bash, "--noprofile", "--norc", "-c", cmd]

    async def run(self, ctx: ToolContext, cmd: str, timeout: float | None = None) -> str:
        """Run a shell command in the workspace folder; returns its output and exit code.

        stdout and stderr come combined, in order. Long output keeps its start and end.

        Args:
            cmd: The command line, run by bash.
            timeout: Seconds before the command and everything it started are killed
                (default from the workspace config).
        """
        if not cmd.strip():
            raise ToolError("cmd must not be empty")
        limit = self.timeout if timeout is None else float(timeout)
        if limit <= 0:
            raise ToolError("timeout must be more than 0")
        limit = min(limit, self.max_timeout)
        if "\x00" in cmd:
            raise ToolError("cmd contains a NUL byte, which no shell command can hold")
        argv = self.argv(cmd)
        spawn = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=ctx.workspace_root,
                start_new_session=True,
            )
        )
        try:
            proc = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            # Cancelled while asyncio was still connecting the pipes: the command may
            # already run (and have started children). Let the spawn finish, then stop it.
            await asyncio.shield(_discard(spawn))
            raise
        assert proc.stdout is not None
        capture = _Capture(self.max_output)
        stdout = proc.stdout

        async def pump() -> None:
            while chunk := await stdout.read(65536):
                capture.feed(chunk)

        reader = asyncio.ensure_future(pump())
        try:
            timed_out, lingered = await _supervise(proc, reader, limit)
        finally:
            # Whatever happened (a timeout, a cancel, a normal exit), nothing of the
            # command's process group outlives the call.
            killed = _kill_group(proc.pid)
            await asyncio.shield(_finish(proc, reader))
        output = capture.text(self.max_output).rstrip("\n")
        if timed_out:
            raise ToolError(
                f"command timed out after {limit:g}s; it and its child processes were "
                f"killed. Output so far:\n{output}"
            )
        rc = proc.returncode
        status = (
            f"exit code {rc}" if rc is not None and rc >= 0 else f"killed by signal {-(rc or 0)}"
        )
        notes = []
        if lingered and killed:
            notes.append("[background processes it left running were stopped]")
        body = f"{output}\n" if output else ""
        return body + "\n".join([*notes, status])
