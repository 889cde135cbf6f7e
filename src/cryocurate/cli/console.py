"""The two consoles every command writes to: results on stdout, progress and errors on stderr.

Keeping progress bars and messages on stderr means ``--json`` output on stdout can be piped
to another program untouched. ``out`` and ``err`` are made on first use (importing rich costs
start-up time that ``--help`` does not need).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    out: Console
    err: Console

_consoles: dict[str, Console] = {}


def __getattr__(name: str) -> Any:
    if name not in ("out", "err"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _consoles:
        from rich.console import Console

        _consoles[name] = Console(stderr=name == "err", highlight=False, soft_wrap=True)
    return _consoles[name]


def counting_bar(label: str, *, quiet: bool = False) -> Progress:
    """A transient progress bar on stderr: ``label``, the bar, done of total and the time so
    far; off when ``quiet`` (``--json``) or when stderr is not a terminal."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = __getattr__("err")
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    )
