"""``workbench init`` (a new workspace) and ``workbench doctor`` (is everything in place)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


# -- doctor ------------------------------------------------------------------------------


def cmd_doctor(args: argparse.Namespace) -> int:
    from rich.console import Console

    from workbench.doctor import repair_store, run_doctor

    if args.repair:
        repair_store(args.db, Console(highlight=False))
    return run_doctor(
        args.workspace,
        args.db,
        Console(highlight=False),
        offline=args.offline,
        versions_only=args.versions,
    )


def cmd_init(args: argparse.Namespace) -> int:
    from workbench.init import cmd_init as run_init

    return run_init(args)
