"""The one console every command prints through (rich; wide tables when output goes to a file or CI log)."""

import sys

from rich.console import Console

_width = None if sys.stdout.isatty() else 160
console = Console(highlight=False, width=_width)
err_console = Console(stderr=True, highlight=False, width=_width)
