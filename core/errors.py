"""User-facing errors: one exception type whose message says what is wrong and what to do."""

from __future__ import annotations


class PrismError(ValueError):
    """Bad input or state the user can fix; the message is shown as is, never a traceback.

    ``param`` names the parameter whose value is wrong (the CLI maps it to its flag, the app to
    the control beside which it shows the message), when there is one.
    """

    def __init__(self, message: str = "", *, param: str | None = None):
        super().__init__(message)
        self.param = param


class DataError(PrismError):
    """A dataset file or its columns cannot be used."""


class WorkspaceError(PrismError):
    """A workspace is missing, incompatible or was built with other settings."""


class ModelError(PrismError):
    """A proxy model cannot be loaded."""


class JobStopped(PrismError):
    """A long job was stopped (Ctrl-C, Cancel); its finished work is kept. ``exit_code``: 130/143."""

    def __init__(self, message: str, *, exit_code: int = 130):
        super().__init__(message)
        self.exit_code = exit_code
