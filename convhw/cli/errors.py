"""The one-line user errors of the ``convhw`` command."""

__all__ = ["CliError"]


class CliError(Exception):
    """A problem with the user's options or files: printed as one line, exit status 2."""
