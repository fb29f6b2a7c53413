"""``workbench serve`` (the headless server) and ``workbench attach`` (the TUI on a server)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


from .common import CliError, _run_tui

# -- serve and attach --------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from workbench.server import ServerConfig, serve

    config = ServerConfig(
        host=args.host,
        port=args.port,
        token=args.token or os.environ.get("WORKBENCH_TOKEN") or None,
        cors_origins=list(args.cors),
        take_over=args.take_over,
        listen=not args.no_listen,
        lease=args.lease,
    )
    try:
        return serve(args.workspace, args.db, config)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None


def cmd_attach(args: argparse.Namespace) -> int:
    from workbench.client import RemoteEngine, RemoteError

    token = args.token or os.environ.get("WORKBENCH_TOKEN") or None
    try:
        first = [RemoteEngine.open(args.url, token)]  # fail here, before the TUI takes over
    except RemoteError as exc:
        raise CliError(exc.describe()) from None

    def factory() -> RemoteEngine:
        return first.pop() if first else RemoteEngine.open(args.url, token)

    # The workspace lives on the server: nothing to watch here.
    return _run_tui(engine_factory=factory, watch_workspace=False, warm_up=False)
