"""What a campaign item shows: its picture, for the grading, review and admin pages.

A class average's picture is its PNG in the run's folder. A tilt series is many pictures: a
grader judges it by its tilts (are some blurred, dark, shifted, missing?), so it is shown as
a montage of every tilt (``/tiltseries/ID/montage.png``) and, on the grading screen, as a
stack to scrub one tilt at a time (``/tiltseries/ID/tilts/N.png``); both are rendered by the
server from the tilt-series MRC (:mod:`cryocurate.web.tilt_images`). A tilt series with no
file of its own falls back to its run's tomogram key photo.
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


def tilt_series_view(tiltseries_id: int, n_tilts: int | None) -> dict[str, Any]:
    """What the grading screen needs to show a tilt series: how many tilts, and where its
    angles, single tilts (``tilt_url`` + index + ``.png``) and montage are."""
    base = f"/tiltseries/{tiltseries_id}"
    return {
        "tiltseries_id": tiltseries_id,
        "count": n_tilts,
        "info_url": f"{base}/tilts.json",
        "tilt_url": f"{base}/tilts/",
        "montage_url": f"{base}/montage.png",
    }


def item_image_url(
    dataset_id: int,
    run_name: str,
    ca: ClassAverage | None,
    photo: str | None,
    tiltseries_id: int | None = None,
) -> str:
    """An item's picture: the class average's PNG, else the tilt series' montage when it has
    a file (``tiltseries_id``), else the key photo (``""`` if none)."""
    if ca is not None:
        return class_image_url(dataset_id, run_name, ca.class_index)
    if tiltseries_id is not None:
        return tilt_series_view(tiltseries_id, None)["montage_url"]
    url = photo or ""
    return url if "://" in url or not url else f"/data/{url.lstrip('/')}"
