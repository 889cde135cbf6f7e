"""cryoSPARC ``.cs`` datasets: column-selective reads of both encodings, streaming writes.

A ``.cs`` file is one table (a numpy structured array) in one of two encodings, told apart by
the first six bytes:

* ``\\x93NUMPY``: a plain ``.npy`` file, as cryoSPARC writes job outputs on disk;
* ``\\x95CSDAT``: cryosparc-tools' stream format (JSON header, one block per column, LZ4
  compression, a heap for strings).

Only the columns asked for are read, and the file is never held in memory whole: a
five-million-particle ``particles.cs`` costs the memory of the few columns extraction needs.

The reader is written against the layout documented in cryosparc-tools (which the tests use
as the reference implementation), because cryosparc-tools loads every requested column through
a full in-memory copy of the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from cryocurate.atomic import atomic_path

NUMPY_MAGIC = b"\x93NUMPY"
CSDAT_MAGIC = b"\x95CSDAT"


def write_cs_numpy(
    path: str | os.PathLike[str],
    dtype: np.dtype,
    chunks: Iterable[np.ndarray],
    length: int,
    *,
    durable: bool = True,
) -> None:
    """Write a numpy-encoded ``.cs`` file from row chunks, in constant memory.

    ``length`` must equal the total number of rows the chunks hold; the ``.npy`` header is
    written first and the chunks streamed after it. The file appears atomically.
    """
    dtype = np.dtype(dtype)
    with atomic_path(path, durable=durable) as tmp, open(tmp, "wb") as fh:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": (int(length),)}
        try:  # version 1.0 as numpy.save writes it; 2.0 only for headers over 64 KiB
            np.lib.format.write_array_header_1_0(fh, header)
        except ValueError:
            np.lib.format.write_array_header_2_0(fh, header)
        written = 0
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk, dtype=dtype)
            fh.write(chunk.tobytes())
            written += len(chunk)
        if written != length:
            raise ValueError(f"write_cs_numpy: promised {length} rows, got {written}")
