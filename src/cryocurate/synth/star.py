"""STAR text as RELION writes it: version comments, padded pairs, ``loop_`` with ``#n`` labels.

We do not use ``starfile.write`` for job files: it stamps the file with the time of writing
(so two runs with one seed would differ) and writes neither RELION's ``# version 30001``
lines nor its number layout. The layout here copies RELION's: each block is preceded by
``# version NNNNN`` (from 3.1 on), loop headers end with a space, numbers are right-aligned
in 12 characters with 6 decimals (5 for negatives), and very large or tiny ones use
exponents. Readers (``starfile.read``, RELION itself) parse all of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

#: ``# version`` tag per RELION release (RELION 3.0 writes none).
VERSION_TAGS = {"3.0": None, "3.1": "30001", "4.0": "30001", "5.0": "50001"}


def fmt(value: object) -> str:
    """One value as RELION prints it (strings unchanged, numbers in 12 characters)."""
    if isinstance(value, bool):
        return f"{int(value):>12d}"
    if isinstance(value, int):
        return f"{value:>12d}"
    if isinstance(value, float):
        if math.isnan(value):
            return f"{'nan':>12}"
        if math.isinf(value):
            return f"{'inf' if value > 0 else '-inf':>12}"
        digits = 5 if value < 0 else 6
        mag = abs(value)
        if mag != 0 and (mag < 1e-3 or mag >= 1e5):
            return f"{value:>12.{digits}e}"
        return f"{value:>12.{digits}f}"
    return str(value)


def block_header(name: str, version: str) -> str:
    """The lines that open a block: blank line, ``# version`` (3.1+), blank, ``data_name``."""
    tag = VERSION_TAGS[version]
    head = f"\n# version {tag}\n" if tag else ""
    return f"{head}\ndata_{name}\n\n"


def pairs_block(name: str, pairs: Sequence[tuple[str, object]], version: str) -> str:
    """A key/value block."""
    lines = [
        f"_{label:<40}{fmt(value):>12}" if not isinstance(value, str) else f"_{label:<40} {value}"
        for label, value in pairs
    ]
    return block_header(name, version) + "\n".join(lines) + "\n \n"


def loop_header(name: str, columns: Sequence[str], version: str) -> str:
    """A loop block's header: ``loop_`` and one ``_rlnName #n`` line per column."""
    labels = "".join(f"_{c} #{i} \n" for i, c in enumerate(columns, start=1))
    return block_header(name, version) + "loop_ \n" + labels


def loop_rows(rows: Iterable[Sequence[object]]) -> str:
    """Rows of a (small) loop, values formatted one by one."""
    return "".join(" ".join(fmt(v) for v in row) + " \n" for row in rows)


def loop_block(
    name: str, columns: Sequence[str], rows: Iterable[Sequence[object]], version: str
) -> str:
    """A whole loop block (header, rows, and RELION's closing ``" "`` line)."""
    return loop_header(name, columns, version) + loop_rows(rows) + " \n"
