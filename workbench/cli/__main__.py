"""``python -m workbench.cli``: the ``workbench`` command."""

import os

from workbench.cli import main

os.environ.setdefault("PYTHONUNBUFFERED", "1")
main()
