"""RELION STAR files: small blocks through ``starfile``, big particle loops streamed.

``starfile`` parses a whole file into pandas, which is right for a ``model.star`` (a few
hundred rows before the per-class spectra we skip with ``read_n_blocks``) and wrong for a
``data.star`` of millions of particles (hundreds of MB of text, several GB as DataFrames).
:func:`read_loop_columns` therefore finds the loop's header itself and hands only the body,
and only the wanted columns, to pandas' C tokenizer in chunks.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryocurate.errors import FormatError
from cryocurate.formats.inputs import check_readable

_COLUMN = re.compile(rb"^\s*_(\S+)")
_NAN_WORDS = ["nan", "-nan", "+nan"]


def read_blocks(
    path: str | os.PathLike[str], *, n_blocks: int | None = None, strings: Sequence[str] = ()
) -> dict[str, Any]:
    """Read the first ``n_blocks`` blocks: key/value blocks as dicts, loops as DataFrames.

    Block names lose their ``data_`` prefix (``model_general``); columns lose the leading
    underscore (``rlnPixelSize``). ``strings`` names columns to keep as text.
    """
    import starfile  # pandas underneath: imported only when a STAR file is read

    path = Path(path)
    check_readable(path)
    try:
        blocks = starfile.read(
            path, read_n_blocks=n_blocks, always_dict=True, parse_as_string=list(strings)
        )
    except Exception as err:  # starfile raises bare exceptions of many kinds on bad text
        raise FormatError(f"not a readable STAR file: {err}", where=path) from err
    if not blocks:
        raise FormatError("not a STAR file: no data_ block found", where=path)
    return dict(blocks)


@dataclass(frozen=True)
class LoopHeader:
    """Where a loop's rows start in the file, and its column names in order."""

    block: str
    columns: list[str]
    body_offset: int


def find_loop(path: str | os.PathLike[str], blocks: Sequence[str]) -> LoopHeader:
    """Locate the loop of the first of ``blocks`` present in the file, reading only its header.

    ``blocks`` lists acceptable names without ``data_`` (``["particles", "images", ""]``), so
    one call copes with RELION 3.1+ (``data_particles``) and 3.0 (a bare ``data_``).
    """
    path = Path(path)
    check_readable(path)
    wanted = {b.encode() for b in blocks}
    with open(path, "rb") as fh:
        current: bytes | None = None
        in_loop = False
        columns: list[str] = []
        while True:
            line = fh.readline()
            if not line:
                break
            stripped = line.strip()
            if stripped.startswith(b"data_"):
                if columns:
                    break
                current = stripped[5:]
                in_loop = False
                continue
            if current is None or current not in wanted:
                continue
            if stripped.startswith(b"loop_"):
                in_loop = True
                continue
            if not in_loop or not stripped or stripped.startswith(b"#"):
                continue
            match = _COLUMN.match(line)
            if match:
                columns.append(match.group(1).decode())
                continue
            # first data row: rewind to its start
            return LoopHeader(current.decode(), columns, fh.tell() - len(line))
        if columns:  # a loop with a header and no rows
            return LoopHeader(current.decode() if current else "", columns, fh.tell())
    names = ", ".join(f"data_{b}" for b in blocks)
    raise FormatError(f"no loop found in any of the blocks {names}", where=path)


def read_loop_columns(
    path: str | os.PathLike[str],
    blocks: Sequence[str],
    columns: Sequence[str],
    *,
    chunk_rows: int = 1_000_000,
) -> dict[str, np.ndarray]:
    """Read the named columns of a (possibly huge) loop as numpy arrays, in bounded memory.

    Only the loop's body is tokenized, ``chunk_rows`` rows at a time; rows of a later block,
    if any, end the loop. Values are parsed as numbers.
    """
    import pandas as pd  # only when a STAR file is read: it costs a quarter second to import

    path = Path(path)
    header = find_loop(path, blocks)
    missing = [c for c in columns if c not in header.columns]
    if missing:
        raise FormatError(
            f"data_{header.block} lacks column(s) {', '.join('_' + m for m in missing)}",
            where=path,
            hint=f"it has {len(header.columns)} columns, e.g. {', '.join(header.columns[:6])}",
        )
    index = {c: header.columns.index(c) for c in columns}
    usecols = sorted({0, *index.values()})
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    with open(path, "rb") as fh:
        fh.seek(header.body_offset)
        try:
            reader = pd.read_csv(
                fh,
                sep=r"\s+",
                header=None,
                usecols=usecols,
                names=range(len(header.columns)),
                comment="#",
                dtype=str,
                na_filter=False,  # keep "nan" as text: the check below accepts it
                chunksize=chunk_rows,
                engine="c",
                skip_blank_lines=True,
            )
            for chunk in reader:
                first = chunk[0].astype(str)
                stop = first.str.startswith("data_") | first.str.startswith("loop_")
                ended = bool(stop.any())
                if ended:
                    chunk = chunk.iloc[: int(np.argmax(stop.to_numpy()))]
                for c, i in index.items():
                    values = pd.to_numeric(chunk[i], errors="coerce").to_numpy(dtype=np.float64)
                    bad = np.isnan(values) & ~chunk[i].str.lower().isin(_NAN_WORDS).to_numpy()
                    if bad.any():
                        word = chunk[i].to_numpy()[np.argmax(bad)]
                        raise FormatError(f"column _{c} holds a non-number {word!r}", where=path)
                    parts[c].append(values)
                if ended:
                    break
        except pd.errors.ParserError as err:
            raise FormatError(f"malformed rows in data_{header.block}: {err}", where=path) from err
    return {
        c: (np.concatenate(v) if v else np.empty(0, dtype=np.float64)) for c, v in parts.items()
    }
