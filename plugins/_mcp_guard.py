"""Keeps a stdio MCP server from outliving the Workbench process that started it.

Run as ``python -I -S _mcp_guard.py PARENT_PID COMMAND [ARGS...]`` (standard library only,
no ``site``: it starts in about 10 ms). The MCP SDK starts it in a new session, so it leads a
process group; it starts the server in that group with the same stdin, stdout and stderr,
lets go of its own copies of the pipes, and waits:

- The server exits: the rest of the group (a server's own children, such as the ``node``
  under ``npx``) gets SIGTERM, and the guard exits with the server's status.
- The guard gets SIGTERM, SIGINT or SIGHUP (the SDK stopping the server, or Linux's
  parent-death signal when Workbench dies, even by SIGKILL): the whole group gets SIGTERM,
  then SIGKILL after a grace period.
- Where there is no parent-death signal (not Linux), it polls its parent instead.

Workbench's own process group is never touched: the guard signals only its own group.
"""

from __future__ import annotations

import os
import signal
import sys
import time

_GRACE = 2.0
"""Seconds the group gets between SIGTERM and SIGKILL."""
_POLL = 0.25
"""Seconds between checks of the parent where there is no parent-death signal."""
_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> bool:
    """Ask Linux to send SIGTERM when the parent dies; False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _signal_group(sig: int) -> None:
    try:
        os.killpg(os.getpgrp(), sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_group(child: int) -> None:
    """SIGTERM to the group (the guard ignores it), then SIGKILL what is left."""
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    _signal_group(signal.SIGTERM)
    deadline = time.monotonic() + _GRACE
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(child, os.WNOHANG)
        except ChildProcessError:
            pid = child
        if pid == child and not _others_alive():
            return
        time.sleep(0.02)
    _signal_group(signal.SIGKILL)  # the guard goes with it


def _others_alive() -> bool:
    """Whether a process other than the guard is left in its group (Linux: /proc)."""
    me, group = os.getpid(), os.getpgrp()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # fields: state, ppid, pgrp, ...; a zombie is already gone for this purpose.
        if int(fields[2]) == group and fields[0] != b"Z":
            return True
    return False


def _status(raw: int) -> int:
    if os.WIFEXITED(raw):
        return os.WEXITSTATUS(raw)
    if os.WIFSIGNALED(raw):
        return 128 + os.WTERMSIG(raw)
    return 1


def main(argv: list[str]) -> int:
    """Start ``argv[1:]`` under the guard of parent ``argv[0]``; return its exit status."""
    if len(argv) < 2:
        print("usage: _mcp_guard.py PARENT_PID COMMAND [ARGS...]", file=sys.stderr)
        return 2
    parent = int(argv[0])
    command = argv[1:]
    watched = _parent_death_signal()
    if os.getppid() != parent:  # the parent died before the signal was armed
        return 1
    try:
        child = os.posix_spawnp(command[0], command, os.environ)
    except OSError as exc:
        print(f"cannot start {command[0]!r}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 127
    # The server alone holds the pipes now: when it exits, the client sees it at once.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)

    def stop(signum: int, frame: object) -> None:
        _stop_group(child)
        os._exit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, stop)
    if os.getppid() != parent:
        stop(signal.SIGTERM, None)
    while True:
        try:
            pid, raw = os.waitpid(child, 0 if watched else os.WNOHANG)
        except ChildProcessError:
            return 1
        if pid == child:
            code = _status(raw)
            if _others_alive():
                _stop_group(child)
            return code
        if os.getppid() != parent:
            stop(signal.SIGTERM, None)
        time.sleep(_POLL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
