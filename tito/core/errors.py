"""The one exception tito raises for bad input: its message says what went wrong and what to do."""


class TitoError(Exception):
    """A user-facing error; the CLI prints the message and exits with status 1 (no traceback)."""
