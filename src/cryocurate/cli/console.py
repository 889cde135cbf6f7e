"""The two consoles every command writes to: results on stdout, progress and errors on stderr.

Keeping progress bars and messages on stderr means ``--json`` output on stdout can be piped
to another program untouched.
"""

from __future__ import annotations

from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
