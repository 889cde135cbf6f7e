"""The two consoles every command writes to: results on stdout, progress and errors on stderr.

Keeping progress bars and messages on stderr means ``--json`` output on stdout can be piped
to another program untouched.
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def counting_bar(label: str, *, quiet: bool = False) -> Progress:
    """A transient progress bar on stderr: ``label``, the bar, done of total and the time so
    far; off when ``quiet`` (``--json``) or when stderr is not a terminal."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    )
