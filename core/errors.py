"""User-facing errors: one exception type whose message says what is wrong and what to do."""

from __future__ import annotations


class PrismError(ValueError):
    """Bad input or state the user can fix; the message is shown as is, never a traceback."""


class DataError(PrismError):
    """A dataset file or its columns cannot be used."""


class WorkspaceError(PrismError):
    """A workspace is missing, incompatible or was built with other settings."""


class ModelError(PrismError):
    """A proxy model cannot be loaded."""
