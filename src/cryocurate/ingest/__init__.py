"""From job folders to portal runs.

:mod:`.discover` recognises jobs by their files; :mod:`.cryosparc` and :mod:`.relion` read
them into one :class:`~.records.JobRecord` shape (the only place raw field names such as
``blob/res_A`` or ``rlnClassDistribution`` appear); :mod:`.features` computes Magellon's mass
features; :mod:`.extract` writes runs into a portal root, atomically and in parallel.
"""
