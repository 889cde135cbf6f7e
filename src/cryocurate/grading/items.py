"""What a campaign item shows: its picture, for the grading, review and admin pages.

A class average's picture is its PNG in the run's folder; a tilt series has none of its own,
so it shows its run's tomogram key photo (a URL elsewhere, or a path under ``/data``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cryocurate.catalog.models import CampaignItem, ClassAverage, Tomogram
from cryocurate.store import layout


def class_image_url(dataset_id: int, run_name: str, class_index: int) -> str:
    """The URL of a class average's PNG."""
    return f"/data/{dataset_id}/{run_name}/{layout.class_image_relpath(class_index)}"


def key_photo() -> Any:
    """A scalar subquery for a query over :class:`CampaignItem`: its run's key photo."""
    return (
        sa.select(
            sa.func.min(sa.func.coalesce(Tomogram.key_photo_url, Tomogram.key_photo_thumbnail_url))
        )
        .where(Tomogram.run_id == CampaignItem.run_id)
        .scalar_subquery()
    )


def item_image_url(
    dataset_id: int, run_name: str, ca: ClassAverage | None, photo: str | None
) -> str:
    """An item's picture: the class average's PNG, else the key photo (``""`` if none)."""
    if ca is not None:
        return class_image_url(dataset_id, run_name, ca.class_index)
    url = photo or ""
    return url if "://" in url or not url else f"/data/{url.lstrip('/')}"
