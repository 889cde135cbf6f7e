"""File formats, and nothing else: MRC, cryoSPARC ``.cs``, RELION STAR, PNG, OME-Zarr, annotations.

Modules here know nothing of jobs, the catalog or the web. They read only what is asked for
(headers, named columns, one block), refuse malformed files with a
:class:`~cryocurate.errors.FormatError` naming the file and the problem, and write atomically.
"""
