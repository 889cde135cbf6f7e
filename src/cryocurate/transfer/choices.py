"""The choices the transfer commands offer (``download KIND``, ``import-czportal --dataset-id``).

Plain enums in a module of their own, importing nothing, so that the CLI can build its
options (and ``--help``) without importing the catalog; :mod:`.download` and :mod:`.czportal`
use and re-export them.
"""

from __future__ import annotations

import enum


class Kind(enum.StrEnum):
    """What can be downloaded."""

    dataset = "dataset"
    run = "run"
    tomogram = "tomogram"
    annotation = "annotation"


class DatasetIdPolicy(enum.StrEnum):
    """``--dataset-id``: keep the portal's id (refuse if taken) or take a new one."""

    keep = "keep"
    new = "new"
