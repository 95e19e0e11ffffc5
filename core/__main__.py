"""``python -m core``: the same command line as ``prism``."""

from core.cli import main

main()
