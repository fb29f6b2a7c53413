"""A busy machine, for the benchmarks' "under load" phases."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator


@contextlib.contextmanager
def cpu_burners(settle_s: float = 1.0) -> Iterator[int]:
    """One process per core spinning ``while True: pass`` for the duration of the block,
    given ``settle_s`` to get going first; yields how many there are."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    try:
        time.sleep(settle_s)
        yield len(procs)
    finally:
        for p in procs:
            p.kill()
            p.wait()
