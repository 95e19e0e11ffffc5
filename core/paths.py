"""Where Prism's own files are: the source tree (for the shipped demo and background processes)."""

from __future__ import annotations

from pathlib import Path

# The folder holding the `core` package (and, in a source checkout, `demo/`).
SOURCE_ROOT = Path(__file__).resolve().parent.parent
